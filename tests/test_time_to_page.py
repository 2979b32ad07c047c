"""Time to page when something around the bridge fails: ilert down, Autotask hanging, bursts.

Outbound HTTP is faked with ``responses`` and time is the injected clock: what is
checked is what goes out and in which order after which clock moves, never how
long anything took.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import requests
import responses
from flask import Flask

from flask_autotask_ilert.extension import get_bridge
from flask_autotask_ilert.worker import ILERT_FAILURES_TO_OPEN, PROBE_SECONDS, Worker

from .conftest import AppFactory, Clock, data_text, drain
from .test_sync import AT as SYNC_AT
from .test_sync import SYNC, webhook
from .test_sync import callout as sync_callout
from .test_sync import rsps as sync_rsps  # noqa: F401 - the fixture, with Autotask's answers
from .test_worker import AT, AUTOTASK, FIELDS, ILERT, autotask_ok, callout, sent

TICKET = json.loads(data_text("autotask-ticket.json"))["item"]


class FlakyIlert:
    """An ilert that is down (503, or a refused connection) until told it is back."""

    def __init__(self, rsps: responses.RequestsMock, refuse: bool = False) -> None:
        self.down = True
        self.refuse = refuse
        self.calls = 0
        rsps.add_callback(responses.POST, ILERT, callback=self._answer)

    def _answer(self, request: Any) -> tuple[int, dict[str, str], str]:
        self.calls += 1
        if not self.down:
            return 202, {}, "{}"
        if self.refuse:
            raise requests.exceptions.ConnectionError("refused")
        return 503, {}, "{}"


def delivered(rsps: responses.RequestsMock) -> list[dict[str, Any]]:
    return [json.loads(c.request.body) for c in rsps.calls
            if c.request.url == ILERT and getattr(c.response, "status_code", None) == 202]


def test_events_wait_on_a_failing_ilert_and_one_probe_tests_it(
    make_app: AppFactory, rsps: responses.RequestsMock, clock: Clock
) -> None:
    app = make_app()
    ilert = FlakyIlert(rsps)
    for ticket in range(1, 11):
        callout(app, ticket, "New")
    drain(app)
    assert ilert.calls == ILERT_FAILURES_TO_OPEN  # those failures open the breaker; the rest wait
    clock.advance(PROBE_SECONDS - 1)
    drain(app)
    assert ilert.calls == ILERT_FAILURES_TO_OPEN
    # A long outage: one probe per PROBE_SECONDS, not one attempt per event.
    for _ in range(36):
        clock.advance(PROBE_SECONDS)
        drain(app)
    assert 30 <= ilert.calls <= ILERT_FAILURES_TO_OPEN + 37  # 36 probe times passed


def test_the_first_success_sends_every_held_event_at_once(
    make_app: AppFactory, rsps: responses.RequestsMock, clock: Clock
) -> None:
    app = make_app(ilert_rate_limit=0)
    ilert = FlakyIlert(rsps, refuse=True)
    for ticket in range(1, 21):
        callout(app, ticket, "New")
    drain(app)
    for _ in range(60):  # five minutes down: past RETRY_CAP_SECONDS
        clock.advance(PROBE_SECONDS)
        drain(app)
    ilert.down = False
    clock.advance(PROBE_SECONDS)
    drain(app)  # the probe succeeds, and every held event is due at once: no clock move
    assert sorted(int(e["alertKey"].split("-")[1]) for e in delivered(rsps)) == list(range(1, 21))
    assert get_bridge(app).store.queue_stats()["tickets"] == 0


def test_events_queued_during_the_outage_are_held_too(
    make_app: AppFactory, rsps: responses.RequestsMock, clock: Clock
) -> None:
    app = make_app()
    ilert = FlakyIlert(rsps)
    for ticket in range(1, ILERT_FAILURES_TO_OPEN + 1):
        callout(app, ticket, "New")
    drain(app)
    clock.advance(1)
    for ticket in (11, 12):
        callout(app, ticket, "New")
    drain(app)
    assert ilert.calls == ILERT_FAILURES_TO_OPEN
    ilert.down = False
    clock.advance(PROBE_SECONDS)
    drain(app)
    assert len(delivered(rsps)) == ILERT_FAILURES_TO_OPEN + 2


def test_a_retry_after_from_ilert_delays_the_next_probe(
    make_app: AppFactory, rsps: responses.RequestsMock, clock: Clock
) -> None:
    app = make_app()
    for _ in range(ILERT_FAILURES_TO_OPEN):
        rsps.post(ILERT, status=429, headers={"Retry-After": "30"})
    rsps.post(ILERT, status=202)
    for ticket in range(1, ILERT_FAILURES_TO_OPEN + 2):
        callout(app, ticket, "New")
    drain(app)
    clock.advance(29)
    drain(app)
    assert len(sent(rsps)) == ILERT_FAILURES_TO_OPEN
    clock.advance(2)
    drain(app)
    assert len(sent(rsps)) == 2 * ILERT_FAILURES_TO_OPEN + 1


def serve_tickets(rsps: responses.RequestsMock, tickets: dict[int, dict[str, Any]]) -> None:
    """Autotask's ticket reads, one at a time and by query."""
    for number, ticket in tickets.items():
        rsps.get(f"{AT}/v1.0/Tickets/{number}", json={"item": ticket})

    def query(request: Any) -> tuple[int, dict[str, str], str]:
        ids = json.loads(request.body)["filter"][0]["value"]
        return 200, {}, json.dumps({"items": [tickets[n] for n in ids if n in tickets]})

    rsps.add_callback(responses.POST, f"{AT}/v1.0/Tickets/query", callback=query)


# -- Autotask slow or hanging ---------------------------------------------------------------

def _fill_places(app: Flask, hold_s: float = 600) -> list[str]:
    """Every Autotask request place taken by someone else (another worker, a hung request)."""
    bridge = get_bridge(app)
    client = bridge.autotask(bridge.settings.sources["default"])
    assert client is not None
    name = f"{client.integration_code_digest}:Tickets"
    tokens = [f"other-{n}" for n in range(bridge.settings.autotask_concurrency)]
    for token in tokens:
        assert bridge.store.try_acquire(name, bridge.settings.autotask_concurrency,
                                        int(hold_s * 1000), token)
    return [name, *tokens]


def test_waiting_for_an_autotask_place_ends_at_the_deadline(
    make_app: AppFactory, rsps: responses.RequestsMock, clock: Clock
) -> None:
    app = make_app(**AUTOTASK, enrich_deadline_seconds=3)
    autotask_ok(rsps)
    rsps.post(ILERT, status=202)
    _fill_places(app)
    callout(app, 7865, "New")
    for _ in range(5):  # taken up, put off while every place is taken: 2.5 s of waiting
        drain(app)
        clock.advance(0.5)
    assert sent(rsps) == []
    clock.advance(0.6)
    drain(app)
    [event] = sent(rsps)
    assert event["summary"] == "[T7865] Autotask ticket 7865 (New)"  # the callout's data
    assert not [c for c in rsps.calls if "/Tickets/7865" in c.request.url]


def test_the_read_timeout_is_cut_to_the_time_left(
    make_app: AppFactory, rsps: responses.RequestsMock, clock: Clock
) -> None:
    app = make_app(**AUTOTASK, enrich_deadline_seconds=3, http_read_timeout=10)
    autotask_ok(rsps)
    rsps.post(ILERT, status=202)
    name, *holders = _fill_places(app)
    callout(app, 7865, "New")
    drain(app)  # taken up now; no place free
    clock.advance(2)
    for token in holders:
        get_bridge(app).store.release(name, token)
    drain(app)
    [read] = [c for c in rsps.calls if "/Tickets/7865" in c.request.url]
    assert read.request.req_kwargs["timeout"][1] == 1.0  # 3 s deadline, 2 s of it spent waiting
    assert sent(rsps)[0]["summary"].endswith("Server DC01 unreachable")


def test_a_hanging_autotask_holds_new_alerts_only_until_the_deadline(
    make_app: AppFactory, rsps: responses.RequestsMock, clock: Clock
) -> None:
    app = make_app(**AUTOTASK, enrich_deadline_seconds=3, enrich_attempts=5)
    reads = []

    def hang(request: Any) -> tuple[int, dict[str, str], str]:
        reads.append(request.url)
        raise requests.exceptions.ReadTimeout("no answer")

    for ticket in range(1, 6):
        rsps.add_callback(responses.GET, f"{AT}/v1.0/Tickets/{ticket}", callback=hang)
    rsps.add_callback(responses.POST, f"{AT}/v1.0/Tickets/query", callback=hang)
    rsps.post(ILERT, status=202)
    for ticket in range(1, 6):
        callout(app, ticket, "New")
    drain(app)
    assert len(reads) == 1  # the first timeout opens Autotask's breaker: nothing else reads
    clock.advance(2.9)
    drain(app)
    assert sent(rsps) == []
    clock.advance(0.2)
    drain(app)
    assert len(sent(rsps)) == 5


def test_the_deadline_counts_from_when_the_event_was_first_taken_up(
    make_app: AppFactory, rsps: responses.RequestsMock, clock: Clock
) -> None:
    app = make_app(**AUTOTASK, enrich_deadline_seconds=3)
    autotask_ok(rsps)
    rsps.post(ILERT, status=202)
    callout(app, 7865, "New")
    clock.advance(60)  # queued a minute ago, nobody worked: taken up only now
    drain(app)
    assert sent(rsps)[0]["summary"].endswith("Server DC01 unreachable")


# -- bursts beyond ilert's rate limit --------------------------------------------------------

def test_critical_alerts_overtake_a_burst_of_low_ones(
    make_app: AppFactory, rsps: responses.RequestsMock, clock: Clock
) -> None:
    app = make_app(**AUTOTASK, ilert_rate_limit=5, ilert_rate_window_seconds=60)
    rsps.get(f"{AT}/v1.0/Tickets/entityInformation/fields", json=FIELDS)
    tickets = {n: {**TICKET, "id": n, "priority": 3 if n <= 20 else TICKET["priority"]}  # 20 Low, 5 Critical
               for n in range(1, 26)}
    serve_tickets(rsps, tickets)
    rsps.post(ILERT, status=202)
    for ticket in range(1, 21):
        callout(app, ticket, "New")
    drain(app)
    assert [e["priority"] for e in sent(rsps)] == ["LOW"] * 5
    clock.advance(1)
    for ticket in range(21, 26):
        callout(app, ticket, "New")
    drain(app)
    assert len(sent(rsps)) == 5
    clock.advance(62)
    drain(app)
    assert [e["priority"] for e in sent(rsps)[5:]] == ["HIGH"] * 5  # the next window is theirs
    for _ in range(8):  # 15 Low left, 5 a window: an estimate of a slot may be a window long
        clock.advance(62)
        drain(app)
    keys = [e["alertKey"] for e in sent(rsps)]
    assert sorted(keys) == sorted(f"autotask-{n}" for n in range(1, 26))  # nothing lost, none twice


def test_alerts_go_before_accepts_and_resolves_but_each_ticket_keeps_its_order(
    make_app: AppFactory, rsps: responses.RequestsMock, clock: Clock
) -> None:
    app = make_app(ilert_rate_limit=2, ilert_rate_window_seconds=60)
    rsps.post(ILERT, status=202)
    for ticket in (1, 2):
        callout(app, ticket, "New")
    drain(app)
    for ticket in (1, 2):
        callout(app, ticket, "Complete")  # two resolves wait for the next window...
    drain(app)
    clock.advance(1)
    for ticket in (3, 4):
        callout(app, ticket, "New")  # ...and two new alerts, queued later, overtake them
        callout(app, ticket, "Complete")
    drain(app)
    clock.advance(62)
    drain(app)
    assert [(e["eventType"], e["alertKey"]) for e in sent(rsps)[2:4]] == [
        ("ALERT", "autotask-3"), ("ALERT", "autotask-4")]
    for _ in range(3):
        clock.advance(62)
        drain(app)
    per_ticket: dict[str, list[str]] = {}
    for event in sent(rsps):
        per_ticket.setdefault(event["alertKey"], []).append(event["eventType"])
    assert per_ticket == {f"autotask-{n}": ["ALERT", "RESOLVE"] for n in (1, 2, 3, 4)}


# -- the Autotask API budget in bursts ----------------------------------------------------------

def test_new_tickets_taken_up_together_are_read_in_one_query(
    make_app: AppFactory, rsps: responses.RequestsMock
) -> None:
    app = make_app(**AUTOTASK, ilert_rate_limit=0)
    queries: list[Any] = []

    def query(request: Any) -> tuple[int, dict[str, str], str]:
        body = json.loads(request.body)
        queries.append(body)
        [condition] = body["filter"]
        assert condition["op"] == "in" and condition["field"] == "id"
        items = [{**TICKET, "id": n, "title": f"Outage {n}"} for n in condition["value"] if n != 5]
        return 200, {}, json.dumps({"items": items, "pageDetails": {"count": len(items)}})

    rsps.add_callback(responses.POST, f"{AT}/v1.0/Tickets/query", callback=query)
    rsps.get(f"{AT}/v1.0/Tickets/entityInformation/fields", json=FIELDS)
    rsps.post(ILERT, status=202)
    for ticket in range(1, 9):
        callout(app, ticket, "New")
    drain(app)
    assert len(queries) == 1 and sorted(queries[0]["filter"][0]["value"]) == list(range(1, 9))
    assert not [c for c in rsps.calls if c.request.method == "GET" and "/Tickets/" in c.request.url
                and "entityInformation" not in c.request.url]
    summaries = {e["alertKey"]: e["summary"] for e in sent(rsps)}
    assert summaries["autotask-3"].endswith("Outage 3")
    assert summaries["autotask-5"] == "[T5] Autotask ticket 5 (New)"  # not in Autotask: the callout's data


def test_a_lone_new_ticket_is_read_on_its_own(make_app: AppFactory, rsps: responses.RequestsMock) -> None:
    app = make_app(**AUTOTASK)
    autotask_ok(rsps)
    rsps.post(ILERT, status=202)
    callout(app, 7865, "New")
    drain(app)
    ticket_calls = [c for c in rsps.calls
                    if c.request.url.startswith(AT) and "entityInformation" not in c.request.url]
    assert [(c.request.method, c.request.url) for c in ticket_calls] == [("GET", f"{AT}/v1.0/Tickets/7865")]


def test_ticket_writes_wait_on_a_failing_autotask_behind_one_probe(
    make_app: AppFactory, sync_rsps: responses.RequestsMock, clock: Clock  # noqa: F811
) -> None:
    app = make_app(**SYNC)
    sync_rsps.get(f"{SYNC_AT}/v1.0/Tickets/8",
                  json={"item": {"id": 8, "ticketNumber": "T8", "priority": 1, "status": 1}})
    answers = iter([503])
    patched: list[int] = []

    def patch(request: Any) -> tuple[int, dict[str, str], str]:
        status = next(answers, 200)
        patched.append(status)
        return status, {}, json.dumps({"itemId": json.loads(request.body)["id"]})

    sync_rsps.add_callback(responses.PATCH, f"{SYNC_AT}/v1.0/Tickets", callback=patch)
    for ticket in (7, 8):
        sync_rsps.post(f"{SYNC_AT}/v1.0/Tickets/{ticket}/Notes", json={"itemId": 1})
        sync_callout(app, "New", ticket)
        drain(app)
    for ticket in (7, 8):
        assert webhook(app, "ACCEPTED", key=f"autotask-{ticket}").status_code in (200, 202)
    drain(app)
    assert patched == [503]  # the second write waits on Autotask's breaker instead of trying too
    clock.advance(PROBE_SECONDS)
    drain(app)
    assert patched == [503, 200, 200]  # the probe succeeded and woke the held write


def test_a_batch_that_finds_every_place_taken_waits_as_one(
    make_app: AppFactory, rsps: responses.RequestsMock, clock: Clock
) -> None:
    app = make_app(**AUTOTASK, ilert_rate_limit=0)
    serve_tickets(rsps, {n: {**TICKET, "id": n} for n in (1, 2, 3)})
    rsps.get(f"{AT}/v1.0/Tickets/entityInformation/fields", json=FIELDS)
    rsps.post(ILERT, status=202)
    name, *holders = _fill_places(app)
    for ticket in (1, 2, 3):
        callout(app, ticket, "New")
    drain(app)
    store = get_bridge(app).store
    due = {store.schedule("default", ticket)[0] for ticket in (1, 2, 3)}
    assert len(due) == 1  # due together, so claimed and read together again
    for token in holders:
        store.release(name, token)
    clock.advance(1)
    drain(app)
    assert len([c for c in rsps.calls if c.request.url.endswith("/Tickets/query")]) == 1
    assert len(sent(rsps)) == 3


def test_a_probe_that_ilert_refuses_still_shows_ilert_is_back(
    make_app: AppFactory, rsps: responses.RequestsMock, clock: Clock
) -> None:
    app = make_app()
    for _ in range(ILERT_FAILURES_TO_OPEN):
        rsps.post(ILERT, status=503)
    rsps.post(ILERT, status=400, json={"status": 400, "message": "bad", "code": "BAD_REQUEST"})
    rsps.post(ILERT, status=202)
    for ticket in range(1, ILERT_FAILURES_TO_OPEN + 2):
        callout(app, ticket, "New")
    drain(app)
    clock.advance(PROBE_SECONDS)
    drain(app)  # the probe is dead-lettered, and the held events go at once
    assert len(get_bridge(app).store.dead_letters()) == 1
    assert len(delivered(rsps)) == ILERT_FAILURES_TO_OPEN


def test_a_claim_held_too_long_in_its_batch_is_handed_back_unsent(
    make_app: AppFactory, rsps: responses.RequestsMock, clock: Clock
) -> None:
    app = make_app(**AUTOTASK, worker_lease_seconds=10, enrich_deadline_seconds=30, ilert_rate_limit=0)
    seen: list[str] = []
    reads: list[int] = []

    def slow_read(request: Any) -> tuple[int, dict[str, str], str]:
        if not reads:
            clock.advance(6)  # more than half the lease gone while the batch's tickets were read
        reads.append(1)
        items = [{**TICKET, "id": 1}, {**TICKET, "id": 2}]
        return 200, {}, json.dumps({"items": items, "pageDetails": {"nextPageUrl": None}})

    def ilert(request: Any) -> tuple[int, dict[str, str], str]:
        seen.append(json.loads(request.body)["alertKey"])
        return 202, {}, "{}"

    rsps.add_callback(responses.POST, f"{AT}/v1.0/Tickets/query", callback=slow_read)
    rsps.get(f"{AT}/v1.0/Tickets/entityInformation/fields", json=FIELDS)
    rsps.add_callback(responses.POST, ILERT, callback=ilert)
    for ticket in (1, 2):
        callout(app, ticket, "New")
    worker = Worker(get_bridge(app), threads=1)
    assert worker.work_once() == 2
    assert seen == []  # the leases might run out mid-send: handed back, not sent
    worker.drain()
    assert sorted(seen) == ["autotask-1", "autotask-2"]  # each sent once, by the next claim


def test_a_batch_of_new_alerts_is_sent_side_by_side(
    make_app: AppFactory, rsps: responses.RequestsMock
) -> None:
    """After a hanging Autotask's deadline, eight alerts must not page one ilert round trip apart."""
    app = make_app(ilert_rate_limit=0)
    together = threading.Barrier(3, timeout=10)  # broken, and so a failed send, if sent one by one
    first: list[str] = []

    def ilert(request: Any) -> tuple[int, dict[str, str], str]:
        if not first:  # the first goes alone: a failing ilert costs one attempt, not the batch
            first.append(json.loads(request.body)["alertKey"])
        else:
            together.wait()
        return 202, {}, "{}"

    rsps.add_callback(responses.POST, ILERT, callback=ilert)
    for ticket in (1, 2, 3, 4):
        callout(app, ticket, "New")
    worker = Worker(get_bridge(app), threads=1)
    assert worker.work_once() == 4
    assert sorted(e["alertKey"] for e in delivered(rsps)) == [
        "autotask-1", "autotask-2", "autotask-3", "autotask-4"]
    assert get_bridge(app).store.dead_letters() == []


def test_a_batch_read_that_hangs_counts_against_the_deadline(
    make_app: AppFactory, rsps: responses.RequestsMock, clock: Clock
) -> None:
    app = make_app(**AUTOTASK, enrich_deadline_seconds=3, ilert_rate_limit=0)

    def hang(request: Any) -> tuple[int, dict[str, str], str]:
        assert request.req_kwargs["timeout"][1] == 3.0
        clock.advance(3)  # the read timeout, cut to the deadline, runs out
        raise requests.exceptions.ReadTimeout("no answer")

    rsps.add_callback(responses.POST, f"{AT}/v1.0/Tickets/query", callback=hang)
    rsps.post(ILERT, status=202)
    for ticket in (1, 2, 3):
        callout(app, ticket, "New")
    drain(app)  # no clock move after the read: the deadline is spent, they page at once
    assert sorted(e["alertKey"] for e in sent(rsps)) == ["autotask-1", "autotask-2", "autotask-3"]
    assert all(e["summary"].endswith("(New)") for e in sent(rsps))
