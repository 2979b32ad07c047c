"""The reconciliation sweep: window, paging, the lifecycle through the callout's own path, the CLI.

Autotask is the project's simulator on a loopback port (its query endpoint pages
like Autotask's); the bridge's app is served too where a callout must reach it.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests
import responses
from flask import Flask

from flask_autotask_ilert import reconcile
from flask_autotask_ilert.autotask import AutotaskClient, AutotaskError
from flask_autotask_ilert.extension import get_bridge
from flask_autotask_ilert.lifecycle import State
from flask_autotask_ilert.testing.autotask_sim import (
    DEFAULT_CODE,
    DEFAULT_SECRET,
    DEFAULT_USER,
    AutotaskState,
)
from flask_autotask_ilert.testing.servers import ServerThread

from .conftest import TOKEN, AppFactory, Clock


@pytest.fixture
def app(make_app: AppFactory, autotask: tuple[AutotaskState, str], clock: Clock) -> Flask:
    clock.now = time.time()  # the simulator stamps tickets with the real time
    return make_app(
        autotask_username=DEFAULT_USER,
        autotask_secret=DEFAULT_SECRET,
        autotask_integration_code=DEFAULT_CODE,
        autotask_api_url=f"{autotask[1]}/atservicesrest",
    )


def queries(state: AutotaskState) -> list[Any]:
    return [c for c in state.calls() if c.method == "POST" and "/Tickets/query" in c.path]


def queued_actions(app: Flask, ticket: int) -> list[str]:
    return [e["action"] for e in get_bridge(app).store.queued("default", ticket)]


def sweep(app: Flask, **options: Any) -> reconcile.Report | None:
    bridge = get_bridge(app)
    return reconcile.run(bridge, bridge.settings.sources["default"], **options)


def test_the_first_sweep_only_sets_the_mark(app: Flask, autotask: tuple[AutotaskState, str]) -> None:
    state, _ = autotask
    state.add_ticket("Old news")
    assert sweep(app) is None
    assert queries(state) == []  # the tenant's history is not read
    mark = reconcile.Schedule(get_bridge(app).store).mark("default")
    assert mark is not None and abs(mark.timestamp() - time.time()) < 60


def test_lost_callouts_still_page_accept_and_resolve_each_once(
    app: Flask, autotask: tuple[AutotaskState, str], clock: Clock
) -> None:
    state, _ = autotask  # no callout URL: every callout is lost
    assert sweep(app) is None
    ticket = state.add_ticket("Disk full on SRV-01")["id"]

    report = sweep(app)
    assert report is not None
    assert [(o.ticket, o.action) for o in report.changes] == [(ticket, "create")]
    assert queued_actions(app, ticket) == ["create"]
    again = sweep(app)  # the overlap reads it again: nothing new
    assert again is not None and again.changes == [] and again.read == 1

    state.set_status(ticket, "In Progress")
    report = sweep(app)
    assert report is not None and [o.action for o in report.changes] == ["accept"]
    state.set_status(ticket, "Complete")
    report = sweep(app)
    assert report is not None and [o.action for o in report.changes] == ["resolve"]
    assert sweep(app).changes == []  # type: ignore[union-attr]
    assert queued_actions(app, ticket) == ["create", "accept", "resolve"]
    mapping = get_bridge(app).store.mapping("default", ticket)
    assert mapping is not None and mapping.state is State.RESOLVED


def test_reading_a_ticket_again_in_the_overlap_changes_nothing(
    app: Flask, autotask: tuple[AutotaskState, str]
) -> None:
    state, _ = autotask
    assert sweep(app) is None
    ticket = state.add_ticket("Opened straight into In Progress", status_label="In Progress")["id"]
    report = sweep(app)
    assert report is not None and [o.action for o in report.changes] == ["create"]
    for _ in range(2):  # read again: it is the change already applied, not a repeated callout
        again = sweep(app)
        assert again is not None and [o.action for o in again.outcomes] == ["nothing"]
    assert queued_actions(app, ticket) == ["create"]
    assert len(get_bridge(app).store.audit("default", ticket)) == 1  # no record per sweep


def test_a_callout_before_or_after_the_sweep_is_never_acted_on_twice(
    app: Flask, autotask: tuple[AutotaskState, str]
) -> None:
    state, _ = autotask
    with ServerThread(app) as bridge_server:
        state.callout_url = f"{bridge_server.url}/autotask-ilert/callout/{TOKEN}"
        assert sweep(app) is None
        early = state.add_ticket("The callout comes first")["id"]  # delivered at once
        state.hold_callouts = True
        late = state.add_ticket("The callout comes after the sweep")["id"]
        state.set_status(late, "In Progress")

        report = sweep(app)
        assert report is not None
        assert sorted((o.ticket, o.action) for o in report.changes) == [(late, "create")]
        # New then In Progress, both late. The New is older than what the sweep applied: stale.
        # The In Progress is the change the sweep saw; the table accepts a PENDING alert on it,
        # as it would have had both callouts arrived in time (create, then accept).
        answers = state.release_callouts()
        assert [(a.status_code, a.body_json["action"]) for a in answers] == [
            (200, "stale"), (202, "accept")
        ]
        assert sweep(app).changes == []  # type: ignore[union-attr]
        state.hold_callouts = False
        state.set_status(late, "Complete")  # arrives at once
        report = sweep(app)
        assert report is not None and report.changes == []
    assert queued_actions(app, early) == ["create"]
    assert queued_actions(app, late) == ["create", "accept", "resolve"]


def test_the_query_pages_until_there_is_no_next_page(
    app: Flask, autotask: tuple[AutotaskState, str]
) -> None:
    state, _ = autotask
    assert sweep(app) is None
    for n in range(1100):
        state.add_ticket(f"Ticket {n}", status_label="Waiting Customer")
    report = sweep(app)
    assert report is not None and report.read == 1100
    pages = queries(state)
    assert len(pages) == 3
    assert [c.path.rsplit("/", 1)[-1] for c in pages] == ["query", "next", "next"]
    assert all(c.json_body == pages[0].json_body for c in pages)  # the same body every page
    assert pages[0].json_body["MaxRecords"] == 500
    assert report.calls == 3 + 1  # the pages and the status picklist
    assert report.changes == []  # a new ticket already waiting has no alert to make


def test_the_window_starts_at_the_mark_less_the_overlap(
    app: Flask, autotask: tuple[AutotaskState, str]
) -> None:
    state, _ = autotask
    assert sweep(app) is None
    state.add_ticket("One")
    report = sweep(app)
    assert report is not None and report.mark is not None
    condition = queries(state)[-1].json_body["filter"][0]
    assert condition["op"] == "gt" and condition["field"] == "lastActivityDate"
    mark = reconcile.Schedule(get_bridge(app).store).mark("default")
    assert mark == report.mark  # the newest lastActivityDate seen, Autotask's own clock
    sweep(app)
    asked = reconcile.parse_since(queries(state)[-1].json_body["filter"][0]["value"])
    assert asked == (report.mark - reconcile.OVERLAP).replace(microsecond=asked.microsecond)


def test_a_filter_narrows_the_sweep_to_the_callouts_tickets(
    make_app: AppFactory, autotask: tuple[AutotaskState, str], clock: Clock
) -> None:
    state, url = autotask
    clock.now = time.time()
    app = make_app(
        autotask_username=DEFAULT_USER, autotask_secret=DEFAULT_SECRET,
        autotask_integration_code=DEFAULT_CODE, autotask_api_url=f"{url}/atservicesrest",
        reconcile_filter=[{"op": "eq", "field": "queueID", "value": 42}],
    )
    assert sweep(app) is None
    monitored = state.add_ticket("Monitored", queue_id=42)["id"]
    state.add_ticket("Someone's printer", queue_id=7)
    report = sweep(app)
    assert report is not None and [o.ticket for o in report.outcomes] == [monitored]


def test_an_old_ticket_without_a_record_is_left_alone_unless_closed_and_asked(
    app: Flask, autotask: tuple[AutotaskState, str]
) -> None:
    state, _ = autotask
    long_ago = datetime.now(timezone.utc) - timedelta(days=400)
    old_open = state.add_ticket("Long-running project")["id"]
    old_closed = state.add_ticket("Closed while Redis was empty", status_label="Complete")["id"]
    for ticket in (old_open, old_closed):
        state.backdate(ticket, long_ago)
    state.set_status(old_open, "In Progress")
    since = datetime.now(timezone.utc) - timedelta(minutes=5)
    report = sweep(app, since=since)  # both changed in the window, created long before it
    assert report is not None and report.changes == [] and report.read == 2
    assert {o.action for o in report.outcomes} == {"unknown"}

    dry = sweep(app, since=long_ago - timedelta(days=1), dry_run=True)
    assert dry is not None  # created inside this window: the lifecycle decides (dry)
    assert {(o.ticket, o.action) for o in dry.changes} == {(old_open, "create")}
    assert queued_actions(app, old_open) == []

    report = sweep(app, since=since, resolve_unknown=True)
    assert report is not None
    assert [(o.ticket, o.action) for o in report.changes] == [(old_closed, "resolve-unknown")]
    assert queued_actions(app, old_closed) == ["resolve"]
    assert queued_actions(app, old_open) == []
    mapping = get_bridge(app).store.mapping("default", old_closed)
    assert mapping is not None and mapping.state is State.RESOLVED
    again = sweep(app, since=since, resolve_unknown=True)  # now it has a record: nothing
    assert again is not None and again.changes == []
    # Paged, then Redis lost its data, then closed: created in the window, resolved all the same.
    recent = state.add_ticket("Paged before the data was lost", status_label="Complete")["id"]
    report = sweep(app, since=since, resolve_unknown=True)
    assert report is not None and [(o.ticket, o.action) for o in report.changes] == [
        (recent, "resolve-unknown")
    ]


def test_a_dry_run_changes_nothing(app: Flask, autotask: tuple[AutotaskState, str]) -> None:
    state, _ = autotask
    assert sweep(app) is None
    ticket = state.add_ticket("Would page")["id"]
    mark = reconcile.Schedule(get_bridge(app).store).mark("default")
    report = sweep(app, dry_run=True)
    assert report is not None and [(o.ticket, o.action) for o in report.changes] == [(ticket, "create")]
    assert get_bridge(app).store.mapping("default", ticket) is None
    assert reconcile.Schedule(get_bridge(app).store).mark("default") == mark


def test_one_sweep_at_a_time_and_one_turn_per_interval(app: Flask) -> None:
    bridge = get_bridge(app)
    schedule = reconcile.Schedule(bridge.store)
    assert schedule.acquire("someone-else")
    with pytest.raises(reconcile.ReconcileError, match="another sweep is running"):
        sweep(app)
    schedule.release("someone-else")
    assert reconcile.run_due(bridge) == []  # the first: only the mark
    assert schedule.mark("default") is not None
    assert not schedule.take_turn(300_000)  # this interval's turn is taken


def test_a_next_page_on_another_host_is_not_followed() -> None:
    api = "https://webservices5.autotask.net/atservicesrest"
    client = AutotaskClient("u", "s", "c", api_url=api)
    with responses.RequestsMock() as rsps:
        rsps.post(f"{api}/v1.0/Tickets/query", json={
            "items": [{"id": 1}], "pageDetails": {"count": 1, "nextPageUrl": "https://evil.example/next"},
        })
        items, following = client.query_page("Tickets", {"filter": []})
        assert items == [{"id": 1}] and following == "https://evil.example/next"
        with pytest.raises(AutotaskError, match="another host") as caught:
            client.query_page("Tickets", {"filter": []}, following)
        assert not caught.value.retryable
        rsps.post("https://WEBSERVICES5.autotask.net/ATServicesRest/V1.0/Tickets/query/next",
                  json={"items": [], "pageDetails": {"count": 0, "nextPageUrl": None}})
        assert client.query_page(
            "Tickets", {"filter": []},
            "https://WEBSERVICES5.autotask.net/ATServicesRest/V1.0/Tickets/query/next",
        ) == ([], None)


# -- the command --------------------------------------------------------------------------------


def cli(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["autotask-ilert", *args])


def test_the_command_sweeps_a_chosen_window_and_says_what_it_did(
    app: Flask, autotask: tuple[AutotaskState, str]
) -> None:
    state, _ = autotask
    ticket = state.add_ticket("Missed")["id"]
    since = (datetime.now(timezone.utc) - timedelta(minutes=10)).isoformat()
    dry = cli(app, "reconcile", "--since", since, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert f"ticket {ticket} (New): would create" in dry.output
    assert "dry run: nothing changed" in dry.output
    done = cli(app, "reconcile", "--since", since)
    assert done.exit_code == 0
    assert f"ticket {ticket} (New): did create -> PENDING" in done.output
    assert "1 ticket(s) read, 1 change(s) no callout had reported" in done.output
    assert queued_actions(app, ticket) == ["create"]


def test_the_command_fails_in_one_line(app: Flask, autotask: tuple[AutotaskState, str]) -> None:
    bad = cli(app, "reconcile", "--since", "yesterday")
    assert bad.exit_code == 1
    assert bad.output.strip() == "Error: --since 'yesterday' is not an ISO 8601 time"
    autotask[0].configure_faults({"fail_rate": 1.0, "fail_modes": ["500"]})
    down = cli(app, "reconcile", "--since", "2026-01-01T00:00:00Z")
    assert down.exit_code == 1
    assert len(down.output.strip().splitlines()) == 1 and "http 500" in down.output
    assert DEFAULT_SECRET not in down.output


def test_the_first_command_run_sets_the_mark(app: Flask) -> None:
    dry = cli(app, "reconcile", "--dry-run")
    assert dry.exit_code == 0
    assert dry.output.strip() == ("default: no sweep yet, so no mark to start from (a dry run sets none). "
                                  "Give --since to look back.")
    result = cli(app, "reconcile")
    assert result.exit_code == 0
    assert result.output.strip() == ("default: first sweep: the mark is set to now; nothing older is read. "
                                     "Give --since to look back.")
    again = cli(app, "reconcile", "--dry-run")
    assert "first sweep" not in again.output and "no sweep yet" not in again.output


def test_the_worker_sweeps_from_a_thread(make_app: AppFactory, autotask: tuple[AutotaskState, str],
                                          clock: Clock) -> None:
    import threading

    from flask_autotask_ilert.worker import Worker

    clock.now = time.time()
    app = make_app(autotask_username=DEFAULT_USER, autotask_secret=DEFAULT_SECRET,
                   autotask_integration_code=DEFAULT_CODE,
                   autotask_api_url=f"{autotask[1]}/atservicesrest", reconcile_interval_seconds=0.5)
    bridge = get_bridge(app)
    stop = threading.Event()
    runner = threading.Thread(target=Worker(bridge, threads=1).run, args=(stop,))
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while reconcile.Schedule(bridge.store).mark("default") is None:
            assert time.monotonic() < deadline, "the worker never swept"
            time.sleep(0.05)
    finally:
        stop.set()
        runner.join(10)
    assert not runner.is_alive()  # the sweep thread stops with the others


def test_the_sweep_is_off_with_interval_zero(
    make_app: AppFactory, autotask: tuple[AutotaskState, str]
) -> None:
    app = make_app(autotask_username=DEFAULT_USER, autotask_secret=DEFAULT_SECRET,
                   autotask_integration_code=DEFAULT_CODE,
                   autotask_api_url=f"{autotask[1]}/atservicesrest", reconcile_interval_seconds=0)
    assert reconcile.run_due(get_bridge(app)) == []
    assert reconcile.Schedule(get_bridge(app).store).mark("default") is None


def test_the_simulator_query_filters(autotask: tuple[AutotaskState, str]) -> None:
    state, url = autotask
    a = state.add_ticket("a", queue_id=1)["id"]
    b = state.add_ticket("b", queue_id=2, status_label="Complete")["id"]
    c = state.add_ticket("c", queue_id=3)["id"]

    def ask(*conditions: Any, size: int = 500) -> list[int]:
        answer = requests.post(
            f"{url}/atservicesrest/v1.0/Tickets/query",
            json={"filter": list(conditions), "MaxRecords": size},
            headers={"UserName": DEFAULT_USER, "Secret": DEFAULT_SECRET, "ApiIntegrationCode": DEFAULT_CODE},
            timeout=5,
        )
        assert answer.status_code == 200, answer.text
        return [t["id"] for t in answer.json()["items"]]

    assert ask({"op": "in", "field": "queueID", "value": [1, 3]}) == [a, c]
    assert ask({"op": "gte", "field": "queueID", "value": 2}) == [b, c]
    assert ask({"op": "lt", "field": "queueID", "value": 2}) == [a]
    assert ask({"op": "or", "items": [{"op": "eq", "field": "id", "value": a},
                                      {"op": "eq", "field": "status", "value": 5}]}) == [a, b]
    assert ask({"op": "gt", "field": "lastActivityDate", "value": "2000-01-01T00:00:00Z"}, size=2) == [a, b]
    future = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    assert ask({"op": "lte", "field": "lastActivityDate", "value": future}) == [a, b, c]
    assert ask({"op": "gt", "field": "lastActivityDate", "value": future}) == []


def test_the_benchmark_counts_a_page_per_500_tickets_and_the_picklist_once() -> None:
    from bench.reconcile import measure

    assert measure(0) == {"changed": 0, "read": 0, "calls_first": 2, "calls_warm": 1, "changes": 0}
    assert measure(501) == {"changed": 501, "read": 501, "calls_first": 3, "calls_warm": 2,
                            "changes": 501}


def test_a_spent_budget_puts_the_sweep_off_and_keeps_the_mark(
    app: Flask, autotask: tuple[AutotaskState, str]
) -> None:
    state, _ = autotask
    bridge = get_bridge(app)
    assert reconcile.run_due(bridge) == []  # the first: the mark
    mark = reconcile.Schedule(bridge.store).mark("default")
    state.add_ticket("Missed while the budget was spent")
    client = bridge.autotask(bridge.settings.sources["default"])
    assert client is not None
    bridge.store.cache_usage(client.integration_code_digest, 0.95, 300_000)
    bridge.store.client.delete(reconcile.Schedule(bridge.store).turn_key)  # the next interval
    assert reconcile.run_due(bridge) == []
    assert queries(state) == []
    assert reconcile.Schedule(bridge.store).mark("default") == mark


def test_the_command_needs_a_source_with_autotask_credentials(make_app: AppFactory) -> None:
    result = make_app().test_cli_runner().invoke(args=["autotask-ilert", "reconcile"])
    assert result.exit_code == 1
    assert "no alert source with Autotask credentials" in result.output
