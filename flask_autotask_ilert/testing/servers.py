"""Real sockets for the simulators, and the fault plumbing both of them share.

The bridge talks to ilert and Autotask with ``requests``; mocking at that layer
would hide timeouts, refused connections and dropped sockets, which are exactly the
failures the bridge has to survive. So the simulators are ordinary WSGI apps served
on 127.0.0.1, and faults are produced on the wire.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import signal
import socket
import socketserver
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Response

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

__all__ = [
    "FAIL_MODES",
    "Fault",
    "FaultInjector",
    "ServerThread",
    "SimulatedConnectionReset",
    "drop_connection",
    "fault_response",
    "json_response",
    "run_main",
    "was_dropped",
]

_DROPPED_KEY = "flask_autotask_ilert.testing.dropped"


class ServerThread:
    """Serve one WSGI app on 127.0.0.1 from a daemon thread.

    ``stop()`` followed by ``start()`` binds the same port again, so a test can make
    a service refuse connections for a while and bring it back with its state
    intact. ``stop()`` also cuts requests still in flight, as a crashing service
    would; only the listening socket's port survives.
    """

    def __init__(
        self,
        app: WSGIApplication,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        quiet: bool = True,
    ) -> None:
        self.app = app
        self.host = host
        self.quiet = quiet
        self._port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        self._handler = self._make_handler()

    @property
    def port(self) -> int:
        """The bound port; the one requested until the first ``start()``."""
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> ServerThread:
        if self._server is not None:
            raise RuntimeError("server already running")
        # Binding ourselves (instead of letting werkzeug do it) turns "port in use"
        # into an OSError; werkzeug would print and call sys.exit().
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.host, self._port))
            listener.listen(128)
            server = make_server(
                self.host,
                self._port,
                self.app,
                threaded=True,
                request_handler=self._handler,
                fd=listener.fileno(),
            )
        finally:
            listener.close()  # werkzeug holds its own duplicate of the descriptor
        if isinstance(server, socketserver.ThreadingMixIn):
            # A request stuck in a simulated hang must not block stop().
            server.block_on_close = False
        self._port = server.port
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"sim-server-{self._port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        if thread is not None:
            thread.join(timeout)
        with self._conn_lock:
            live = list(self._connections)
        for conn in live:
            with contextlib.suppress(OSError):  # already closed by its handler
                conn.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _make_handler(self) -> type[WSGIRequestHandler]:
        owner = self

        class Handler(WSGIRequestHandler):
            def setup(self) -> None:
                super().setup()
                with owner._conn_lock:
                    owner._connections.add(self.connection)

            def finish(self) -> None:
                with owner._conn_lock:
                    owner._connections.discard(self.connection)
                super().finish()

            def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
                if not owner.quiet:
                    super().log_request(code, size)

        return Handler


# --- faults --------------------------------------------------------------------------

FAIL_MODES = ("503", "500", "reset")


class SimulatedConnectionReset(ConnectionResetError):
    """Raised when a reset is asked for but no socket is at hand (test clients)."""


def drop_connection(environ: dict[str, Any]) -> None:
    """Close the client's connection without an HTTP answer.

    Shutting the socket down (rather than closing it) leaves werkzeug's own file
    descriptor valid; its attempt to write the answer then fails with a broken pipe,
    which it treats as a dropped connection, and the client sees the remote end
    close without a response: a ``requests.ConnectionError``.
    """
    environ[_DROPPED_KEY] = True
    sock = environ.get("werkzeug.socket")
    if not isinstance(sock, socket.socket):
        raise SimulatedConnectionReset("simulated connection reset")
    with contextlib.suppress(OSError):  # the client is gone already: same outcome
        sock.shutdown(socket.SHUT_RDWR)


def was_dropped(environ: Mapping[str, Any]) -> bool:
    return bool(environ.get(_DROPPED_KEY))


@dataclass(frozen=True)
class Fault:
    """One injected answer: a status, a dropped connection, or a delay.

    ``hang`` alone delays the real answer; combined with ``status`` it delays the
    forced one.
    """

    status: int | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    reset: bool = False
    hang: float = 0.0

    @classmethod
    def parse(cls, spec: Mapping[str, Any] | Fault) -> Fault:
        """Validate a forced answer given as JSON-like data, failing early on typos."""
        if isinstance(spec, Fault):
            return spec
        unknown = set(spec) - {"status", "body", "headers", "reset", "hang"}
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        status = spec.get("status")
        if status is not None and (
            isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599
        ):
            raise ValueError("fault status must be an HTTP status code")
        headers = spec.get("headers") or {}
        if not isinstance(headers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, (str, int, float)) for k, v in headers.items()
        ):
            raise ValueError("fault headers must map names to values")
        reset = spec.get("reset", False)
        hang = spec.get("hang", 0.0)
        if not isinstance(reset, bool):
            raise ValueError("fault reset must be a boolean")
        if isinstance(hang, bool) or not isinstance(hang, (int, float)) or hang < 0:
            raise ValueError("fault hang must be a number of seconds")
        if reset and status is not None:
            raise ValueError("a fault either resets or answers, not both")
        if not reset and status is None and not hang:
            raise ValueError("a fault needs status, reset or hang")
        return cls(
            status=status,
            body=spec.get("body"),
            headers={str(k): str(v) for k, v in headers.items()},
            reset=reset,
            hang=float(hang),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.status is not None:
            out["status"] = self.status
        if self.body is not None:
            out["body"] = self.body
        if self.headers:
            out["headers"] = dict(self.headers)
        if self.reset:
            out["reset"] = True
        if self.hang:
            out["hang"] = self.hang
        return out


class FaultInjector:
    """Fault settings shared by both simulator states.

    Settable directly from Python (``state.latency = 0.2``, ``state.force(...)``) and
    from JSON through ``configure_faults`` for tests that drive a separate process.
    The random source is seeded so a flaky-network test replays identically.
    """

    def __init__(self, default_fail_modes: Sequence[str]) -> None:
        self._lock = threading.RLock()
        self._default_fail_modes = tuple(default_fail_modes)
        self.latency: float = 0.0
        self.fail_rate: float = 0.0
        self.fail_modes: list[str] = list(default_fail_modes)
        self.forced: deque[Fault] = deque()
        self._seed: int | None = None
        self._rng = random.Random()

    @property
    def seed(self) -> int | None:
        return self._seed

    @seed.setter
    def seed(self, value: int | None) -> None:
        with self._lock:
            self._seed = value
            self._rng = random.Random(value)

    def force(self, *answers: Mapping[str, Any] | Fault) -> None:
        """Queue answers for the next requests, in order, ahead of ``fail_rate``."""
        parsed = [Fault.parse(a) for a in answers]
        with self._lock:
            self.forced.extend(parsed)

    def next_fault(self) -> Fault | None:
        """The fault for the request now arriving, if any (consumes it)."""
        with self._lock:
            if self.forced:
                return self.forced.popleft()
            if self.fail_rate > 0 and self._rng.random() < self.fail_rate:
                mode = self._rng.choice(self.fail_modes or list(self._default_fail_modes))
                return Fault(reset=True) if mode == "reset" else Fault(status=int(mode))
        return None

    def clear_faults(self) -> None:
        with self._lock:
            self.latency = 0.0
            self.fail_rate = 0.0
            self.fail_modes = list(self._default_fail_modes)
            self.forced.clear()
            self.seed = None

    def configure_faults(self, data: Mapping[str, Any]) -> None:
        """Apply the JSON of ``POST /_sim/faults``; only the keys present change.

        ``forced`` replaces the queue (``force`` appends), because a test driving a
        separate process wants to know exactly what is queued.
        """
        unknown = set(data) - self._fault_keys()
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        forced = None
        if "forced" in data:
            if not isinstance(data["forced"], list):
                raise ValueError("forced must be a list")
            forced = [Fault.parse(_require_mapping(f, "forced entry")) for f in data["forced"]]
        modes = None
        if "fail_modes" in data:
            modes = data["fail_modes"]
            if not isinstance(modes, list) or not modes or any(m not in FAIL_MODES for m in modes):
                raise ValueError(f"fail_modes must be a non-empty list of {FAIL_MODES}")
        latency = _optional_number(data, "latency", 0.0, math.inf)
        fail_rate = _optional_number(data, "fail_rate", 0.0, 1.0)
        seed = data.get("seed")
        if "seed" in data and seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError("seed must be an integer or null")
        with self._lock:
            if latency is not None:
                self.latency = latency
            if fail_rate is not None:
                self.fail_rate = fail_rate
            if modes is not None:
                self.fail_modes = [str(m) for m in modes]
            if "seed" in data:
                self.seed = seed
            if forced is not None:
                self.forced = deque(forced)

    def faults_json(self) -> dict[str, Any]:
        with self._lock:
            return {
                "latency": self.latency,
                "fail_rate": self.fail_rate,
                "fail_modes": list(self.fail_modes),
                "seed": self._seed,
                "forced": [f.to_json() for f in self.forced],
            }

    def _fault_keys(self) -> set[str]:
        """Settings ``configure_faults`` accepts; subclasses add their own."""
        return {"latency", "fail_rate", "fail_modes", "seed", "forced"}

    def _sleep_latency(self) -> None:
        delay = self.latency
        if delay > 0:
            time.sleep(delay)


def _require_mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{what} must be an object")
    return value


def _optional_number(data: Mapping[str, Any], key: str, low: float, high: float) -> float | None:
    if key not in data:
        return None
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"{key} must be a number between {low} and {high}")
    return float(value)


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, headers=dict(headers or {}), mimetype="application/json")


def fault_response(
    fault: Fault,
    environ: dict[str, Any],
    default_body: Callable[[int], Any],
    record: Callable[[int | None], None] | None = None,
) -> Response | None:
    """Carry out ``fault``; the response to send, or None to answer normally.

    ``record`` learns the status just before it goes out (None for a dropped
    connection), so a log of requests stays in arrival order even after a hang.
    For a reset the returned response is never delivered: the socket is already
    shut, and werkzeug drops the write quietly.
    """
    if fault.hang:
        time.sleep(fault.hang)
    if fault.reset:
        if record is not None:
            record(None)
        drop_connection(environ)
        return Response(status=HTTPStatus.SERVICE_UNAVAILABLE)
    if fault.status is None:
        return None
    if record is not None:
        record(fault.status)
    body = fault.body if fault.body is not None else default_body(fault.status)
    return json_response(body, fault.status, fault.headers)


# --- running a simulator as its own process ---------------------------------------------


def run_main(
    argv: Sequence[str] | None,
    factory: Callable[[argparse.Namespace], WSGIApplication],
    *,
    description: str = "",
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> int:
    """Serve ``factory(args)`` until SIGTERM or Ctrl-C.

    ``--port-file`` is written atomically once the socket listens, so a parent
    process can poll for it instead of sleeping and hoping.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", type=Path, help="write the bound port here")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)

    stopping = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _on_signal)
    server = ServerThread(factory(args), args.port, host=args.host, quiet=not args.verbose)
    server.start()
    try:
        if args.port_file is not None:
            _write_atomically(args.port_file, f"{server.port}\n")
        print(f"listening on {server.url}", flush=True)
        while not stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
