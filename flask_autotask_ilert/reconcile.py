"""Reconciliation against Autotask, the source of truth: the sweep that finds lost callouts.

Autotask sends an Extension Callout once and never again: one sent while the
host app was down, being deployed or answering 503 is lost, and with it the
page or the resolve it carried. The sweep asks Autotask which tickets changed
since the last sweep (``POST Tickets/query`` on ``lastActivityDate``, page by
page) and feeds each one to the same lifecycle as a callout, through
``callouts.handle_callout``: the store's one script decides, so a change the
callout already reported (or reports later) does nothing the second time.

What it does *not* do: page for a ticket it has no record of unless the ticket
was created inside the window (a lost "new ticket" callout). An older ticket
without a record either predates the bridge, was never meant for it (the
workflow rule did not fire), or its record was lost with Redis' data; paging
for those would surprise an on-call team. ``resolve_unknown`` sends RESOLVE
for the closed ones (ilert answers a no-op where no alert is open).

Redis keeps, under the app's prefix: ``reconcile:marks`` (per source, the
high-water mark, the newest ``lastActivityDate`` seen, in microseconds),
``reconcile:turn`` (taken once per interval by whichever worker gets it
first) and ``reconcile:lease`` (held while a sweep runs, so there is one at a
time across all processes and hosts, CLI included).
"""

from __future__ import annotations

import itertools
import logging
import random
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import redis

import flask_autotask_ilert.logs as logs
import flask_autotask_ilert.metrics as metrics

from .autotask import AutotaskClient, AutotaskError
from .callouts import handle_callout
from .errors import AutotaskIlertError, StoreUnavailable
from .events import ilert_event
from .lifecycle import Action, State, StatusClass, Transition, transition
from .schemas import Callout, from_micros, parse_timestamp, to_micros
from .store import Store, dumps_event

if TYPE_CHECKING:
    from .bridge import Bridge
    from .config import SourceConfig

logger = logging.getLogger("flask_autotask_ilert")

#: Items per page, Autotask's most (``MaxRecords``).
PAGE_SIZE = 500
#: Tickets are asked for from this long before the high-water mark: an edit saved while the
#: last sweep read may carry an earlier lastActivityDate than tickets that sweep saw.
OVERLAP = timedelta(seconds=60)
#: How long a running sweep holds the lease; renewed on every page.
LEASE_MS = 300_000
#: How long a sweep waits for a free Autotask request place before it gives up for now.
PLACE_WAIT_SECONDS = 30.0
#: What a sweep counts as a change no callout reported: the actions that schedule an event.
CHANGES = frozenset({Action.CREATE.value, Action.ACCEPT.value, Action.RESOLVE.value})
#: The action of a closed ticket without a record, resolved on request (``resolve_unknown``).
RESOLVE_UNKNOWN = "resolve-unknown"


class ReconcileError(AutotaskIlertError):
    """A sweep could not run (Autotask unreachable, another sweep running, a bad window)."""


@dataclass(frozen=True)
class Outcome:
    """What the sweep did (or, dry, would do) with one ticket it read."""

    ticket: int
    status: str
    action: str  # an Action value, "stale", "unknown" (no record, not new) or RESOLVE_UNKNOWN
    state: State | None  # the mapping state after it (None when nothing is recorded)

    @property
    def is_change(self) -> bool:
        return self.action in CHANGES or self.action == RESOLVE_UNKNOWN


@dataclass
class Report:
    """One source's sweep, as the log line, the metrics and the CLI tell it."""

    source: str
    since: datetime
    dry_run: bool = False
    read: int = 0
    calls: int = 0
    mark: datetime | None = None  # the newest lastActivityDate seen
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def changes(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.is_change]


def iso(moment: datetime) -> str:
    """The form Autotask's query takes: UTC, milliseconds, ``Z``."""
    utc = moment.astimezone(timezone.utc)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def parse_since(text: str) -> datetime:
    """``--since``: an ISO 8601 time; without an offset it is UTC."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ReconcileError(f"--since {text!r} is not an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def query_body(source: SourceConfig, since: datetime) -> dict[str, Any]:
    """Tickets changed after ``since``, narrowed by the source's RECONCILE_FILTER (ANDed)."""
    conditions: list[Any] = [{"op": "gt", "field": "lastActivityDate", "value": iso(since)}]
    conditions += [dict(c) for c in source.reconcile_filter]
    return {"filter": conditions, "MaxRecords": PAGE_SIZE}


# -- Redis: marks, the interval's turn, the lease ----------------------------------------------


class Schedule:
    """The sweep's state in Redis; every method may raise StoreUnavailable."""

    def __init__(self, store: Store) -> None:
        self.store = store
        prefix = store.keys.prefix
        self.marks_key = f"{prefix}reconcile:marks"
        self.turn_key = f"{prefix}reconcile:turn"
        self.lease_key = f"{prefix}reconcile:lease"

    @contextmanager
    def _redis(self) -> Iterator[redis.Redis]:
        try:
            yield self.store.client
        except redis.RedisError as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {str(exc)[:200]}") from exc

    def mark(self, source: str) -> datetime | None:
        with self._redis() as client:
            raw = client.hget(self.marks_key, source)
        if raw is None:
            return None
        return from_micros(int(raw))

    def set_mark(self, source: str, moment: datetime) -> None:
        """Move the mark forward only: two sweeps (worker and CLI) never move it back."""
        value = to_micros(moment)
        with self._redis() as client:
            current = client.hget(self.marks_key, source)
            if current is None or int(current) < int(value or 0):
                client.hset(self.marks_key, source, str(value))

    def take_turn(self, interval_ms: int) -> bool:
        """True for exactly one caller per interval, across all processes and hosts."""
        with self._redis() as client:
            return bool(client.set(self.turn_key, uuid.uuid4().hex, nx=True, px=interval_ms))

    def acquire(self, token: str) -> bool:
        with self._redis() as client:
            return bool(client.set(self.lease_key, token, nx=True, px=LEASE_MS))

    def renew(self, token: str) -> bool:
        """Keep the lease through a long sweep; False if it was lost (then stop)."""
        with self._redis() as client:
            return bool(client.register_script(_RENEW)(keys=[self.lease_key], args=[token, LEASE_MS]))

    def release(self, token: str) -> None:
        with self._redis() as client:
            client.register_script(_RELEASE)(keys=[self.lease_key], args=[token])


#: Compare-and-act on the lease, so a sweep never touches a lease another sweep holds.
_RENEW = ("if redis.call('GET', KEYS[1]) == ARGV[1] then "
          "return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0")
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


# -- one sweep ------------------------------------------------------------------------------------


@contextmanager
def _place(store: Store, client: AutotaskClient, concurrency: int, hold_ms: int) -> Iterator[None]:
    """One of Autotask's few request places per integration code, shared with the delivery
    threads (the same Redis semaphore), waited for instead of provoking "Thread Threshold
    Exceeded"."""
    name = f"{client.integration_code_digest}:Tickets"
    token = uuid.uuid4().hex
    deadline = time.monotonic() + PLACE_WAIT_SECONDS
    while not store.try_acquire(name, concurrency, hold_ms, token):
        if time.monotonic() > deadline:
            raise AutotaskError("query tickets: no free Autotask request place", retryable=True)
        time.sleep(random.uniform(0.02, 0.1))
    try:
        yield
    finally:
        store.release(name, token)


class Sweep:
    """One sweep of one source over one window; iterate it to run it (one Outcome per ticket).

    Iterating lets the CLI draw a progress bar; the worker simply exhausts it.
    The report is complete once iteration ends.
    """

    def __init__(
        self,
        bridge: Bridge,
        source: SourceConfig,
        since: datetime,
        *,
        dry_run: bool = False,
        resolve_unknown: bool = False,
        renew: Callable[[], bool] | None = None,
    ) -> None:
        client = bridge.autotask(source)
        if client is None:
            raise ReconcileError(f"source {source.name!r} has no Autotask credentials")
        self.bridge = bridge
        self.source = source
        self.client = client
        self.dry_run = dry_run
        self.resolve_unknown = resolve_unknown
        self.renew = renew
        self.report = Report(source.name, since, dry_run)
        self.request_id = f"reconcile-{uuid.uuid4().hex[:12]}"

    def __iter__(self) -> Iterator[Outcome]:
        settings = self.bridge.settings
        hold_ms = int(sum(settings.http_timeout) * 3 * 1000)
        body = query_body(self.source, self.report.since - OVERLAP)
        before = self.client.calls
        next_url: str | None = None
        try:
            statuses = self._statuses()
            while True:
                if self.renew is not None and not self.renew():
                    raise ReconcileError("the sweep's lease was lost; another sweep took over")
                with _place(self.bridge.store, self.client, settings.autotask_concurrency, hold_ms):
                    items, next_url = self.client.query_page("Tickets", body, next_url)
                for item in items:
                    outcome = self._one(item, statuses)
                    if outcome is not None:
                        self.report.outcomes.append(outcome)
                        yield outcome
                if next_url is None:
                    break
        finally:
            self.report.calls = self.client.calls - before

    def _statuses(self) -> dict[str, str]:
        statuses = self.client.picklist("Tickets", "status")
        if not statuses:
            raise ReconcileError("the tenant's ticket status picklist is empty or unreadable")
        return statuses

    def _one(self, item: dict[str, Any], statuses: dict[str, str]) -> Outcome | None:
        ticket = item.get("id")
        if isinstance(ticket, bool) or not isinstance(ticket, int) or ticket < 1:
            return None
        self.report.read += 1
        activity = parse_timestamp(item.get("lastActivityDate"))
        if activity is not None and (self.report.mark is None or activity > self.report.mark):
            self.report.mark = activity
        raw = str(item.get("status"))
        label = statuses.get(raw, raw)  # an unknown value classifies as OTHER
        callout = Callout(
            ticket_id=ticket,
            status=label,
            number=item.get("ticketNumber") if isinstance(item.get("ticketNumber"), str) else None,
            created=parse_timestamp(item.get("createDate")),
            last_activity=activity,
        )
        store = self.bridge.store
        mapping = store.mapping(self.source.name, ticket)
        if mapping is None:
            if self.resolve_unknown and self.source.classify(label) is StatusClass.CLOSED:
                return self._resolve_unknown(callout)  # created in the window or not
            if not self._created_in_window(callout):
                return Outcome(ticket, label, "unknown", None)
        if (mapping is not None and mapping.last_activity_us is not None
                and mapping.last_activity_us == callout.last_activity_us
                and mapping.status_class is self.source.classify(label)):
            # Exactly the change already applied (read again in the overlap, or reported by
            # its callout): nothing new, so not even an audit record. Through the table it
            # could look like a repeated callout (a PENDING ticket In Progress would accept).
            return Outcome(ticket, label, Action.NOTHING.value, mapping.state)
        if self.dry_run:
            return self._predict(callout, mapping.state if mapping else State.NONE,
                                 mapping.last_activity_us if mapping else None)
        answer = handle_callout(self.bridge.settings, store, self.source, callout,
                                request_id=self.request_id)
        return Outcome(ticket, label, answer.action, answer.state)

    def _created_in_window(self, callout: Callout) -> bool:
        created = callout.created
        return created is not None and created > self.report.since - OVERLAP

    def _predict(self, callout: Callout, state: State, last_us: int | None) -> Outcome:
        """What the store's script would decide, read-only (``--dry-run``)."""
        incoming = callout.last_activity_us
        if incoming is not None and last_us is not None and incoming < last_us:
            return Outcome(callout.ticket_id, callout.status, "stale", state)
        cell = transition(state, self.source.classify(callout.status),
                          realert_on_reopen=self.source.realert_on_reopen)
        new = state if cell.action is Action.REJECT else cell.new_state
        return Outcome(callout.ticket_id, callout.status, cell.action.value, new)

    def _resolve_unknown(self, callout: Callout) -> Outcome:
        """Queue a RESOLVE for a closed ticket without a record, and record it as resolved."""
        ticket = callout.ticket_id
        if self.dry_run:
            return Outcome(ticket, callout.status, RESOLVE_UNKNOWN, State.RESOLVED)
        store = self.bridge.store
        event = ilert_event(self.source.name, ticket, callout.record(), store.now_ms(),
                            request_id=self.request_id, action=Action.RESOLVE.value)
        resolve = Transition(Action.RESOLVE, State.RESOLVED)
        column = {state: Transition(Action.NOTHING, state) for state in State}
        column[State.NONE] = resolve
        outcome = store.apply_callout(
            self.source.name, ticket, StatusClass.CLOSED, column,
            {Action.RESOLVE: dumps_event(event)}, callout.last_activity_us,
            self.bridge.settings.resolved_retention_ms, clock_skew_ms=self.bridge.settings.clock_skew_ms,
            label=callout.status,  # the audit record's words, as for a callout
        )
        action = RESOLVE_UNKNOWN if outcome.action == Action.RESOLVE.value else outcome.action
        return Outcome(ticket, callout.status, action, outcome.state)


# -- what the worker and the CLI call -----------------------------------------------------------


def sources(bridge: Bridge, name: str | None = None, *, required: bool = False) -> list[SourceConfig]:
    """The sources a sweep covers: those with Autotask credentials (or the one named).

    ``required``: none is an error (the CLI asked for a sweep), not a quiet no-op.
    """
    found = [s for s in bridge.settings.sources.values() if s.autotask is not None]
    if name is not None:
        found = [s for s in found if s.name == name]
    if (name is not None or required) and not found:
        which = f"alert source {name!r}" if name is not None else "alert source"
        raise ReconcileError(f"no {which} with Autotask credentials: nothing to reconcile")
    return found


def _budget_spent(bridge: Bridge, source: SourceConfig) -> float | None:
    """The tenant's usage when it is at or above AUTOTASK_THRESHOLD_SHARE, from the shared reading.

    Only the reading the ticket writes already keep is used: asking Autotask
    would itself cost a call. A sweep put off is only late: the mark stays.
    """
    client = bridge.autotask(source)
    settings = bridge.settings
    if client is None:
        return None
    usage = bridge.store.cached_usage(client.integration_code_digest,
                                      settings.autotask_threshold_check_ms)
    return usage if usage is not None and usage >= settings.autotask_threshold_share else None


def run(
    bridge: Bridge,
    source: SourceConfig,
    *,
    since: datetime | None = None,
    dry_run: bool = False,
    resolve_unknown: bool = False,
    progress: Callable[[Sweep], Iterator[Outcome]] = iter,
) -> Report | None:
    """One sweep of ``source``, holding the lease; None when it only recorded the first mark.

    Without ``since`` the window starts at the source's high-water mark, and a
    first sweep (no mark yet) records "now" and reads nothing: the tenant's
    history is not the bridge's business. A sweep over a chosen window
    (``since``) or a dry run leaves the mark alone.
    """
    schedule = Schedule(bridge.store)
    token = uuid.uuid4().hex
    if not schedule.acquire(token):
        raise ReconcileError("another sweep is running; try again when it has finished")
    try:
        start = since
        if start is None:
            start = schedule.mark(source.name)
            if start is None:
                if not dry_run:
                    now = datetime.fromtimestamp(bridge.clock(), timezone.utc)
                    schedule.set_mark(source.name, now)
                return None
        sweep = Sweep(bridge, source, start, dry_run=dry_run, resolve_unknown=resolve_unknown,
                      renew=lambda: schedule.renew(token))
        for _ in progress(sweep):
            pass
        report = sweep.report
        if since is None and not dry_run and report.mark is not None:
            schedule.set_mark(source.name, report.mark)
        _tell(bridge, report)
        return report
    finally:
        schedule.release(token)


def run_due(bridge: Bridge) -> list[Report]:
    """The worker's periodic sweep: if this interval's turn is ours, sweep every source.

    A failed source is logged and skipped (the next interval tries again from
    the same mark, so nothing is lost, only late).
    """
    interval_ms = int(bridge.settings.reconcile_interval_seconds * 1000)
    covered = sources(bridge)
    if interval_ms <= 0 or not covered or not Schedule(bridge.store).take_turn(interval_ms):
        return []
    reports = []
    for source in covered:
        try:
            spent = _budget_spent(bridge, source)
            if spent is not None:
                metrics.count_reconcile(source.name, "deferred")
                logs.emit(logging.WARNING, "reconcile", {
                    "source": source.name, "outcome": "deferred",
                    "reason": f"Autotask tenant at {spent:.0%} of its hourly API budget",
                }, bridge.settings.log_format)
                continue
            report = run(bridge, source)
        except (AutotaskIlertError, StoreUnavailable) as exc:
            metrics.count_reconcile(source.name, "failed")
            logs.emit(logging.WARNING, "reconcile", {
                "source": source.name, "outcome": "failed", "reason": str(exc),
            }, bridge.settings.log_format)
            continue
        if report is not None:
            reports.append(report)
    return reports


def _tell(bridge: Bridge, report: Report) -> None:
    """The sweep's one log line and its counters."""
    changes = report.changes
    if not report.dry_run:
        metrics.count_reconcile(report.source, "done", read=report.read, calls=report.calls,
                                changes=[o.action for o in changes])
    logs.emit(logging.WARNING if changes and not report.dry_run else logging.INFO, "reconcile", {
        "source": report.source,
        "outcome": "dry-run" if report.dry_run else "done",
        "since": iso(report.since),
        "read": report.read,
        "missed": len(changes),
        "autotask_calls": report.calls,
        "tickets": ",".join(f"{o.ticket}:{o.action}" for o in changes[:20]) or None,
    }, bridge.settings.log_format)


# -- for the CLI ------------------------------------------------------------------------------------


def progress_bar(sweep: Sweep) -> Iterator[Outcome]:
    """The sweep's tickets behind a progress bar on stderr (the total is not known in advance).

    The bar appears with the first ticket, so a sweep that cannot start says
    only why.
    """
    import click

    tickets = iter(sweep)
    first = next(tickets, None)
    if first is None:
        return
    with click.progressbar(itertools.chain([first], tickets), label=f"{sweep.source.name}: tickets read",
                           file=sys.stderr, show_pos=True) as bar:
        yield from bar


def describe(report: Report | None, source: str, dry_run: bool = False) -> list[str]:
    """What a sweep did, or would do, one line per change and a summary."""
    if report is None and dry_run:
        return [f"{source}: no sweep yet, so no mark to start from (a dry run sets none). "
                "Give --since to look back."]
    if report is None:
        return [f"{source}: first sweep: the mark is set to now; nothing older is read. "
                "Give --since to look back."]
    did = "would" if report.dry_run else "did"
    lines = [f"{source}: ticket {o.ticket} ({o.status}): {did} {o.action}"
             + (f" -> {o.state.value}" if o.state else "") for o in report.changes]
    dry = " (dry run: nothing changed)" if report.dry_run else ""
    lines.append(f"{source}: since {iso(report.since)}: {report.read} ticket(s) read, "
                 f"{len(report.changes)} change(s) no callout had reported, "
                 f"{report.calls} Autotask call(s){dry}")
    return lines
