"""The real deployment over real sockets: gunicorn (2 workers), worker processes,
redis-server, and the project's ilert and Autotask simulators.

The expected outcome comes from a model of the lifecycle written here, apart
from the package's own table, so a mistake in one cannot hide in the other.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests

from tests.deployment import Deployment, wait_until

pytestmark = pytest.mark.realprocess  # slow; deselect with -m "not realprocess"


NEW, IN_PROGRESS, CLOSED, WAITING, OTHER = "NEW", "IN_PROGRESS", "CLOSED", "WAITING", "OTHER"
LABELS = {
    "New": NEW,
    "In Progress": IN_PROGRESS,
    "Complete": CLOSED,
    "Denied": CLOSED,
    "Waiting Customer": WAITING,
    "Scheduled": WAITING,
    "Escalate": WAITING,
    "Customer Note Added": OTHER,
}


def model(walk: list[str]) -> tuple[list[str], str, list[tuple[int, str]]]:
    """Events ilert must receive, the final mapping state, and each callout's (code, action)."""
    state, events, answers = "NONE", [], []
    for label in walk:
        cls = LABELS[label]
        if state == "NONE" and cls in (CLOSED, WAITING):
            answers.append((400, "reject"))
        elif state == "NONE":
            state = "PENDING"
            events.append("ALERT")
            answers.append((202, "create"))
        elif state == "PENDING" and cls in (IN_PROGRESS, WAITING):
            state = "ACCEPTED"
            events.append("ACCEPT")
            answers.append((202, "accept"))
        elif state in ("PENDING", "ACCEPTED") and cls == CLOSED:
            state = "RESOLVED"
            events.append("RESOLVE")
            answers.append((202, "resolve"))
        else:
            answers.append((200, "nothing"))
    return events, state, answers


def received(deployment: Deployment) -> dict[str, list[str]]:
    """Event types per alert key, as ilert accepted them (2xx or 'no open alert')."""
    per_key: dict[str, list[str]] = {}
    for event in deployment.ilert.events():
        if event.status_code is not None and (200 <= event.status_code < 300 or event.status_code == 400):
            per_key.setdefault(event.body["alertKey"], []).append(event.body["eventType"])
    return per_key


@pytest.fixture
def deployment(deploy: Callable[..., Deployment]) -> Deployment:
    return deploy(extra_env={"AUTOTASK_ILERT_WORKER_LEASE_SECONDS": "3"})


def test_random_status_walks_end_exactly_as_the_lifecycle_says(deployment: Deployment) -> None:
    deployment.start(workers=1)
    rng = random.Random(20261127)
    labels = list(LABELS)
    walks = [[rng.choice(labels) for _ in range(rng.randint(1, 7))] for _ in range(120)]
    answers: dict[int, list[tuple[int, str]]] = {}
    lock = threading.Lock()

    def play(walk: list[str]) -> None:
        ticket, first = deployment.autotask.create_ticket(
            f"Outage {rng.random():.6f}", priority_label=rng.choice(["Low", "High", "Critical"]),
            status_label=walk[0],
        )
        got = [first]
        got += [deployment.autotask.set_status(ticket["id"], label) for label in walk[1:]]
        with lock:
            answers[ticket["id"]] = [
                (r.status_code or 0, (r.body_json or {}).get("action", "")) for r in got if r
            ]
            walks_by_ticket[ticket["id"]] = walk

    walks_by_ticket: dict[int, list[str]] = {}
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(play, walks))

    expected = {tid: model(walk) for tid, walk in walks_by_ticket.items()}
    for tid, (_, _, expected_answers) in expected.items():
        assert answers[tid] == expected_answers, (tid, walks_by_ticket[tid])

    want = {f"autotask-{tid}": events for tid, (events, _, _) in expected.items() if events}
    total = sum(len(v) for v in want.values())
    wait_until(lambda: sum(len(v) for v in received(deployment).values()) >= total, 60,
               what=f"{total} events at ilert")
    deployment.autotask.wait_idle(2)
    assert received(deployment) == want

    status_of = {"PENDING": "PENDING", "ACCEPTED": "ACCEPTED", "RESOLVED": "RESOLVED"}
    for tid, (events, state, _) in expected.items():
        alert = deployment.ilert.alert_for(f"autotask-{tid}")
        if not events:
            assert alert is None
            continue
        assert alert is not None and alert.status == status_of[state], tid
        ticket = deployment.autotask.ticket(tid)
        assert ticket is not None and alert.summary.endswith(ticket["title"])
        assert alert.priority == ("LOW" if ticket["priority"] == 3 else "HIGH")

    # The store agrees: every mapping in its final state, no queue left, no dead letter.
    store = redis.Redis.from_url(deployment.redis_url, decode_responses=True)
    prefix = deployment.redis_prefix
    for tid, (_, state, _) in expected.items():
        raw = store.hget(f"{prefix}map:default:{tid}", "s")
        assert (raw.split("|")[0] if raw else "NONE") == state, tid
    wait_until(lambda: store.zcard(f"{prefix}ready") == 0, 10, what="an empty queue")
    assert store.llen(f"{prefix}dead") == 0
    # Status-only callouts cost no Autotask calls: reads equal alerts created (+ picklists).
    reads = deployment.autotask.calls_matching("GET", "/Tickets/")
    ticket_reads = [c for c in reads if "entityInformation" not in c.path]
    queried = [t for c in deployment.autotask.calls_matching("POST", "/atservicesrest/v1.0/Tickets/query")
               for t in c.json_body["filter"][0]["value"]]  # new tickets taken up together
    assert len(ticket_reads) + len(queried) == len(want)
    assert deployment.autotask.calls_matching("PATCH") == []


def test_fifty_concurrent_identical_callouts_make_one_alert(deployment: Deployment) -> None:
    deployment.start(workers=1)
    deployment.autotask.fire_callouts = False
    ticket = deployment.autotask.add_ticket("Core switch down", priority_label="Critical")
    body = f"id={ticket['id']}&number={ticket['ticketNumber']}&status=New&domain=X"
    barrier = threading.Barrier(50)

    def post(_: int) -> int:
        barrier.wait()
        return requests.post(
            deployment.callout_url, data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=10,
        ).status_code

    with ThreadPoolExecutor(50) as pool:
        codes = list(pool.map(post, range(50)))
    assert sorted(codes).count(202) == 1 and codes.count(200) == 49
    wait_until(lambda: received(deployment), 10, what="the alert")
    deployment.autotask.wait_idle(1)
    assert received(deployment) == {f"autotask-{ticket['id']}": ["ALERT"]}
    assert len(deployment.ilert.alerts()) == 1


def test_killed_worker_loses_nothing(deployment: Deployment) -> None:
    deployment.start(workers=0)
    deployment.ilert.latency = 0.01
    tickets = []
    for n in range(60):
        ticket, _ = deployment.autotask.create_ticket(f"Backlog {n}", status_label="New")
        deployment.autotask.set_status(ticket["id"], "In Progress")
        deployment.autotask.set_status(ticket["id"], "Complete")
        tickets.append(ticket["id"])
    total = 3 * len(tickets)

    for round_ in range(3):
        worker = deployment.start_worker(threads=4)
        target = (round_ + 1) * total // 4
        wait_until(lambda t=target: len(deployment.ilert.events()) >= t, 60,
                   what=f"{target} deliveries before the kill")
        deployment.kill(worker, signal.SIGKILL)

    deployment.start_worker(threads=4)
    wait_until(lambda: all(
        (a := deployment.ilert.alert_for(f"autotask-{t}")) is not None and a.status == "RESOLVED"
        for t in tickets), 90, what="every alert resolved")
    deployment.autotask.wait_idle(1)

    got = received(deployment)
    for tid in tickets:
        sequence = got[f"autotask-{tid}"]
        collapsed = [e for i, e in enumerate(sequence) if i == 0 or e != sequence[i - 1]]
        assert collapsed == ["ALERT", "ACCEPT", "RESOLVE"], (tid, sequence)
    assert len(deployment.ilert.alerts()) == len(tickets)


def test_sigkill_of_a_gunicorn_worker_mid_burst_loses_no_answered_callout(deployment: Deployment) -> None:
    deployment.start(workers=1)
    deployment.autotask.fire_callouts = False
    tickets = [deployment.autotask.add_ticket(f"Burst {n}")["id"] for n in range(150)]
    answered: list[int] = []
    killed: list[int] = []

    def killer() -> None:
        give_up = time.monotonic() + 30
        while len(killed) < 3 and time.monotonic() < give_up:
            time.sleep(0.15)
            pids = deployment.web_worker_pids()
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])

    def post(tid: int) -> None:
        try:
            r = requests.post(deployment.callout_url, data=f"id={tid}&status=New",
                              headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=10)
        except requests.RequestException:
            return
        if r.status_code == 202:
            answered.append(tid)

    senders = 6

    def send(part: int) -> None:
        """Round after round over this sender's tickets until the last kill: on a fast machine
        one round can be over before the first kill."""
        while True:
            for tid in tickets[part::senders]:
                post(tid)
            if not thread.is_alive():
                return

    thread = threading.Thread(target=killer)
    thread.start()
    with ThreadPoolExecutor(senders) as pool:
        list(pool.map(send, range(senders)))
    thread.join()
    assert len(killed) == 3, "a gunicorn worker was not killed three times during the burst"
    assert answered, "no callout got through at all"
    wait_until(lambda: all(f"autotask-{t}" in received(deployment) for t in answered), 60,
               what="an alert for every answered callout")


WEBHOOK_TOKEN = "e2e-webhook-token-0123456789abcdef"


@pytest.fixture
def bidirectional(deploy: Callable[..., Deployment]) -> Deployment:
    running = deploy(extra_env={
        "AUTOTASK_ILERT_BIDIRECTIONAL": "1",
        "AUTOTASK_ILERT_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "AUTOTASK_ILERT_WORKER_LEASE_SECONDS": "3",
    })
    running.send_ilert_webhooks(WEBHOOK_TOKEN)
    return running


def test_both_directions_with_echoes_and_no_loops(bidirectional: Deployment) -> None:
    d = bidirectional
    d.start(workers=1)
    tickets = [d.autotask.create_ticket(f"Site {n} down", priority_label="High")[0]["id"] for n in range(20)]
    wait_until(lambda: len(d.ilert.alerts()) == 20, 30, what="20 alerts")
    d.ilert.wait_idle(5)

    accepted, completed_in_autotask, untouched = tickets[:10], tickets[10:15], tickets[15:]
    resolved_in_ilert = accepted[:5]
    for tid in accepted:
        d.ilert.accept(f"autotask-{tid}", by="jdoe")
    for tid in resolved_in_ilert:
        d.ilert.resolve(f"autotask-{tid}", by="jdoe")
    for tid in completed_in_autotask:
        d.autotask.set_status(tid, "Complete")

    def settled() -> bool:
        return (
            all(d.autotask.status_label(t) == "In Progress" for t in accepted[5:])
            and all(d.autotask.status_label(t) == "Complete" for t in resolved_in_ilert)
            and all(len(d.autotask.notes(t)) == 2 for t in resolved_in_ilert)
            and all(d.ilert.alert_for(f"autotask-{t}").status == "RESOLVED"  # type: ignore[union-attr]
                    for t in completed_in_autotask)
        )

    wait_until(settled, 60, what="both sides to settle")
    d.ilert.wait_idle(5)
    d.autotask.wait_idle(5)
    time.sleep(1.0)  # let the last echoes reach the bridge and be found to be no-ops
    ilert_before, autotask_before = len(d.ilert.events()), len(d.autotask.calls())
    webhooks_before, callouts_before = len(d.ilert.webhooks()), len(d.autotask.callouts())

    # Exactly one PATCH per change a person made in ilert, none for changes made in Autotask.
    patched = [c.json_body["id"] for c in d.autotask.calls_matching("PATCH") if c.status_code == 200]
    assert sorted(patched) == sorted(accepted + resolved_in_ilert)
    assert d.autotask.calls_matching("PUT") == []
    for tid in tickets:
        expected_notes = 2 if tid in resolved_in_ilert else 1 if tid in accepted else 0
        assert len(d.autotask.notes(tid)) == expected_notes, tid
    assert "Jane Doe (jdoe)" in d.autotask.notes(accepted[0])[0]["description"]

    expected = {
        **{t: ("In Progress", "ACCEPTED") for t in accepted[5:]},
        **{t: ("Complete", "RESOLVED") for t in resolved_in_ilert},
        **{t: ("Complete", "RESOLVED") for t in completed_in_autotask},
        **{t: ("New", "PENDING") for t in untouched},
    }
    for tid, (ticket_status, alert_status) in expected.items():
        alert = d.ilert.alert_for(f"autotask-{tid}")
        assert d.autotask.status_label(tid) == ticket_status, tid
        assert alert is not None and alert.status == alert_status, tid
    assert len(d.ilert.alerts()) == 20  # no alert was ever created twice

    # The bridge sent ilert only what people did in Autotask: 20 ALERTs and 5 RESOLVEs.
    sent = [e.body["eventType"] for e in d.ilert.events()]
    assert sorted(sent) == sorted(["ALERT"] * 20 + ["RESOLVE"] * 5)

    # Then silence, both ways.
    time.sleep(5)
    assert (len(d.ilert.events()), len(d.autotask.calls())) == (ilert_before, autotask_before)
    assert (len(d.ilert.webhooks()), len(d.autotask.callouts())) == (webhooks_before, callouts_before)
