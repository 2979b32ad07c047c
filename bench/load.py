"""Load generators: wrk (with a Lua script) when installed, and a Python client.

wrk drives the saturation runs: it is written in C, so on a two-core machine it
takes the least CPU away from the servers it measures. It is closed-loop, which
is what saturation means. For fixed offered loads the benchmark uses the
Python client below in open-loop mode: request *i* is due at ``start + i/rate``
whatever happened to the earlier ones, and its latency is counted from that
due time, so a stalled server shows up as latency instead of as fewer requests
(no coordinated omission). The same client, closed-loop, stands in for wrk
when wrk is missing.

The client keeps connections alive when the server allows it (gunicorn's sync
workers close them after every answer, so it reconnects then). Every run is
bounded in time and count, and talks to 127.0.0.1 only.
"""

from __future__ import annotations

import errno
import re
import selectors
import shutil
import socket
import subprocess
import tempfile
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

LOOPBACK = "127.0.0.1"


@dataclass
class LoadResult:
    """What one run measured. Latencies in seconds; ``records`` only when asked for."""

    tool: str
    requests: int
    duration: float
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0
    offered: float | None = None
    records: list[tuple[Any, float, float, int]] = field(default_factory=list)
    p50_s: float | None = None  # set directly by wrk, computed from latencies otherwise
    p99_s: float | None = None

    @property
    def throughput(self) -> float:
        return self.requests / self.duration if self.duration > 0 else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
        return ordered[index]

    @property
    def p50(self) -> float:
        return self.p50_s if self.p50_s is not None else self.percentile(50)

    @property
    def p99(self) -> float:
        return self.p99_s if self.p99_s is not None else self.percentile(99)


def http_request(url: str, body: str) -> bytes:
    """A form POST as raw HTTP/1.1 bytes."""
    parts = urlsplit(url)
    data = body.encode("ascii")
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    return head.encode("ascii") + data


def _target(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    host = parts.hostname or LOOPBACK
    if host not in (LOOPBACK, "localhost"):
        raise ValueError("the benchmark only sends traffic to 127.0.0.1")
    return LOOPBACK, int(parts.port or 80)


_STATUS = re.compile(rb"^HTTP/1\.([01]) (\d{3})")
_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
_CLOSE = re.compile(rb"\r\nconnection:\s*close", re.IGNORECASE)


class _Exchange:
    """One request on one socket: connect (if new), write, read the answer."""

    __slots__ = ("buffer", "due", "payload", "reused", "sent_at", "sock", "tag", "written")

    def __init__(self, sock: socket.socket, payload: bytes, tag: Any, due: float, reused: bool) -> None:
        self.sock = sock
        self.payload = payload
        self.tag = tag
        self.due = due
        self.sent_at = 0.0
        self.written = 0
        self.buffer = b""
        self.reused = reused

    def parse(self, eof: bool) -> tuple[int, bool] | None:
        """(status, keep-alive) once the whole answer is in, else None."""
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if eof:
                raise ConnectionError("connection closed before the answer")
            return None
        head = self.buffer[: end + 2]
        match = _STATUS.match(head)
        if match is None:
            raise ConnectionError("not an HTTP answer")
        length = _LENGTH.search(head)
        keep = match.group(1) == b"1" and _CLOSE.search(head) is None
        if length is not None:
            if len(self.buffer) - end - 4 < int(length.group(1)):
                if eof:
                    raise ConnectionError("connection closed in the body")
                return None
        elif not eof:
            return None  # body runs to the end of the connection
        else:
            keep = False
        return int(match.group(2)), keep


def drive(
    url: str,
    requests: Iterator[tuple[str, Any]],
    *,
    rate: float | None = None,
    connections: int = 16,
    duration: float | None = None,
    count: int | None = None,
    record: bool = False,
    timeout: float = 10.0,
) -> LoadResult:
    """Send form POSTs to ``url``: open-loop at ``rate`` per second, or closed-loop when None.

    Stops after ``duration`` seconds or ``count`` requests (at least one bound is
    required), then waits up to ``timeout`` for the answers in flight.
    """
    if duration is None and count is None:
        raise ValueError("give a duration or a count")
    host, port = _target(url)
    selector = selectors.DefaultSelector()
    idle: deque[socket.socket] = deque()
    backlog: deque[tuple[bytes, Any, float]] = deque()  # due, not yet sent (open loop)
    in_flight = 0
    result = LoadResult("python", 0, 0.0, offered=rate)
    start = time.monotonic()
    stop_at = start + duration if duration is not None else float("inf")
    issued = 0

    def next_request(due: float) -> tuple[bytes, Any, float] | None:
        nonlocal issued
        if count is not None and issued >= count:
            return None
        if due >= stop_at:
            return None
        body, tag = next(requests)
        issued += 1
        return http_request(url, body), tag, due

    def launch(payload: bytes, tag: Any, due: float) -> None:
        nonlocal in_flight
        reused = bool(idle)
        if reused:
            sock = idle.popleft()
            selector.unregister(sock)
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            code = sock.connect_ex((host, port))
            if code not in (0, errno.EINPROGRESS):
                sock.close()
                result.errors += 1
                return
        exchange = _Exchange(sock, payload, tag, due, reused)
        exchange.sent_at = time.monotonic()
        selector.register(sock, selectors.EVENT_WRITE, exchange)
        in_flight += 1

    def finish(exchange: _Exchange, status: int | None, keep: bool) -> None:
        nonlocal in_flight
        in_flight -= 1
        selector.unregister(exchange.sock)
        now = time.monotonic()
        if status is None:
            result.errors += 1
            exchange.sock.close()
        else:
            result.requests += 1
            result.statuses[status] += 1
            started = exchange.due if rate is not None else exchange.sent_at
            result.latencies.append(now - started)
            if record:
                result.records.append((exchange.tag, started, now, status))
            if keep:
                idle.append(exchange.sock)
                selector.register(exchange.sock, selectors.EVENT_READ, None)
            else:
                exchange.sock.close()

    def feed() -> None:
        """Start whatever is due and fits."""
        if rate is None:
            while in_flight < connections:
                item = next_request(time.monotonic())
                if item is None:
                    return
                launch(*item)
            return
        while in_flight < connections and backlog:
            launch(*backlog.popleft())

    scheduled = 0
    exhausted = False
    feed()
    while True:
        now = time.monotonic()
        if rate is not None:
            while not exhausted:
                due = start + scheduled / rate
                if due > now:
                    break
                item = next_request(due)
                if item is None:
                    exhausted = True
                    break
                backlog.append(item)
                scheduled += 1
            feed()
        elif now < stop_at:
            feed()
        done_sending = (exhausted or rate is None) and (
            now >= stop_at or (count is not None and issued >= count)
        )
        if done_sending and in_flight == 0 and not backlog:
            break
        if now > stop_at + timeout:
            break
        wait = 0.05
        if rate is not None and not exhausted:
            wait = max(0.0, min(wait, start + scheduled / rate - now))
        for key, mask in selector.select(wait):
            exchange = key.data
            if exchange is None:  # an idle keep-alive socket: closed by the server
                selector.unregister(key.fileobj)
                idle.remove(key.fileobj)  # type: ignore[arg-type]
                key.fileobj.close()  # type: ignore[union-attr]
                continue
            try:
                if mask & selectors.EVENT_WRITE:
                    sent = exchange.sock.send(exchange.payload[exchange.written:])
                    exchange.written += sent
                    if exchange.written == len(exchange.payload):
                        selector.modify(exchange.sock, selectors.EVENT_READ, exchange)
                    continue
                chunk = exchange.sock.recv(65536)
                exchange.buffer += chunk
                parsed = exchange.parse(eof=not chunk)
            except (ConnectionError, OSError):
                if exchange.reused and not exchange.buffer:
                    # The server closed an idle keep-alive socket: send again on a new one.
                    in_flight -= 1
                    selector.unregister(exchange.sock)
                    exchange.sock.close()
                    launch(exchange.payload, exchange.tag, exchange.due)
                else:
                    finish(exchange, None, False)
                continue
            if parsed is not None:
                finish(exchange, *parsed)
    result.errors += in_flight + len(backlog)  # no answer within the timeout
    result.duration = time.monotonic() - start
    if rate is not None and duration is not None:
        result.duration = max(result.duration, min(duration, scheduled / rate))
    for key in list(selector.get_map().values()):
        key.fileobj.close()  # type: ignore[union-attr]
    selector.close()
    return result


# -- wrk -----------------------------------------------------------------------------


def wrk_binary() -> str | None:
    return shutil.which("wrk")


_WRK_LINE = re.compile(r"^BENCH (.*)$", re.MULTILINE)


def run_wrk(url: str, script: str, *, connections: int, duration: float, threads: int = 1) -> LoadResult:
    """Saturate ``url`` with wrk and the given Lua script (which prints a BENCH line)."""
    binary = wrk_binary()
    if binary is None:
        raise RuntimeError("wrk is not installed")
    _target(url)
    with tempfile.TemporaryDirectory(prefix="fai-bench-wrk-") as folder:
        path = Path(folder) / "mix.lua"
        path.write_text(script, encoding="utf-8")
        out = subprocess.run(
            [binary, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s",
             "--timeout", "10s", "-s", str(path), url],
            capture_output=True, text=True, timeout=duration + 60, check=False,
        )
    match = _WRK_LINE.search(out.stdout)
    if out.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr[-500:]} {out.stdout[-500:]}")
    fields = dict(item.split("=") for item in match.group(1).split())
    errors = sum(int(fields[k]) for k in ("connect", "read", "write", "timeout"))
    return LoadResult(
        "wrk",
        int(fields["requests"]),
        int(fields["duration_us"]) / 1e6,
        errors=errors,
        p50_s=int(fields["p50_us"]) / 1e6,
        p99_s=int(fields["p99_us"]) / 1e6,
    )
