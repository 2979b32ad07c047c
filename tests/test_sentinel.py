"""The bridge behind Sentinel: the master fails over in the middle of a burst of callouts.

A master, a replica and three Sentinels run on loopback ports. Callouts answered
503 while the Sentinels switch are sent again, as a sender that retries would;
once the new master is in place, every ticket has exactly one alert in ilert:
nothing lost, nothing paged twice. A delivery that was in flight during the
switch may reach ilert twice (its removal from the queue could not be written);
ilert folds the repeat into the same alert by its alertKey, which this test checks.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from flask import Flask

from flask_autotask_ilert import AutotaskIlert
from flask_autotask_ilert.extension import get_bridge
from flask_autotask_ilert.lifecycle import State
from flask_autotask_ilert.testing.ilert_sim import IlertState, create_ilert_simulator
from flask_autotask_ilert.testing.servers import ServerThread
from flask_autotask_ilert.worker import Worker

from .conftest import INTEGRATION_KEY, TOKEN
from .redis_servers import SentinelSet, wait_for

pytestmark = pytest.mark.realprocess

CALLOUT = f"/autotask-ilert/callout/{TOKEN}"
TICKETS = 240
SENDERS = 4


@pytest.fixture
def sentinels() -> Iterator[SentinelSet]:
    with SentinelSet("bridge") as started:
        yield started


def send_until_answered(app: Flask, ticket: int, answers: Counter[int], lock: threading.Lock) -> None:
    """One callout, sent again after each 503 (or a refused connection) until it is answered."""
    client = app.test_client()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        code = client.post(CALLOUT, data=f"id={ticket}&status=New",
                           content_type="application/x-www-form-urlencoded").status_code
        with lock:
            answers[code] += 1
        if code != 503:
            return
        time.sleep(0.05)
    raise AssertionError(f"ticket {ticket}: still 503 after 60 s")


def test_a_failover_mid_burst_loses_nothing_and_pages_once(sentinels: SentinelSet) -> None:
    ilert = IlertState(integration_keys=[INTEGRATION_KEY])
    with ServerThread(create_ilert_simulator(ilert)) as ilert_server:
        app = Flask("sentinel")
        app.config.update({
            "AUTOTASK_ILERT_CALLOUT_TOKEN": TOKEN,
            "AUTOTASK_ILERT_ILERT_INTEGRATION_KEY": INTEGRATION_KEY,
            "AUTOTASK_ILERT_ILERT_API_URL": ilert_server.url,
            "AUTOTASK_ILERT_REDIS_URL": sentinels.url,
            "AUTOTASK_ILERT_WORKER_LEASE_SECONDS": 2.0,
            "AUTOTASK_ILERT_WORKER_POLL_SECONDS": 0.05,
            "AUTOTASK_ILERT_RETRY_BASE_SECONDS": 0.2,
            "AUTOTASK_ILERT_ILERT_RATE_LIMIT": 0,  # no pacing: the test waits for every alert
            # counted through the Sentinels too, high enough for the retries of the switch
            "AUTOTASK_ILERT_RATE_LIMIT": "100000/minute",
        })
        AutotaskIlert(app)
        bridge = get_bridge(app)
        assert "Sentinel, master 'bridge'" in bridge.redis.describe()
        first_master = sentinels.master_port()

        stop = threading.Event()
        worker = threading.Thread(target=Worker(bridge, threads=2).run, args=(stop,), daemon=True)
        worker.start()
        answers: Counter[int] = Counter()
        sent = iter(range(1, TICKETS + 1))
        lock = threading.Lock()

        def sender() -> None:
            while True:
                with lock:
                    ticket = next(sent, None)
                if ticket is None:
                    return
                send_until_answered(app, ticket, answers, lock)
                time.sleep(0.01)

        senders = [threading.Thread(target=sender) for _ in range(SENDERS)]
        try:
            for thread in senders:
                thread.start()
            wait_for(lambda: sum(answers.values()) >= TICKETS // 4, 60, "a quarter of the burst")
            sentinels.sentinels[0].client().execute_command("SENTINEL", "FAILOVER", "bridge")
            for thread in senders:
                thread.join(120)
            wait_for(lambda: sentinels.master_port() != first_master, 30, "the new master")
            wait_for(lambda: len(ilert.alerts()) >= TICKETS and bridge.store.queue_stats()["tickets"] == 0,
                     60, "every ticket's alert")
        finally:
            stop.set()
            worker.join(30)

        assert sentinels.master_port() == sentinels.replica.port  # the switch happened
        # Each ticket answered once with 2xx: 202 recorded, or 200 when a retry found it recorded
        # already (the script ran, but its answer was lost in the switch).
        assert answers[202] + answers[200] == TICKETS
        keys = Counter(alert.key for alert in ilert.alerts())
        assert len(keys) == TICKETS and set(keys.values()) == {1}  # one alert per ticket
        assert bridge.store.queue_stats()["dead_letters"] == 0
        for ticket in (1, TICKETS // 2, TICKETS):
            mapping = bridge.store.mapping("default", ticket)
            assert mapping is not None and mapping.state is State.PENDING
        per_key = Counter(e.body.get("alertKey") for e in ilert.accepted_events())
        repeats = sum(n - 1 for n in per_key.values())
        print(f"\n503 answers during the switch: {answers[503]}; events repeated to ilert: {repeats}")
