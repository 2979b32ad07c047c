"""The benchmark's own redis-server: a free port, a temporary directory, nothing shared.

The benchmark never touches a Redis it did not start: it may flush this one,
restart it with other persistence settings, and read its INFO and MONITOR.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from tests.deployment import free_port


class RedisServer:
    """One redis-server process; ``restart()`` keeps the port and changes the settings."""

    def __init__(self, appendfsync: str | None = "everysec") -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found; `make bench` installs Debian's package")
        self.binary = binary
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="fai-bench-redis-"))
        self.appendfsync = appendfsync
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=30)

    def start(self) -> RedisServer:
        persistence = (
            ["--appendonly", "yes", "--appendfsync", self.appendfsync]
            if self.appendfsync
            else ["--appendonly", "no"]
        )
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--dir", str(self.dir), "--protected-mode", "yes", *persistence],
            stdout=(self.dir / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return self
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start; see {self.dir / 'redis.log'}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def restart(self, appendfsync: str | None) -> None:
        """Stop, wipe the data directory's files, and start with another fsync policy."""
        self.stop()
        for path in self.dir.iterdir():
            if path.name != "redis.log":
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        self.appendfsync = appendfsync
        self.start()

    def version(self) -> str:
        return str(self.client().info("server")["redis_version"])

    def info(self, section: str) -> dict[str, Any]:
        return dict(self.client().info(section))

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
