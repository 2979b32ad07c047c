"""The simulators served with HTTP keep-alive, as the real ilert and Autotask APIs are.

werkzeug's development server (``testing.servers.ServerThread``) closes every
connection after one answer, and drains the socket after each request, so it
cannot keep a connection alive. The delivery worker keeps its connections open
(a pooled ``requests`` session): against the plain simulators every event would
pay a TCP connect, and every simulated request a new server thread, costs a
real deployment does not have, which would make the drain rate a measure of
the simulators. Here the same simulator apps are served by a small HTTP/1.1
server from the standard library with keep-alive: one thread per connection,
kept for the connection's life. It has none of the fault plumbing (the
benchmark injects no faults).
"""

from __future__ import annotations

import email.utils
import io
import socketserver
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from flask_autotask_ilert.testing.autotask_sim import create_autotask_simulator
from flask_autotask_ilert.testing.ilert_sim import create_ilert_simulator
from tests.deployment import Deployment

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication


class _Handler(socketserver.StreamRequestHandler):
    """One connection: read a request, answer it, repeat until the client closes.

    Parsed by hand rather than with ``http.server``, whose header parsing (the
    ``email`` package), date formatting and per-line writes cost the simulators
    about as much CPU as the apps they serve; with the simulators in the
    benchmark's process, that was CPU and GIL time taken from the drain
    (docs/performance.md). What goes over the wire is the same: status line,
    ``Server``, ``Date``, the app's headers, ``Content-Length``, the body.
    """

    disable_nagle_algorithm = True
    app: WSGIApplication

    def handle(self) -> None:
        while self._one_request():
            pass

    def _one_request(self) -> bool:
        line = self.rfile.readline(_LINE_LIMIT)
        while line in (b"\r\n", b"\n"):  # stray blank lines between requests are allowed
            line = self.rfile.readline(_LINE_LIMIT)
        parts = line.decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return False  # closed, or not HTTP: drop the connection
        method, target, version = parts
        headers: list[tuple[str, str]] = []
        while True:
            raw = self.rfile.readline(_LINE_LIMIT)
            if raw in (b"\r\n", b"\n", b""):
                break
            name, _, value = raw.decode("latin-1").partition(":")
            headers.append((name.strip(), value.strip()))
        fields = {name.lower(): value for name, value in headers}
        length = int(fields.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        connection = fields.get("connection", "").lower()
        keep = connection != "close" and (version != "HTTP/1.0" or connection == "keep-alive")
        path, _, query = target.partition("?")
        address: Any = self.server.server_address
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote(path, "latin-1"),
            "QUERY_STRING": query,
            "CONTENT_TYPE": fields.get("content-type", ""),
            "CONTENT_LENGTH": str(length),
            "SERVER_NAME": str(address[0]),
            "SERVER_PORT": str(address[1]),
            "SERVER_PROTOCOL": version,
            "REMOTE_ADDR": self.client_address[0],
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in headers:
            key = "HTTP_" + name.upper().replace("-", "_")
            if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                environ[key] = value
        answer: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answer["status"], answer["headers"] = status, headers
            return lambda data: None

        chunks = self.app(environ, start_response)
        try:
            data = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        head = [f"HTTP/1.1 {answer['status']}", _SERVER, f"Date: {_http_date()}"]
        head += [f"{name}: {value}" for name, value in answer["headers"]
                 if name.lower() not in ("content-length", "connection")]
        head.append(f"Content-Length: {len(data)}")
        if not keep:
            head.append("Connection: close")
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data)
        return keep


_LINE_LIMIT = 65537
_SERVER = f"Server: bench-keepalive Python/{sys.version.split()[0]}"
_dates: list[tuple[int, str]] = [(0, "")]


def _http_date() -> str:
    """The Date header's value, formatted once a second."""
    now = int(time.time())
    stamp, text = _dates[0]
    if stamp != now:
        text = email.utils.formatdate(now, usegmt=True)
        _dates[0] = (now, text)
    return text


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


class KeepAliveServerThread:
    """Serve one WSGI app on 127.0.0.1 from a daemon thread (the interface of ServerThread)."""

    def __init__(self, app: WSGIApplication) -> None:
        handler = type("Handler", (_Handler,), {"app": staticmethod(app)})
        self._server = _Server(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> KeepAliveServerThread:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"bench-sim-{self.port}", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.server_close()


@dataclass
class KeepAliveDeployment(Deployment):
    """``Deployment`` whose simulators keep connections alive."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self._ilert_server = KeepAliveServerThread(create_ilert_simulator(self.ilert))  # type: ignore[assignment]
        self._autotask_server = KeepAliveServerThread(create_autotask_simulator(self.autotask))  # type: ignore[assignment]
