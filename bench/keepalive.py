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

import io
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from flask_autotask_ilert.testing.autotask_sim import create_autotask_simulator
from flask_autotask_ilert.testing.deployment import Deployment
from flask_autotask_ilert.testing.ilert_sim import create_ilert_simulator

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # the head and the body go out as two writes
    app: WSGIApplication

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        address: Any = self.server.server_address
        host, port = address[0], address[1]
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote(path, "latin-1"),
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(length),
            "SERVER_NAME": str(host),
            "SERVER_PORT": str(port),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in self.headers.items():
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
        code, _, reason = answer["status"].partition(" ")
        self.send_response(int(code), reason)
        for name, value in answer["headers"]:
            if name.lower() not in ("content-length", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve


class KeepAliveServerThread:
    """Serve one WSGI app on 127.0.0.1 from a daemon thread (the interface of ServerThread)."""

    def __init__(self, app: WSGIApplication) -> None:
        handler = type("Handler", (_Handler,), {"app": staticmethod(app)})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
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
