"""The bridge on a Redis Cluster of three masters that the test starts: lifecycle, worker, CLI reads.

A Lua script may touch keys of one hash slot only; the hash-tagged key prefix
puts every key of the bridge in one, so each script works on a Cluster as on
one server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask

from flask_autotask_ilert import AutotaskIlert
from flask_autotask_ilert.extension import get_bridge
from flask_autotask_ilert.lifecycle import State
from flask_autotask_ilert.testing.ilert_sim import IlertState, create_ilert_simulator
from flask_autotask_ilert.testing.servers import ServerThread
from flask_autotask_ilert.worker import Worker

from .conftest import INTEGRATION_KEY, TOKEN
from .redis_servers import Cluster

pytestmark = [
    pytest.mark.realprocess,
    pytest.mark.skipif(shutil.which("redis-cli") is None, reason="redis-cli builds the cluster"),
]

CALLOUT = f"/autotask-ilert/callout/{TOKEN}"
ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with Cluster(masters=3) as started:
        yield started


@pytest.fixture
def ilert() -> Iterator[tuple[IlertState, str]]:
    state = IlertState(integration_keys=[INTEGRATION_KEY])
    with ServerThread(create_ilert_simulator(state)) as server:
        yield state, server.url


def cluster_app(cluster: Cluster, ilert_url: str, prefix: str) -> Flask:
    app = Flask("cluster")
    app.config.update({
        "AUTOTASK_ILERT_CALLOUT_TOKEN": TOKEN,
        "AUTOTASK_ILERT_ILERT_INTEGRATION_KEY": INTEGRATION_KEY,
        "AUTOTASK_ILERT_ILERT_API_URL": ilert_url,
        "AUTOTASK_ILERT_REDIS_URL": cluster.url,
        "AUTOTASK_ILERT_REDIS_PREFIX": prefix,
        "AUTOTASK_ILERT_RATE_LIMIT": "100/second",  # counted on the cluster too
    })
    AutotaskIlert(app)
    return app


def callout(app: Flask, ticket: int, status: str) -> int:
    answer = app.test_client().post(CALLOUT, data=f"id={ticket}&status={status}",
                                    content_type="application/x-www-form-urlencoded")
    return answer.status_code


def test_lifecycle_and_worker_on_a_three_master_cluster(
    cluster: Cluster, ilert: tuple[IlertState, str]
) -> None:
    state, url = ilert
    app = cluster_app(cluster, url, "cluster-lifecycle:")
    bridge = get_bridge(app)
    assert bridge.store.keys.prefix == "{cluster-lifecycle}:"

    tickets = range(1, 31)
    assert [callout(app, t, "New") for t in tickets] == [202] * 30
    assert [callout(app, t, "New") for t in tickets] == [200] * 30  # nothing new: no second page
    assert all(callout(app, t, "Complete") == 202 for t in tickets[:10])
    assert bridge.store.queue_stats()["tickets"] == 30
    assert len(bridge.store.queue_heads()) == 30

    worker = Worker(bridge, threads=2)
    worker.beat()
    assert worker.drain(timeout=60) == 40
    assert bridge.store.queue_stats() == {"tickets": 0, "most_overdue_ms": 0, "dead_letters": 0}
    assert len(state.alerts()) == 30
    assert state.count_by_status().get("RESOLVED") == 10
    assert len(state.accepted_events()) == 40  # each event sent once
    mapping = bridge.store.mapping("default", 1)
    assert mapping is not None and mapping.state is State.RESOLVED
    assert bridge.store.audit("default", 1)
    assert bridge.store.heartbeats()
    assert bridge.store.forget("default", 12)
    assert bridge.store.mapping("default", 12) is None

    # Every key is in the tagged prefix's one slot, spread over no other.
    nodes = [redis.Redis(host, port) for host, port in (n.split(":") for n in cluster.url[16:].split(","))]
    keys = [k.decode() for node in nodes for k in node.scan_iter(count=1000)]
    assert keys and all(k.startswith("{cluster-lifecycle}:") for k in keys)
    slots = {nodes[0].cluster("keyslot", k) for k in keys}
    assert len(slots) == 1


def test_a_flood_is_limited_on_the_cluster(cluster: Cluster, ilert: tuple[IlertState, str]) -> None:
    app = cluster_app(cluster, ilert[1], "cluster-flood:")
    codes = [callout(app, 5000 + n, "New") for n in range(130)]
    assert codes.count(202) == 100 and codes.count(429) == 30


def test_an_existing_deployments_keys_move_to_the_cluster(
    cluster: Cluster, ilert: tuple[IlertState, str], redis_server: str, redis_prefix: str
) -> None:
    """docs/redis.md: stop the bridge, run scripts/move-redis-keys, start it on the cluster."""
    state, url = ilert
    before = Flask("one-server")
    before.config.update({
        "AUTOTASK_ILERT_CALLOUT_TOKEN": TOKEN,
        "AUTOTASK_ILERT_ILERT_INTEGRATION_KEY": INTEGRATION_KEY,
        "AUTOTASK_ILERT_REDIS_URL": redis_server,
        "AUTOTASK_ILERT_REDIS_PREFIX": redis_prefix,
    })
    AutotaskIlert(before)
    assert [callout(before, t, "New") for t in (7, 8, 9)] == [202] * 3
    assert callout(before, 7, "Complete") == 202

    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "move-redis-keys"), redis_server, redis_prefix, cluster.url],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    assert f"{{{redis_prefix[:-1]}}}:" in done.stdout

    after = cluster_app(cluster, url, redis_prefix)
    store = get_bridge(after).store
    assert store.queue_stats()["tickets"] == 3
    assert callout(after, 8, "New") == 200  # known: not paged again
    assert Worker(get_bridge(after), threads=1).drain(timeout=30) == 4
    assert len(state.alerts()) == 3 and state.count_by_status().get("RESOLVED") == 1
    assert [text for _, text in store.audit("default", 7)]  # the audit trail came along
