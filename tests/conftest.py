"""Shared fixtures: a fresh app per test, and a real Redis that the tests own or borrow safely.

The real Redis is the one on 127.0.0.1:6379 when it answers; otherwise the
tests start ``redis-server`` on a free port in a temporary directory. On a
borrowed server nothing is ever flushed: every test gets its own key prefix,
and only keys under that prefix are deleted afterwards.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import redis
import responses
from flask import Flask

from flask_autotask_ilert import AutotaskIlert
from flask_autotask_ilert.extension import get_bridge
from flask_autotask_ilert.testing.autotask_sim import AutotaskState, create_autotask_simulator
from flask_autotask_ilert.testing.servers import ServerThread
from flask_autotask_ilert.worker import Worker

from .deployment import Deployment
from .redis_servers import RedisProcess

if TYPE_CHECKING:
    from .tenant import Tenant

#: --reliability-report: the figures of docs/reliability.md (tests/reliability/report.py).
pytest_plugins = ("tests.reliability.report",)

DATA = Path(__file__).parent / "data"
TOKEN = "test-callout-token-0123456789abcdef"
INTEGRATION_KEY = "il1api-test-integration-key-42"


def drain(app: Flask) -> int:
    """Deliver everything due now with one worker thread; the number of events handled."""
    return Worker(get_bridge(app), threads=1).drain(timeout=10)


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    """HTTP faked at the requests level; modules that need preset answers override it."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def data_text(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8").strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """URL of a real Redis (without a db number; tests pick their own keys)."""
    env_url = os.environ.get("TEST_REDIS_URL")
    if env_url and _answers(env_url):
        yield env_url
        return
    if _answers("redis://127.0.0.1:6379/0"):
        yield "redis://127.0.0.1:6379/0"
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("no Redis on 127.0.0.1:6379 and no redis-server binary; run `make test`")
    workdir = tempfile.mkdtemp(prefix="fai-redis-")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        if _answers(url):
            break
        time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(10)
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def redis_prefix(redis_server: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards, nothing else."""
    prefix = f"fai-test-{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_server)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)


class Clock:
    """A clock the tests move by hand; nothing waits for real time."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


#: The project's root: real-process deployments run from it.
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def deploy(redis_server: str, redis_prefix: str, tmp_path: Path) -> Iterator[Callable[..., Deployment]]:
    """Makes this test's deployment (gunicorn, workers, simulators), stopped after the test.

    Its keys are under the test's own Redis prefix and its files in the test's
    folder; the keyword arguments are Deployment's (``extra_env``, ``web_workers``...).
    """
    with ExitStack() as stack:

        def make(**options: Any) -> Deployment:
            return stack.enter_context(Deployment(
                redis_url=redis_server, redis_prefix=redis_prefix, workdir=tmp_path, root=ROOT, **options))

        yield make


@pytest.fixture
def autotask() -> Iterator[tuple[AutotaskState, str]]:
    """The Autotask simulator on a port of its own: its state, and its URL."""
    state = AutotaskState()
    with ServerThread(create_autotask_simulator(state)) as server:
        yield state, server.url


@pytest.fixture
def tenant() -> Iterator[Tenant]:
    """A simulated tenant: Autotask and ilert simulators, and the app's settings for them."""
    from .tenant import running_tenant  # tenant.py takes its constants from this module

    with running_tenant() as running:
        yield running


@pytest.fixture
def clock() -> Clock:
    return Clock()


AppFactory = Callable[..., Flask]


@pytest.fixture(params=["fakeredis", "redis", "valkey"])
def backend(request: pytest.FixtureRequest) -> str:
    """Store tests run on each: Lua and TTL semantics can differ between them."""
    return str(request.param)


@pytest.fixture(scope="session")
def valkey_server() -> Iterator[str]:
    """URL of a Valkey the tests start, from a ``valkey-server`` on PATH (skipped without one)."""
    binary = shutil.which("valkey-server")
    if binary is None:
        pytest.skip("no valkey-server on PATH (Debian 12 does not package Valkey): "
                    "the store tests ran on fakeredis and redis-server only")
    with RedisProcess(binary) as server:
        yield server.url


@pytest.fixture
def server_url(backend: str, request: pytest.FixtureRequest) -> tuple[str, str]:
    """The URL and a key prefix of this test's own on the real server behind ``backend``."""
    if backend == "valkey":
        return request.getfixturevalue("valkey_server"), f"fai-test-{uuid.uuid4().hex[:12]}:"
    return request.getfixturevalue("redis_server"), request.getfixturevalue("redis_prefix")


@pytest.fixture
def make_app(request: pytest.FixtureRequest, clock: Clock) -> AppFactory:
    """Build a fresh app from a config dict (defaults: one source, the in-process store).

    ``real_redis=True`` puts it on the real Redis under the test's own prefix.
    """

    def factory(**config: Any) -> Flask:
        app = Flask(f"test-{uuid.uuid4().hex[:6]}")
        app.config.update(
            {
                "TESTING": True,
                "AUTOTASK_ILERT_CALLOUT_TOKEN": TOKEN,
                "AUTOTASK_ILERT_ILERT_INTEGRATION_KEY": INTEGRATION_KEY,
                "AUTOTASK_ILERT_ILERT_API_URL": "http://ilert.invalid",
                "AUTOTASK_ILERT_RETRY_BASE_SECONDS": 1.0,
                "AUTOTASK_ILERT_REDIS_URL": "memory://",
            }
        )
        if config.pop("real_redis", False):
            url = request.getfixturevalue("redis_server")
            app.config["AUTOTASK_ILERT_REDIS_URL"] = url
            app.config["AUTOTASK_ILERT_REDIS_PREFIX"] = request.getfixturevalue("redis_prefix")
        app.config.update({f"AUTOTASK_ILERT_{k.upper()}": v for k, v in config.items()})
        AutotaskIlert(app)
        app.extensions["autotask_ilert"].clock = clock
        app.extensions["autotask_ilert"].store._clock = clock
        return app

    return factory
