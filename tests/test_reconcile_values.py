"""The sweep's exact values: what it logs and counts, the Redis keys and TTLs it keeps, the
outcomes it reports (or, dry, predicts) ticket by ticket, the events it queues, the CLI's lines.

Autotask's query pages are written out here as the items Autotask would answer
(``pages``), so ids, statuses, numbers and times are literals; the status
picklist and the rest still come from the simulator. The bridge's clock stands
at 2026-11-30T12:00:00Z.
"""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from flask import Flask
from prometheus_client import REGISTRY

from flask_autotask_ilert import reconcile
from flask_autotask_ilert.callouts import handle_callout
from flask_autotask_ilert.extension import get_bridge
from flask_autotask_ilert.lifecycle import State
from flask_autotask_ilert.reconcile import Outcome, Report
from flask_autotask_ilert.schemas import Callout
from flask_autotask_ilert.testing.autotask_sim import (
    DEFAULT_CODE,
    DEFAULT_SECRET,
    DEFAULT_USER,
    AutotaskState,
)

from .conftest import AppFactory, Clock

UTC = timezone.utc
NOW = 1_796_040_000.0  # 2026-11-30T12:00:00Z
SINCE = datetime(2026, 11, 30, 11, 50, tzinfo=UTC)  # the window then starts at 11:49:00


@pytest.fixture
def make(make_app: AppFactory, autotask: tuple[AutotaskState, str], clock: Clock) -> AppFactory:
    clock.now = NOW

    def factory(**config: Any) -> Flask:
        return make_app(autotask_username=DEFAULT_USER, autotask_secret=DEFAULT_SECRET,
                        autotask_integration_code=DEFAULT_CODE,
                        autotask_api_url=f"{autotask[1]}/atservicesrest", **config)

    return factory


@pytest.fixture
def app(make: AppFactory) -> Flask:
    return make()


def pages(app: Flask, monkeypatch: pytest.MonkeyPatch, *items: dict[str, Any],
          source: str = "default") -> None:
    """Autotask's query answers these items, on one page."""
    bridge = get_bridge(app)
    client = bridge.autotask(bridge.settings.sources[source])
    assert client is not None
    monkeypatch.setattr(client, "query_page", lambda entity, body, next_url=None: (list(items), None))


def ticket(id_: Any, status: Any = 1, *, created: str | None = "2026-11-30T11:55:00Z",
           activity: str | None = "2026-11-30T11:56:00Z", number: Any = None) -> dict[str, Any]:
    item: dict[str, Any] = {"id": id_, "status": status}
    if created is not None:
        item["createDate"] = created
    if activity is not None:
        item["lastActivityDate"] = activity
    if number is not None:
        item["ticketNumber"] = number
    return item


def sweep(app: Flask, **options: Any) -> Report:
    bridge = get_bridge(app)
    options.setdefault("since", SINCE)
    report = reconcile.run(bridge, bridge.settings.sources["default"], **options)
    assert report is not None
    return report


def callout(app: Flask, ticket_id: int, status: str, activity: datetime) -> None:
    """A callout delivered in time, through the callout's own path."""
    bridge = get_bridge(app)
    handle_callout(bridge.settings, bridge.store, bridge.settings.sources["default"],
                   Callout(ticket_id=ticket_id, status=status, last_activity=activity))


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def reconcile_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records
            if getattr(r, "autotask_ilert", {}).get("event") == "reconcile"]


# -- the small functions ---------------------------------------------------------------------------


def test_iso_is_utc_to_the_millisecond_on_any_host_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        at_two = timezone(timedelta(hours=2))
        assert reconcile.iso(datetime(2026, 11, 30, 14, 5, 6, 999_000, tzinfo=at_two)) == \
            "2026-11-30T12:05:06.999Z"
        assert reconcile.iso(datetime(2026, 11, 30, 12, 0, 0, 7_999, tzinfo=UTC)) == \
            "2026-11-30T12:00:00.007Z"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_since_keeps_a_given_offset_and_takes_utc_without_one() -> None:
    assert reconcile.parse_since(" 2026-11-30T14:00:00+02:00 ") == datetime(2026, 11, 30, 12, tzinfo=UTC)
    naive = reconcile.parse_since("2026-11-30T12:00:00")
    assert naive == datetime(2026, 11, 30, 12, tzinfo=UTC)
    assert naive.utcoffset() == timedelta(0)
    assert reconcile.parse_since("2026-11-30T12:00:00Z") == datetime(2026, 11, 30, 12, tzinfo=UTC)
    with pytest.raises(reconcile.ReconcileError) as caught:
        reconcile.parse_since("last tuesday")
    assert str(caught.value) == "--since 'last tuesday' is not an ISO 8601 time"
    # ISO 8601's UTC designator is a capital Z; a lowercase one is refused on every supported
    # Python (3.10 to 3.13), not read as UTC on some and refused on others.
    with pytest.raises(reconcile.ReconcileError) as caught:
        reconcile.parse_since("2026-11-30T12:00:00z")
    assert str(caught.value) == "--since '2026-11-30T12:00:00z' is not an ISO 8601 time"


def test_the_sources_a_sweep_covers(make: AppFactory, make_app: AppFactory) -> None:
    bridge = get_bridge(make())
    default = bridge.settings.sources["default"]
    assert reconcile.sources(bridge) == [default]
    assert reconcile.sources(bridge, "default") == [default]
    with pytest.raises(reconcile.ReconcileError) as caught:
        reconcile.sources(bridge, "team-b")
    assert str(caught.value) == "no alert source 'team-b' with Autotask credentials: nothing to reconcile"

    bare = get_bridge(make_app())  # no Autotask credentials: the worker quietly sweeps nothing
    assert reconcile.sources(bare) == []
    with pytest.raises(reconcile.ReconcileError) as caught:
        reconcile.sources(bare, required=True)
    assert str(caught.value) == "no alert source with Autotask credentials: nothing to reconcile"
    with pytest.raises(reconcile.ReconcileError) as caught:
        reconcile.Sweep(bare, bare.settings.sources["default"], SINCE)
    assert str(caught.value) == "source 'default' has no Autotask credentials"


def test_describe_says_each_change_and_a_summary() -> None:
    assert reconcile.describe(None, "default") == [
        "default: first sweep: the mark is set to now; nothing older is read. Give --since to look back."
    ]
    assert reconcile.describe(None, "default", dry_run=True) == [
        "default: no sweep yet, so no mark to start from (a dry run sets none). Give --since to look back."
    ]
    outcomes = [Outcome(5, "New", "create", None), Outcome(6, "Waiting Customer", "nothing", State.PENDING),
                Outcome(7, "Complete", "resolve-unknown", State.RESOLVED)]
    done = Report("default", SINCE, read=3, calls=2, outcomes=outcomes)
    assert reconcile.describe(done, "default") == [
        "default: ticket 5 (New): did create",
        "default: ticket 7 (Complete): did resolve-unknown -> RESOLVED",
        "default: since 2026-11-30T11:50:00.000Z: 3 ticket(s) read, 2 change(s) no callout had "
        "reported, 2 Autotask call(s)",
    ]
    dry = Report("default", SINCE, dry_run=True, read=1, calls=1, outcomes=outcomes[:1])
    assert reconcile.describe(dry, "default") == [
        "default: ticket 5 (New): would create",
        "default: since 2026-11-30T11:50:00.000Z: 1 ticket(s) read, 1 change(s) no callout had "
        "reported, 1 Autotask call(s) (dry run: nothing changed)",
    ]


# -- Redis: the mark, the turn, the lease ----------------------------------------------------------


def test_the_schedule_keys_under_the_apps_prefix(make: AppFactory, redis_prefix: str) -> None:
    bridge = get_bridge(make(real_redis=True))
    schedule = reconcile.Schedule(bridge.store)
    client = bridge.store.client
    later = datetime(2026, 11, 30, 11, 59, 0, 500_000, tzinfo=UTC)
    schedule.set_mark("default", later)
    schedule.set_mark("default", datetime(2026, 11, 30, 11, 50, tzinfo=UTC))  # never moves back
    assert client.hget(f"{redis_prefix}reconcile:marks", "default") == b"1796039940500000"
    assert schedule.mark("default") == later

    assert schedule.take_turn(1_000_000)
    assert not schedule.take_turn(1_000_000)
    assert 900_000 < client.pttl(f"{redis_prefix}reconcile:turn") <= 1_000_000  # the interval

    assert schedule.acquire("mine")
    assert client.pttl(f"{redis_prefix}reconcile:lease") > 200_000  # LEASE_MS, 300 s
    assert client.pttl(f"{redis_prefix}reconcile:lease") <= 300_000
    assert not schedule.acquire("theirs")
    schedule.release("theirs")  # not theirs to release
    assert client.get(f"{redis_prefix}reconcile:lease") == b"mine"
    schedule.release("mine")
    assert client.get(f"{redis_prefix}reconcile:lease") is None


def test_the_worker_takes_a_turn_for_the_whole_interval(make: AppFactory, redis_prefix: str) -> None:
    bridge = get_bridge(make(real_redis=True, reconcile_interval_seconds=1000))
    assert reconcile.run_due(bridge) == []  # the first sweep: only the mark
    assert reconcile.Schedule(bridge.store).mark("default") == datetime(2026, 11, 30, 12, tzinfo=UTC)
    assert 900_000 < bridge.store.client.pttl(f"{redis_prefix}reconcile:turn") <= 1_000_000


def test_an_interval_of_one_millisecond_still_sweeps(make: AppFactory) -> None:
    bridge = get_bridge(make(reconcile_interval_seconds=0.001))
    assert reconcile.run_due(bridge) == []
    assert reconcile.Schedule(bridge.store).mark("default") == datetime(2026, 11, 30, 12, tzinfo=UTC)


def test_a_sweep_that_loses_its_lease_stops(app: Flask) -> None:
    bridge = get_bridge(app)
    schedule = reconcile.Schedule(bridge.store)

    def steal(sweep: reconcile.Sweep) -> Iterator[Outcome]:
        bridge.store.client.set(schedule.lease_key, "another-sweep")
        yield from sweep

    with pytest.raises(reconcile.ReconcileError) as caught:
        reconcile.run(bridge, bridge.settings.sources["default"], since=SINCE, progress=steal)
    assert str(caught.value) == "the sweep's lease was lost; another sweep took over"
    assert bridge.store.client.get(schedule.lease_key) == b"another-sweep"  # left to its holder
    with pytest.raises(reconcile.ReconcileError) as caught:
        sweep(app)
    assert str(caught.value) == "another sweep is running; try again when it has finished"


# -- ticket by ticket ---------------------------------------------------------------------------------


def test_only_positive_integer_ids_are_read(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    pages(app, monkeypatch, ticket(True), ticket("7"), ticket(0), ticket(-3), ticket(1), ticket(2))
    report = sweep(app)
    assert report.read == 2
    assert report.outcomes == [Outcome(1, "New", "create", State.PENDING),
                               Outcome(2, "New", "create", State.PENDING)]


def test_each_outcome_names_the_ticket_its_status_and_state(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    callout(app, 31, "New", datetime(2026, 11, 30, 11, 56, tzinfo=UTC))
    pages(app, monkeypatch,
          ticket(30, created="2026-11-30T11:00:00Z"),  # created before the window, no record
          ticket(31),  # the change its callout already reported
          ticket(32, status=99),  # a status value the picklist does not know
          ticket(33, status=5, created="2026-11-30T11:00:00Z"))  # closed, no record
    report = sweep(app)
    assert report.outcomes == [
        Outcome(30, "New", "unknown", None),
        Outcome(31, "New", "nothing", State.PENDING),
        Outcome(32, "99", "create", State.PENDING),
        Outcome(33, "Complete", "unknown", None),
    ]
    assert report.read == 4
    assert report.mark == datetime(2026, 11, 30, 11, 56, tzinfo=UTC)


def test_created_exactly_at_the_windows_start_is_not_inside_it(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    pages(app, monkeypatch, ticket(40, created="2026-11-30T11:49:00Z"),
          ticket(41, created="2026-11-30T11:49:00.001Z"))
    assert sweep(app).outcomes == [Outcome(40, "New", "unknown", None),
                                   Outcome(41, "New", "create", State.PENDING)]


def test_the_mark_is_the_newest_activity_whatever_the_order(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    pages(app, monkeypatch, ticket(50, activity="2026-11-30T11:58:30Z"),
          ticket(51, activity="2026-11-30T11:55:00.25Z"), ticket(52, activity=None))
    report = sweep(app)
    assert report.mark == datetime(2026, 11, 30, 11, 58, 30, tzinfo=UTC)
    assert report.read == 3


def test_the_queued_alert_carries_the_tickets_number_and_the_sweeps_request_id(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    pages(app, monkeypatch, ticket(60, number="T20261130.0042"), ticket(61, number=42))
    sweep(app)
    store = get_bridge(app).store
    first, second = store.queued("default", 60), store.queued("default", 61)
    assert [e["action"] for e in first] == ["create"] and [e["action"] for e in second] == ["create"]
    assert first[0]["callout"]["number"] == "T20261130.0042"
    assert second[0]["callout"]["number"] is None  # not a ticket number
    assert re.fullmatch(r"reconcile-[0-9a-f]{12}", first[0]["request_id"])
    assert first[0]["request_id"] == second[0]["request_id"]  # one sweep, one id


def test_a_closed_ticket_without_a_record_is_resolved_on_request(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    pages(app, monkeypatch, ticket(70, status=5, created="2026-11-30T11:00:00Z", number="T1"))
    dry = sweep(app, resolve_unknown=True, dry_run=True)
    assert dry.outcomes == [Outcome(70, "Complete", "resolve-unknown", State.RESOLVED)]
    store = get_bridge(app).store
    assert store.mapping("default", 70) is None and store.queued("default", 70) == []

    report = sweep(app, resolve_unknown=True)
    assert report.outcomes == [Outcome(70, "Complete", "resolve-unknown", State.RESOLVED)]
    [event] = store.queued("default", 70)
    assert {k: v for k, v in event.items() if k not in ("id", "request_id")} == {
        "target": "ilert", "action": "resolve", "source": "default", "ticket": 70,
        "callout": {"number": "T1", "status": "Complete", "domain": None,
                    "last_activity": "2026-11-30T11:56:00+00:00"},
        "queued_at": 1_796_040_000_000, "attempts": 0, "alert_key": "autotask-70",
    }
    assert re.fullmatch(r"reconcile-[0-9a-f]{12}", event["request_id"])
    mapping = store.mapping("default", 70)
    assert mapping is not None and mapping.state is State.RESOLVED
    assert mapping.last_activity_us == 1_796_039_760_000_000
    assert [words for _, words in store.audit("default", 70)] == [
        'callout CLOSED: resolve NONE>RESOLVED; status "Complete"']


def test_a_resolve_unknown_from_the_future_orders_nothing(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A day ahead of the bridge's clock, beyond CLOCK_SKEW_SECONDS: kept as no time at all,
    # so the ticket's next real callout is not stale.
    pages(app, monkeypatch, ticket(71, status=5, created="2026-11-30T11:00:00Z",
                                   activity="2026-12-01T12:00:00Z"))
    assert sweep(app, resolve_unknown=True).outcomes == [
        Outcome(71, "Complete", "resolve-unknown", State.RESOLVED)
    ]
    mapping = get_bridge(app).store.mapping("default", 71)
    assert mapping is not None and mapping.last_activity_us is None


def test_a_dry_run_predicts_what_the_store_decides(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    at_56 = datetime(2026, 11, 30, 11, 56, tzinfo=UTC)
    for ticket_id in (80, 81, 82):
        callout(app, ticket_id, "New", at_56)
    items = (
        ticket(80, status=8, activity="2026-11-30T11:55:00Z"),  # older than the New applied: stale
        ticket(81, status=8),  # as new as the New applied, another status: applied
        ticket(82, status=5, activity="2026-11-30T11:58:30Z"),
        ticket(83, status=7),  # new and already waiting: rejected, nothing recorded
        ticket(84, status=1),
    )
    pages(app, monkeypatch, *items)
    expected = [
        Outcome(80, "In Progress", "stale", State.PENDING),
        Outcome(81, "In Progress", "accept", State.ACCEPTED),
        Outcome(82, "Complete", "resolve", State.RESOLVED),
        Outcome(83, "Waiting Customer", "reject", State.NONE),
        Outcome(84, "New", "create", State.PENDING),
    ]
    assert sweep(app, dry_run=True).outcomes == expected
    assert sweep(app).outcomes == expected  # and the store agrees


def test_a_dry_run_predicts_a_realert_on_reopen(make: AppFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    app = make(realert_on_reopen=True)
    callout(app, 90, "New", datetime(2026, 11, 30, 11, 51, tzinfo=UTC))
    callout(app, 90, "Complete", datetime(2026, 11, 30, 11, 52, tzinfo=UTC))
    pages(app, monkeypatch, ticket(90, status=1))
    assert sweep(app, dry_run=True).outcomes == [Outcome(90, "New", "create", State.PENDING)]


def test_a_sweep_object_applies_and_leaves_unknown_tickets_alone_by_default(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    pages(app, monkeypatch, ticket(95), ticket(96, status=5, created="2026-11-30T11:00:00Z"))
    bridge = get_bridge(app)
    one = reconcile.Sweep(bridge, bridge.settings.sources["default"], SINCE)
    assert list(one) == [Outcome(95, "New", "create", State.PENDING),
                         Outcome(96, "Complete", "unknown", None)]
    assert one.report.source == "default" and not one.report.dry_run
    assert [e["action"] for e in bridge.store.queued("default", 95)] == ["create"]


def test_an_empty_status_picklist_stops_the_sweep(app: Flask, autotask: tuple[AutotaskState, str]) -> None:
    autotask[0].status_picklist = []
    with pytest.raises(reconcile.ReconcileError) as caught:
        sweep(app)
    assert str(caught.value) == "the tenant's ticket status picklist is empty or unreadable"


def test_a_query_holds_an_autotask_request_place_for_three_request_timeouts(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = get_bridge(app).store
    held: list[tuple[int, int]] = []
    acquire = store.try_acquire

    def spy(name: str, limit: int, hold_ms: int, token: str) -> bool:
        held.append((limit, hold_ms))
        return acquire(name, limit, hold_ms, token)

    monkeypatch.setattr(store, "try_acquire", spy)
    sweep(app)
    # (3.05 s to connect + 10 s to read) x 3, among AUTOTASK_CONCURRENCY's 3 places
    assert (3, 39_150) in held


# -- what the worker and the sweep tell ---------------------------------------------------------------


def test_a_sweep_logs_one_line_and_counts(
    make: AppFactory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    app = make(log_format="json")
    # 21 new tickets, 1 to 21: the line lists the first 20 (190 characters, under the 200 a
    # logged value keeps), then an old ticket without a record.
    items = [ticket(n) for n in range(1, 22)] + [ticket(200, created="2026-11-30T11:00:00Z")]
    pages(app, monkeypatch, *items)
    before = (sample("autotask_ilert_reconcile_sweeps_total", source="default", outcome="done"),
              sample("autotask_ilert_reconcile_tickets_total", source="default"),
              sample("autotask_ilert_reconcile_autotask_calls_total", source="default"),
              sample("autotask_ilert_reconcile_changes_total", source="default", action="create"))
    caplog.set_level(logging.INFO, logger="flask_autotask_ilert")
    report = sweep(app)
    assert report.calls == 1  # the status picklist; the pages are answered above
    listed = ("1:create,2:create,3:create,4:create,5:create,6:create,7:create,8:create,9:create,"
              "10:create,11:create,12:create,13:create,14:create,15:create,16:create,17:create,"
              "18:create,19:create,20:create")
    assert reconcile_lines(caplog) == [(logging.WARNING, json.dumps({
        "event": "reconcile", "source": "default", "outcome": "done",
        "since": "2026-11-30T11:50:00.000Z", "read": 22, "missed": 21, "autotask_calls": 1,
        "tickets": listed,
    }, separators=(",", ":")))]
    after = (sample("autotask_ilert_reconcile_sweeps_total", source="default", outcome="done"),
             sample("autotask_ilert_reconcile_tickets_total", source="default"),
             sample("autotask_ilert_reconcile_autotask_calls_total", source="default"),
             sample("autotask_ilert_reconcile_changes_total", source="default", action="create"))
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 22, 1, 21]


def test_a_dry_or_quiet_sweep_logs_at_info_and_a_dry_one_counts_nothing(
    make: AppFactory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    app = make(log_format="json")
    pages(app, monkeypatch, ticket(110))
    done = ("autotask_ilert_reconcile_sweeps_total", {"source": "default", "outcome": "done"})
    before = sample(done[0], **done[1])
    caplog.set_level(logging.INFO, logger="flask_autotask_ilert")
    sweep(app, dry_run=True)
    assert sample(done[0], **done[1]) == before
    pages(app, monkeypatch, ticket(111, created="2026-11-30T11:00:00Z"))
    sweep(app)
    assert reconcile_lines(caplog) == [
        (logging.INFO, '{"event":"reconcile","source":"default","outcome":"dry-run",'
                       '"since":"2026-11-30T11:50:00.000Z","read":1,"missed":1,"autotask_calls":1,'
                       '"tickets":"110:create"}'),
        (logging.INFO, '{"event":"reconcile","source":"default","outcome":"done",'
                       '"since":"2026-11-30T11:50:00.000Z","read":1,"missed":0,"autotask_calls":0}'),
    ]
    assert sample(done[0], **done[1]) == before + 1


def two_sources(make: AppFactory) -> Flask:
    """``default`` and ``team-b``: the same tenant, another integration code (its own budget)."""
    return make(log_format="json", sources={
        "team-b": {"callout_token": "team-b-callout-token-0123456789", "ilert_integration_key": "il1-b",
                   "autotask_integration_code": "TEAMBCODE"},
    })


def test_a_spent_budget_defers_one_source_and_says_so(
    make: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    app = two_sources(make)
    bridge = get_bridge(app)
    client = bridge.autotask(bridge.settings.sources["default"])
    assert client is not None
    bridge.store.cache_usage(client.integration_code_digest, 0.8, 300_000)  # at the share: spent
    deferred = ("autotask_ilert_reconcile_sweeps_total", {"source": "default", "outcome": "deferred"})
    before = sample(deferred[0], **deferred[1])
    caplog.set_level(logging.INFO, logger="flask_autotask_ilert")
    assert reconcile.run_due(bridge) == []
    assert reconcile_lines(caplog) == [(logging.WARNING, json.dumps({
        "event": "reconcile", "source": "default", "outcome": "deferred",
        "reason": "Autotask tenant at 80% of its hourly API budget",
    }, separators=(",", ":")))]
    assert sample(deferred[0], **deferred[1]) == before + 1
    schedule = reconcile.Schedule(bridge.store)
    assert schedule.mark("default") is None
    assert schedule.mark("team-b") == datetime(2026, 11, 30, 12, tzinfo=UTC)  # the next source swept


def test_a_budget_below_the_share_does_not_defer(make: AppFactory) -> None:
    bridge = get_bridge(make())
    client = bridge.autotask(bridge.settings.sources["default"])
    assert client is not None
    bridge.store.cache_usage(client.integration_code_digest, 0.79, 300_000)
    assert reconcile.run_due(bridge) == []
    assert reconcile.Schedule(bridge.store).mark("default") == datetime(2026, 11, 30, 12, tzinfo=UTC)


def test_a_failed_source_is_logged_counted_and_skipped(
    make: AppFactory, autotask: tuple[AutotaskState, str], caplog: pytest.LogCaptureFixture
) -> None:
    app = two_sources(make)
    bridge = get_bridge(app)
    schedule = reconcile.Schedule(bridge.store)
    schedule.set_mark("default", SINCE)
    autotask[0].status_picklist = []
    failed = ("autotask_ilert_reconcile_sweeps_total", {"source": "default", "outcome": "failed"})
    before = sample(failed[0], **failed[1])
    caplog.set_level(logging.INFO, logger="flask_autotask_ilert")
    assert reconcile.run_due(bridge) == []
    assert reconcile_lines(caplog) == [(logging.WARNING, json.dumps({
        "event": "reconcile", "source": "default", "outcome": "failed",
        "reason": "the tenant's ticket status picklist is empty or unreadable",
    }, separators=(",", ":")))]
    assert sample(failed[0], **failed[1]) == before + 1
    assert schedule.mark("default") == SINCE  # tried again from the same mark next time
    assert schedule.mark("team-b") == datetime(2026, 11, 30, 12, tzinfo=UTC)


def test_the_worker_returns_the_reports_of_its_sweeps(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    bridge = get_bridge(app)
    reconcile.Schedule(bridge.store).set_mark("default", SINCE)
    pages(app, monkeypatch, ticket(120))
    [report] = reconcile.run_due(bridge)
    assert report.source == "default" and report.since == SINCE
    assert report.outcomes == [Outcome(120, "New", "create", State.PENDING)]
    assert reconcile.Schedule(bridge.store).mark("default") == datetime(2026, 11, 30, 11, 56, tzinfo=UTC)


# -- the CLI's progress bar ----------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_shows_the_tickets_read_on_stderr(
    app: Flask, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bridge = get_bridge(app)
    source = bridge.settings.sources["default"]
    pages(app, monkeypatch)
    assert list(reconcile.progress_bar(reconcile.Sweep(bridge, source, SINCE))) == []
    assert capsys.readouterr() == ("", "")  # nothing to show, not even the label

    pages(app, monkeypatch, ticket(130), ticket(131), ticket(132))
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    shown = list(reconcile.progress_bar(reconcile.Sweep(bridge, source, SINCE, dry_run=True)))
    assert [o.ticket for o in shown] == [130, 131, 132]
    assert capsys.readouterr().out == ""
    assert "default: tickets read" in terminal.getvalue()
    assert re.search(r"default: tickets read\s+\[[^\]]*\]\s+3\b", terminal.getvalue())


def test_a_callout_that_records_the_ticket_first_wins_over_resolve_unknown(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sweep read "no record", then the ticket's own callout recorded it before the sweep's
    # write: the store's script sees the record, and the sweep queues and claims nothing.
    callout(app, 140, "New", datetime(2026, 11, 30, 11, 51, tzinfo=UTC))
    store = get_bridge(app).store
    monkeypatch.setattr(store, "mapping", lambda source, ticket_id: None)
    pages(app, monkeypatch, ticket(140, status=5, created="2026-11-30T11:00:00Z"))
    assert sweep(app, resolve_unknown=True).outcomes == [Outcome(140, "Complete", "nothing", State.PENDING)]
    assert [e["action"] for e in store.queued("default", 140)] == ["create"]
