"""Which Redis the bridge uses: REDIS_URL must be set; memory:// is asked for; no password is shown."""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import time
from pathlib import Path

import pytest
from flask import Flask

from flask_autotask_ilert import AutotaskIlert, ConfigurationError
from flask_autotask_ilert.extension import get_bridge
from flask_autotask_ilert.lifecycle import State
from flask_autotask_ilert.redis_url import CLUSTER, SENTINEL, parse

from .conftest import INTEGRATION_KEY, TOKEN
from .redis_servers import RedisProcess, free_port

ROOT = Path(__file__).parents[1]
CALLOUT = f"/autotask-ilert/callout/{TOKEN}"
PASSWORD = "redis-pass-never-shown-0123"


def app_with(**config: object) -> Flask:
    app = Flask("urls")
    app.config.update({"AUTOTASK_ILERT_CALLOUT_TOKEN": TOKEN,
                       "AUTOTASK_ILERT_ILERT_INTEGRATION_KEY": INTEGRATION_KEY,
                       **{f"AUTOTASK_ILERT_{k.upper()}": v for k, v in config.items()}})
    AutotaskIlert(app)
    return app


def test_no_url_is_a_configuration_error_that_says_what_to_set() -> None:
    with pytest.raises(ConfigurationError) as info:
        app_with()
    message = str(info.value)
    assert "AUTOTASK_ILERT_REDIS_URL is not set" in message
    assert "redis://" in message and "memory://" in message


def test_memory_url_is_an_in_process_store_that_works() -> None:
    app = app_with(redis_url="memory://")
    answer = app.test_client().post(CALLOUT, data="id=42&status=New",
                                    content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 202
    mapping = get_bridge(app).store.mapping("default", 42)
    assert mapping is not None and mapping.state is State.PENDING


def test_memory_url_without_fakeredis_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fakeredis", None)  # as if the extra were not installed
    with pytest.raises(ConfigurationError) as info:
        app_with(redis_url="memory://")
    assert 'pip install "flask-autotask-ilert[memory]"' in str(info.value)


def test_fakeredis_is_imported_only_for_memory_urls(redis_server: str, redis_prefix: str) -> None:
    code = (
        "import sys\n"
        "from flask import Flask\n"
        "from flask_autotask_ilert import AutotaskIlert\n"
        "import flask_autotask_ilert.cli, flask_autotask_ilert.worker\n"
        "app = Flask('lazy')\n"
        f"app.config.update(AUTOTASK_ILERT_CALLOUT_TOKEN={TOKEN!r},\n"
        f"    AUTOTASK_ILERT_ILERT_INTEGRATION_KEY={INTEGRATION_KEY!r},\n"
        f"    AUTOTASK_ILERT_REDIS_URL={redis_server!r}, AUTOTASK_ILERT_REDIS_PREFIX={redis_prefix!r})\n"
        "AutotaskIlert(app)\n"
        f"r = app.test_client().post({CALLOUT!r}, data='id=1&status=New',\n"
        "    content_type='application/x-www-form-urlencoded')\n"
        "assert r.status_code == 202, r.status_code\n"
        "print('fakeredis' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"redis://:{PASSWORD}@10.0.0.5:6379/0", "redis://:***@10.0.0.5:6379/0"),
        (f"rediss://bridge:{PASSWORD}@redis.example:6380/2", "rediss://bridge:***@redis.example:6380/2"),
        (f"redis://10.0.0.5/0?password={PASSWORD}", "redis://10.0.0.5/0?password=***"),
        (f"redis+sentinel://:{PASSWORD}@s1:26379,s2:26380/bridge/3",
         "redis+sentinel://:***@s1:26379,s2:26380/bridge/3 (Sentinel, master 'bridge')"),
        (f"redis+cluster://:{PASSWORD}@c1:7000,c2:7001,c3",
         "redis+cluster://:***@c1:7000,c2:7001,c3:6379 (Cluster)"),
    ],
)
def test_the_description_hides_the_password(url: str, shown: str) -> None:
    assert parse(url).describe() == shown
    assert PASSWORD not in repr(parse(url))


def test_sentinel_and_cluster_urls_are_read_as_limits_reads_them() -> None:
    sentinel = parse(f"redis+sentinel://:{PASSWORD}@s1,s2:26380/bridge/3")
    assert (sentinel.kind, sentinel.hosts, sentinel.service, sentinel.db, sentinel.password) == (
        SENTINEL, (("s1", 26379), ("s2", 26380)), "bridge", 3, PASSWORD)
    uri, options = sentinel.limits_uri()
    # limits reads the whole path as the master's name: the db goes as an option
    assert uri == f"redis+sentinel://:{PASSWORD}@s1:26379,s2:26380/bridge"
    assert options["db"] == 3
    cluster = parse("redis+cluster://c1:7000,c2:7001")
    assert (cluster.kind, cluster.hosts) == (CLUSTER, (("c1", 7000), ("c2", 7001)))
    assert cluster.limits_uri()[0] == "redis+cluster://c1:7000,c2:7001"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://redis.example/0", "unknown scheme 'http'"),
        ("localhost:6379", "unknown scheme"),
        ("redis+sentinel://s1:26379", "name the master"),
        ("redis+sentinel://s1:26379/bridge/zero", "db must be a number"),
        ("redis+cluster://c1:7000/2", "only db 0"),
        ("redis+cluster:///", "at least one host"),
    ],
)
def test_a_malformed_url_is_a_configuration_error(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        app_with(redis_url=url)


def test_on_a_cluster_every_key_shares_one_hash_slot() -> None:
    cluster = parse("redis+cluster://c1:7000")
    assert cluster.key_prefix("autotask-ilert:") == "{autotask-ilert}:"
    assert cluster.key_prefix("{team-a}:bridge:") == "{team-a}:bridge:"  # already tagged
    assert parse("redis://h/0").key_prefix("autotask-ilert:") == "autotask-ilert:"  # keys stay put


def start_worker_and_read_its_first_lines(url: str) -> tuple[str, bool]:
    """Run ``flask autotask-ilert worker`` until it says it has started; its output, and
    whether it was still running then."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOTASK_ILERT_")}
    env.update({"FLASK_APP": "examples.msp_portal", "PYTHONPATH": str(ROOT),
                "AUTOTASK_ILERT_CALLOUT_TOKEN": TOKEN,
                "AUTOTASK_ILERT_ILERT_INTEGRATION_KEY": INTEGRATION_KEY,
                "AUTOTASK_ILERT_REDIS_URL": url})
    proc = subprocess.Popen([sys.executable, "-m", "flask", "autotask-ilert", "worker"], env=env,
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not any("thread(s)" in s for s in seen):
                if selector.select(timeout=1):
                    line = proc.stdout.readline()
                    if not line:
                        break
                    seen.append(line)
        running = proc.poll() is None
    finally:
        proc.terminate()
        rest, _ = proc.communicate(timeout=30)
    return "".join(seen) + rest, running


@pytest.mark.realprocess
def test_the_worker_says_which_redis_it_uses_without_the_password() -> None:
    with RedisProcess("redis-server", "--requirepass", PASSWORD) as server:
        output, running = start_worker_and_read_its_first_lines(
            f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0")
    assert running
    assert f"worker: redis redis://:***@127.0.0.1:{server.port}/0\n" in output
    assert PASSWORD not in output


@pytest.mark.realprocess
def test_a_worker_started_while_redis_is_down_says_where_it_waits() -> None:
    port = free_port()
    output, running = start_worker_and_read_its_first_lines(f"redis://:{PASSWORD}@127.0.0.1:{port}/0")
    assert running  # it waits for Redis, as under systemd when Redis starts later
    assert f"worker: redis redis://:***@127.0.0.1:{port}/0\n" in output
    assert PASSWORD not in output
