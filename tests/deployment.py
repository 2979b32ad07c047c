"""A whole deployment on loopback: gunicorn, worker processes, simulators, Redis.

The end-to-end tests and the benchmark both need the bridge as it really
runs (separate processes sharing one Redis), with the simulators standing in
for ilert and Autotask. This module starts and stops all of it; it never
touches a Redis key outside the prefix it was given. It lives with the tests,
not in the package, because it runs the example app from a source checkout.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import requests

from flask_autotask_ilert.testing.autotask_sim import AutotaskState, create_autotask_simulator
from flask_autotask_ilert.testing.ilert_sim import IlertState, create_ilert_simulator
from flask_autotask_ilert.testing.servers import ServerThread

DEFAULT_APP = "examples.msp_portal:create_app()"
DEFAULT_FLASK_APP = "examples.msp_portal"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Any, timeout: float, interval: float = 0.05, what: str = "condition") -> None:
    """Poll ``predicate`` until true; raise TimeoutError naming ``what`` if it never is."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


@dataclass
class Deployment:
    """One bridge deployment. Use as a context manager; ``start_*`` as the scenario needs."""

    redis_url: str
    redis_prefix: str
    workdir: Path
    root: Path = field(default_factory=Path.cwd)
    web_workers: int = 2
    token: str = "e2e-callout-token-0123456789abcdef"
    integration_key: str = "il1api-e2e-integration-key"
    extra_env: Mapping[str, str] = field(default_factory=dict)
    app_spec: str = DEFAULT_APP
    flask_app: str = DEFAULT_FLASK_APP

    def __post_init__(self) -> None:
        self.ilert = IlertState(integration_keys=[self.integration_key])
        self.autotask = AutotaskState()
        self._ilert_server = ServerThread(create_ilert_simulator(self.ilert))
        self._autotask_server = ServerThread(create_autotask_simulator(self.autotask))
        self.web: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.web_port = free_port()
        self._logs: list[IO[bytes]] = []

    # -- addresses -------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def callout_url(self) -> str:
        return f"{self.base_url}/autotask-ilert/callout/{self.token}"

    def send_ilert_webhooks(self, token: str) -> None:
        """Let the ilert simulator post its alert-action webhooks to this deployment (BIDIRECTIONAL)."""
        self.ilert.webhook_url = f"{self.base_url}/autotask-ilert/ilert/{token}"

    def env(self) -> dict[str, str]:
        at = self.autotask
        username, (secret, code) = next(iter(at.credentials.items()))
        env = {
            **os.environ,
            "PYTHONPATH": str(self.root),
            "AUTOTASK_ILERT_REDIS_URL": self.redis_url,
            "AUTOTASK_ILERT_REDIS_PREFIX": self.redis_prefix,
            "AUTOTASK_ILERT_CALLOUT_TOKEN": self.token,
            "AUTOTASK_ILERT_ILERT_INTEGRATION_KEY": self.integration_key,
            "AUTOTASK_ILERT_ILERT_API_URL": self._ilert_server.url,
            "AUTOTASK_ILERT_ILERT_RATE_LIMIT": "0",
            "AUTOTASK_ILERT_RATE_LIMIT": "off",  # bursts and kill tests flood one source on purpose
            "AUTOTASK_ILERT_AUTOTASK_USERNAME": username,
            "AUTOTASK_ILERT_AUTOTASK_SECRET": secret,
            "AUTOTASK_ILERT_AUTOTASK_INTEGRATION_CODE": code,
            "AUTOTASK_ILERT_AUTOTASK_API_URL": f"{self._autotask_server.url}/atservicesrest",
            "AUTOTASK_ILERT_WORKER_POLL_SECONDS": "0.02",
            "AUTOTASK_ILERT_RETRY_BASE_SECONDS": "0.2",
            "AUTOTASK_ILERT_RETRY_CAP_SECONDS": "2",
            "AUTOTASK_ILERT_HTTP_READ_TIMEOUT": "3",
            "BIND": f"127.0.0.1:{self.web_port}",
            "WEB_CONCURRENCY": str(self.web_workers),
            "ACCESS_LOG": "",
            "LOG_LEVEL": "WARNING",
        }
        env.pop("FLASK_APP", None)
        env.update(self.extra_env)
        return env

    def _log(self, name: str) -> IO[bytes]:
        handle = (self.workdir / f"{name}.log").open("ab")
        self._logs.append(handle)
        return handle

    def logs(self) -> str:
        """Everything the processes wrote (for failure messages and secret scans)."""
        return "\n".join(
            p.read_text(errors="replace") for p in sorted(self.workdir.glob("*.log"))
        )

    # -- processes --------------------------------------------------------------------

    def start(self, workers: int = 1) -> Deployment:
        self._ilert_server.start()
        self._autotask_server.start()
        self.autotask.callout_url = self.callout_url
        self.start_web()
        for _ in range(workers):
            self.start_worker()
        return self

    def start_web(self) -> None:
        log = self._log("gunicorn")
        self.web = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "examples/gunicorn.conf.py", self.app_spec],
            cwd=self.root,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(self._healthy, 30, what=f"gunicorn to answer; log:\n{self.logs()[-2000:]}")

    def _healthy(self) -> bool:
        if self.web is not None and self.web.poll() is not None:
            raise RuntimeError(f"gunicorn exited early:\n{self.logs()[-3000:]}")
        try:
            return requests.get(f"{self.base_url}/autotask-ilert/healthz", timeout=1).ok
        except requests.RequestException:
            return False

    def start_worker(self, threads: int | None = None) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "flask", "--app", self.flask_app, "autotask-ilert", "worker"]
        if threads:
            command += ["--threads", str(threads)]
        process = subprocess.Popen(
            command,
            cwd=self.root,
            env=self.env(),
            stdout=self._log(f"worker-{len(self.workers)}"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.workers.append(process)
        return process

    def kill(self, process: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        if process.poll() is None:
            os.killpg(process.pid, sig)
            process.wait(10)

    def web_worker_pids(self) -> list[int]:
        """The gunicorn worker processes (children of the master)."""
        if self.web is None:
            return []
        out = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.web.pid)], capture_output=True, text=True,
            check=False,
        )
        return [int(p) for p in out.stdout.split()]

    def stop(self) -> None:
        for process in [*self.workers, *([self.web] if self.web else [])]:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in [*self.workers, *([self.web] if self.web else [])]:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        self._ilert_server.stop()
        self._autotask_server.stop()
        for handle in self._logs:
            handle.close()

    def __enter__(self) -> Deployment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
