"""The floor: the bare endpoint plus the one Redis round trip every callout must make.

The bridge answers a callout only after one script call has recorded it in
Redis (nothing may be lost), so no design of it can beat this endpoint: it
parses the form like ``bench.bare``, sends one ``EVALSHA`` of the least script
that records anything, and answers 202. Its throughput against the bare ceiling is the
most any one-round-trip callout endpoint can reach under the same gunicorn
settings; the benchmark measures it beside the portal. The script writes one
small value (the ticket id under one key), so Redis appends it to its AOF like
every recorded callout, and does nothing else.

``FLOOR_CLIENT`` picks the client: ``redis-py`` (what the bridge uses, with the
bridge's socket settings) or ``socket`` (one plain blocking socket per process
and a hand-packed command: the least any Python client can spend).
"""

from __future__ import annotations

import os
import socket
from urllib.parse import parse_qsl, urlparse

import redis
from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

RECORD = "redis.call('SET', KEYS[1], ARGV[1]) return ARGV[1]"


def _packed(*parts: bytes) -> bytes:
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


class _PlainSocket:
    """One blocking socket per process; reads exactly the bulk-string reply of RECORD."""

    def __init__(self, url: str, sha: str) -> None:
        parts = urlparse(url)
        self.address = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self.sha = sha.encode()
        self.sock: socket.socket | None = None
        self.pid = 0

    def call(self, arg: str) -> bytes:
        if self.sock is None or self.pid != os.getpid():  # gunicorn forks after the import
            self.sock = socket.create_connection(self.address)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.pid = os.getpid()
        self.sock.sendall(_packed(b"EVALSHA", self.sha, b"1", b"floor:last", arg.encode()))
        reply = self.sock.recv(65536)
        if not reply.startswith(b"$"):
            raise RuntimeError(f"unexpected reply {reply[:80]!r}")
        header, _, rest = reply.partition(b"\r\n")
        size = int(header[1:])
        while len(rest) < size + 2:
            more = self.sock.recv(65536)
            if not more:
                raise ConnectionError("redis closed the connection")
            rest += more
        return rest[:size]


def create_app() -> Flask:
    app = Flask(__name__)
    url = os.environ["AUTOTASK_ILERT_REDIS_URL"]
    client = redis.Redis.from_url(
        url, socket_timeout=2.0, socket_connect_timeout=2.0, health_check_interval=30
    )
    script = client.register_script(RECORD)
    client.script_load(RECORD)  # the plain socket only ever sends EVALSHA
    plain = _PlainSocket(url, script.sha) if os.environ.get("FLOOR_CLIENT") == "socket" else None

    @app.post("/autotask-ilert/callout/<token>")
    def callout(token: str) -> ResponseReturnValue:
        fields = dict(parse_qsl(request.get_data(as_text=True), keep_blank_values=True))
        ticket = fields.get("id", "0")
        if plain is not None:
            plain.call(ticket)
        else:
            script(keys=["floor:last"], args=[ticket])
        return jsonify({"ticket": int(ticket), "action": "create", "state": "PENDING"}), 202

    @app.get("/autotask-ilert/healthz")
    def healthz() -> ResponseReturnValue:
        return jsonify({"status": "ok"}), 200

    return app
