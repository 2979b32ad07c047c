"""Delivery: lease due ticket queues, send each head once, settle it.

At-least-once by construction: an event leaves its queue only after ilert
answered for it (or it was dead-lettered), and a worker that dies mid-send
simply lets its lease run out so another worker sends the same head again.
ilert's ``alertKey`` makes the repeat harmless. Retries are not loops here:
a failed event is written back to the head of its queue with the time it may
be tried again, so a restart, another thread or another host can pick it up.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import flask_autotask_ilert.audit as audit
import flask_autotask_ilert.logs as logs
import flask_autotask_ilert.metrics as metrics
import flask_autotask_ilert.reconcile as reconcile
import flask_autotask_ilert.signals as signals

from .alerts import TicketFacts, alert_key, build_event, kept_summary
from .autotask import AutotaskClient, AutotaskError
from .content import Alert, compose, ticket_labels
from .entities import EntityReader
from .errors import StoreUnavailable
from .events import ILERT, TICKET, QueuedEvent, dead_letter
from .http import backoff, secret_digest
from .ilert import Verdict
from .lifecycle import Action, SyncAction, status_change_still_wanted
from .routing import key_for_digest
from .store import Claim
from .tickets import STATUS_STEP, TicketUpdate, TicketUpdateError, current_status

if TYPE_CHECKING:
    from .bridge import Bridge
    from .config import SourceConfig

logger = logging.getLogger("flask_autotask_ilert")

CLAIM_BATCH = 8
#: How long a thread waits (seconds, one try after each) for a busy Autotask request place
#: before it puts the event off by 50-250 ms (docs/performance.md: the put-off events set p99).
PLACE_PAUSES = (0.005, 0.01, 0.02)
#: How often a running worker says it is alive (readyz; at most a third of READY_HEARTBEAT_SECONDS).
HEARTBEAT_SECONDS = 5.0
#: Heartbeats of workers silent this long are dropped (long enough to tell "stopped an hour ago").
HEARTBEAT_KEEP_MS = 86_400_000
#: While a destination (ilert, an Autotask integration code) fails, one probe at most this often
#: (seconds): after an outage of any length the held events go out within about this long
#: (plus a poll interval and the sends themselves, so a little under the 5 s promised).
PROBE_SECONDS = 4.0
#: Failures of ilert in a row that open its breaker: one failure in a flaky network is retried
#: on its own; a run of them means ilert is down, and its events wait on one probe.
ILERT_FAILURES_TO_OPEN = 3
#: Pacing ranks: which waiting head gets the next send slot (lower first); see _urgency.
URGENT_ALERT, ALERT, FOLLOW_UP = 0, 1, 2
_RANK_SPAN = 10**13  # above any queued_at in ms for centuries: rank * span + queued_at orders both


def _urgency(event: QueuedEvent, body: dict[str, Any]) -> int:
    """The pacing rank of a head: HIGH alerts, then LOW alerts, then accepts and resolves,
    each oldest first."""
    if body.get("eventType") == "ALERT":
        kind = ALERT if body.get("priority") == "LOW" else URGENT_ALERT
    else:
        kind = FOLLOW_UP
    return kind * _RANK_SPAN + int(event.get("queued_at", 0))


def _pace_window_ms(window: float, poll: float) -> int:
    """The pacing window: ilert's, plus a margin for the jitter between a slot and the send.

    An event goes out a little after its slot (a poll interval, a busy thread, the
    network). Spaced exactly one window apart, two sends can then arrive less than a
    window apart, and ilert answers 429; the margin (2% of the window, at least
    250 ms and two poll intervals) keeps them apart at a small cost in throughput.
    """
    return int(1000 * (window + max(0.25, 2 * poll, 0.02 * window)))


def _this_attempt(event: QueuedEvent) -> int:
    """The number of the delivery attempt being made now (the event counts those already failed)."""
    return int(event.get("attempts", 0)) + 1


class Worker:
    """Delivers queued events. Many may run, in threads, processes and hosts at once."""

    def __init__(
        self,
        bridge: Bridge,
        threads: int | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.bridge = bridge
        self.settings = bridge.settings
        self.store = bridge.store
        self.threads = threads or self.settings.worker_threads
        self.clock = clock or bridge.clock
        self.delivered = 0
        self._count_lock = threading.Lock()
        #: How this worker appears in the heartbeats: which host and process to look at.
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._local = threading.local()  # when the event in hand was taken up, per thread

    # -- loops ---------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Work until ``stop`` is set; survives Redis outages by waiting them out.

        Daemon threads: an embedded worker must never keep its web process from exiting.
        """
        threads = [
            threading.Thread(target=self._loop, args=(stop,), name=f"autotask-ilert-{n}", daemon=True)
            for n in range(self.threads)
        ]
        threads.append(threading.Thread(
            target=self._heartbeat, args=(stop,), name="autotask-ilert-heartbeat", daemon=True
        ))
        if self.settings.reconcile_interval_seconds > 0 and reconcile.sources(self.bridge):
            threads.append(threading.Thread(
                target=self._reconcile, args=(stop,), name="autotask-ilert-reconcile", daemon=True
            ))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def beat(self) -> None:
        """Record that this worker is alive, for readyz and the workers metric."""
        self.store.heartbeat(self.name, HEARTBEAT_KEEP_MS)

    def _heartbeat(self, stop: threading.Event) -> None:
        """Beat until stopped, then withdraw, so a clean shutdown shows at once in readyz."""
        interval = min(HEARTBEAT_SECONDS, self.settings.ready_heartbeat_seconds / 3)
        while True:
            # Redis down: the delivery threads say so in the log; the beat resumes with Redis.
            with suppress(StoreUnavailable):
                self.beat()
            if stop.wait(interval):
                break
        with suppress(StoreUnavailable):  # if it fails, the heartbeat ages out of readyz instead
            self.store.drop_heartbeat(self.name)

    def _reconcile(self, stop: threading.Event) -> None:
        """Offer to sweep now and then; the turn in Redis makes it one sweep per interval overall.

        Asking often (a fifth of the interval, at most every 30 s) keeps the
        sweeps close to the interval when the worker that swept last stops.
        """
        interval = self.settings.reconcile_interval_seconds
        pause = min(30.0, interval / 5)
        while not stop.is_set():
            try:
                reconcile.run_due(self.bridge)
            except StoreUnavailable:
                pass  # the delivery threads say so in the log; try again later
            except Exception:  # a bug must not end reconciliation for good
                logger.exception("reconcile: unexpected error; continuing")
            stop.wait(random.uniform(0.5, 1.0) * pause)

    def _loop(self, stop: threading.Event) -> None:
        token = uuid.uuid4().hex
        while not stop.is_set():
            try:
                worked = self.work_once(token)
            except StoreUnavailable as exc:
                logger.warning("worker: store unavailable (%s); waiting", exc.reason)
                stop.wait(1.0)
                continue
            except Exception:  # a bug must not silently end delivery for good
                logger.exception("worker: unexpected error; continuing")
                stop.wait(1.0)
                continue
            if not worked:
                self._idle(stop)

    def _idle(self, stop: threading.Event) -> None:
        """Wait for work: at once when a callout queues an event, else the poll interval."""
        deadline = time.monotonic() + self.settings.worker_poll_seconds
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                if self.store.wait_for_work(left):
                    return
            except StoreUnavailable:  # the next claim says so, and waits
                return

    def work_once(self, token: str | None = None) -> int:
        """Claim a batch of due ticket queues and settle each head; returns how many."""
        token = token or uuid.uuid4().hex
        claims = self.store.claim(token, self.settings.worker_lease_ms, CLAIM_BATCH)
        self._local.claimed_at = self.store.now_ms()
        for claim in claims:  # taken up now: a batch read of the tickets counts against the deadline
            if claim.head is not None and "taken_at" not in claim.head:
                claim.head["taken_at"] = self._local.claimed_at
        tickets = self._read_new_tickets(claims, token)
        alerts: list[Claim] = []
        others: list[Claim] = []
        for claim in claims:
            (alerts if claim.head is not None and claim.head.get("target") == ILERT else others).append(claim)
        self._settle_batch(alerts, self._local.claimed_at, tickets)
        for claim in others:  # ticket writes one after another: Autotask allows only a few at once
            self._settle(claim, self._local.claimed_at, tickets)
        return len(claims)

    def _settle(self, claim: Claim, claimed_at: int, tickets: dict[tuple[str, int], Any]) -> str:
        self._local.claimed_at = claimed_at
        self._local.tickets = tickets
        try:
            return self.process(claim)
        finally:
            self._local.tickets = {}

    def _settle_batch(
        self, claims: list[Claim], claimed_at: int, tickets: dict[tuple[str, int], Any]
    ) -> None:
        """Send a batch's ilert events: the first alone, the rest side by side once it went through.

        One after another, the last of eight new alerts would page seven ilert
        round trips after the first; after a hanging Autotask's deadline that was
        most of a second added to every page. The first goes alone so that a
        failing ilert costs one attempt, not a batch, before its breaker opens;
        when it is not delivered the rest follow one by one, as before. Each claim
        is a different ticket, so no ticket's order changes, and pacing is shared
        through Redis. Daemon threads, like the worker's own: they never keep a
        web process from exiting.
        """
        if not claims:
            return
        if self._settle(claims[0], claimed_at, tickets) != "delivered":
            for claim in claims[1:]:
                self._settle(claim, claimed_at, tickets)
            return
        errors: list[BaseException] = []

        def settle(claim: Claim) -> None:
            try:
                self._settle(claim, claimed_at, tickets)
            except BaseException as exc:  # handed to the worker loop, which logs it and goes on
                errors.append(exc)

        helpers = [threading.Thread(target=settle, args=(claim,), daemon=True,
                                    name=f"{threading.current_thread().name}-send")
                   for claim in claims[2:]]
        for thread in helpers:
            thread.start()
        if len(claims) > 1:
            settle(claims[1])
        for thread in helpers:
            thread.join()
        if errors:
            raise errors[0]

    def _read_new_tickets(self, claims: list[Claim], token: str) -> dict[tuple[str, int], Any]:
        """The tickets of the new alerts in a claim batch, one Autotask query per source.

        In a burst this spares the tenant's shared hourly API budget (a query per
        batch instead of a read per alert); a lone new ticket is read on its own
        by _ticket_facts, as is anything this cannot read (busy places, a failing
        Autotask, the deadline). Found tickets map to their fields, missing ones to None.
        """
        wanted: dict[str, list[QueuedEvent]] = {}
        for claim in claims:
            head = claim.head
            if (head is not None and head.get("target") == ILERT and "body" not in head
                    and head.get("action") == Action.CREATE.value):
                wanted.setdefault(str(head.get("source", "")), []).append(head)
        out: dict[tuple[str, int], Any] = {}
        for name, heads in wanted.items():
            source = self.settings.sources.get(name)
            client = self.bridge.autotask(source) if source is not None and len(heads) > 1 else None
            if client is None or self.store.breaker_open(client.integration_code_digest):
                continue
            now = self.store.now_ms()
            left_ms = min(self._enrich_by(h) if "taken_at" in h else now + self.settings.enrich_deadline_ms
                          for h in heads) - now
            if left_ms <= 0:
                continue
            connect, read = self.settings.http_timeout
            ids = [int(h["ticket"]) for h in heads]
            try:
                with self._autotask_place(client, "Tickets"):
                    found = client.get_tickets_by_id(
                        ids, timeout=(min(connect, left_ms / 1000), min(read, left_ms / 1000)))
            except _Deferred as busy:
                # Every place taken: the batch waits as one, so that it is due, claimed and read
                # together again, rather than each ticket on its own at a random moment.
                out.update({(name, ticket): busy for ticket in ids})
                continue
            except AutotaskError as exc:
                if exc.retryable:
                    self.store.breaker_failed(client.integration_code_digest, "", token,
                                              self.store.now_ms() + int(PROBE_SECONDS * 1000))
                logger.info("Autotask: reading %d new tickets at once failed (%s)", len(ids), exc)
                continue
            out.update({(name, ticket): found.get(ticket) for ticket in ids})
        return out

    def drain(self, timeout: float = 30.0) -> int:
        """Work in this thread until nothing is due (for the CLI's --burst, tests, demo)."""
        deadline = time.monotonic() + timeout
        total = 0
        while time.monotonic() < deadline:
            worked = self.work_once()
            total += worked
            if not worked:
                break
        return total

    # -- one event -----------------------------------------------------------------------

    def process(self, claim: Claim) -> str:
        self._local.started = time.perf_counter()
        if claim.head is None:
            self.store.hand_back(claim)
            return "empty"
        claimed_at = getattr(self._local, "claimed_at", None)
        if claimed_at is not None and self.store.now_ms() - claimed_at > self.settings.worker_lease_ms // 2:
            # The batch took long (a slow Autotask, a busy machine): this lease may run out
            # while the head is being sent, and another worker send it too. Hand it back unsent.
            self.store.put_off(claim, claim.head, self.store.now_ms())
            return "late"
        event = claim.head.copy()
        if "taken_at" not in event:  # ENRICH_DEADLINE_SECONDS counts from here, across put-offs
            event["taken_at"] = self.store.now_ms()
        source = self.settings.sources.get(event.get("source", ""))
        if source is None:
            return self._dead(claim, event, None, "no such alert source in the configuration")
        deliver = {ILERT: self._deliver_ilert, TICKET: self._deliver_ticket}.get(
            event.get("target", "")
        )
        if deliver is None:
            return self._dead(claim, event, None, f"unknown target {event.get('target')!r}")
        try:
            return deliver(claim, source, event)
        except _Deferred as deferred:
            self.store.put_off(claim, event, self.store.now_ms() + int(deferred.seconds * 1000))
            if deferred.held_by is not None:
                self.store.breaker_settle(deferred.held_by, claim.member)
            self._report(event, "deferred", deferred.level, attempt=None,
                         next_in_s=deferred.seconds, reason=deferred.reason)
            return "deferred"

    def _deliver_ilert(self, claim: Claim, source: SourceConfig, event: QueuedEvent) -> str:
        body = event.get("body")
        key: str | None = None
        if body is None:
            ticket = int(event["ticket"])
            if event["action"] == Action.CREATE.value:
                found = self._ticket_facts(claim, source, event)
                if isinstance(found, str):
                    return self._retry(claim, event, found, None, not_after_ms=self._enrich_by(event))
                alert = self._compose(source, event, found)
                body, key = alert.body, alert.integration_key
                self.store.keep_summary(source.name, ticket, kept_summary(body["summary"]))
            else:  # ilert requires a summary on every event: the alert's own, kept when built
                body = build_event(event, source.priority, TicketFacts(),
                                   self.store.summary(source.name, ticket))
            event["body"] = body
        if key is None:
            key = self._routed_key(source, event)

        # A failing ilert: wait on its breaker, unless this event is the one probe.
        destination = secret_digest(f"{source.ilert_api_url}|{key}")
        urgency = _urgency(event, body) // _RANK_SPAN
        gate, back = self.store.breaker_check(destination, claim.member, claim.token,
                                              self._probe_lease_ms, urgency)
        if gate == "hold":
            self.store.put_off(claim, event, back)
            self.store.breaker_settle(destination, claim.member)
            self._report(event, "deferred", logging.DEBUG, attempt=None,
                         next_in_s=(back - self.store.now_ms()) / 1000, reason="ilert failing: held")
            return "held"
        probing = gate == "probe" or (gate == "closed" and back == 1)  # a success must report back

        if source.ilert_rate_limit and "slot" not in event:
            window_ms = _pace_window_ms(source.ilert_rate_window, self.settings.worker_poll_seconds)
            granted, at = self.store.pace(
                secret_digest(key),
                source.ilert_rate_limit,
                window_ms,
                event["id"],
                _urgency(event, body),
                window_ms - int(1000 * source.ilert_rate_window),
            )
            if not granted:
                if gate == "probe":
                    self.store.breaker_release(destination, claim.token)
                self.store.put_off(claim, event, at)
                self._report(event, "paced", logging.DEBUG, attempt=None,
                             next_in_s=(at - self.store.now_ms()) / 1000)
                return "paced"
            event["slot"] = at

        result = self.bridge.ilert(source).send_event({**body, "integrationKey": key})
        if result.status == 429:
            metrics.count_ilert_rate_limited(source.name)
        if result.verdict in (Verdict.DELIVERED, Verdict.ALREADY_DONE):
            if probing:
                self.store.breaker_succeeded(destination)
            return self._delivered(claim, event, verdict=result.verdict.value, status=result.status)
        if result.verdict is Verdict.RETRY:
            # The destination fails (network, timeout, 5xx, 429): everything for it waits on
            # one probe, the first due after PROBE_SECONDS (or ilert's Retry-After).
            wait = max(PROBE_SECONDS, min(result.retry_after or 0.0, self.settings.retry_cap_seconds))
            next_probe = self.store.now_ms() + int(wait * 1000)
            opened = self.store.breaker_failed(destination, claim.member, claim.token, next_probe,
                                               urgency, opens_after=ILERT_FAILURES_TO_OPEN)
            event.pop("slot", None)
            if not opened:
                return self._retry(claim, event, result.reason, result.retry_after, status=result.status)
            return self._retry(claim, event, result.reason, None, status=result.status, at_ms=next_probe)
        if probing:  # ilert answered, if not to this event's liking: the destination is back
            self.store.breaker_succeeded(destination)
        return self._dead(claim, event, result.status, result.reason)

    @property
    def _probe_lease_ms(self) -> int:
        """How long a probe may take before another event may probe: one request and a second."""
        return int((sum(self.settings.http_timeout) + 1) * 1000)

    def _enrich_by(self, event: QueuedEvent) -> int:
        """When the alert stops waiting on Autotask (ms): ENRICH_DEADLINE_SECONDS after taken up."""
        return int(event.get("taken_at", self.store.now_ms())) + self.settings.enrich_deadline_ms

    def _deliver_ticket(self, claim: Claim, source: SourceConfig, event: QueuedEvent) -> str:
        """Write an alert's new status back to its ticket (bidirectional sync)."""
        if source.sync is None:
            return self._dead(claim, event, None, "bidirectional sync is off for this source")
        updater, client = self.bridge.ticket_updater(source)
        probing = False
        if client is not None:
            self._wait_for_budget(client)
            gate, back = self.store.breaker_check(
                client.integration_code_digest, claim.member, claim.token, self._probe_lease_ms)
            if gate == "hold":  # Autotask is failing: wait for its probe, not a backoff of our own
                raise _Deferred(max(0.0, (back - self.store.now_ms()) / 1000), "autotask failing: held",
                                held_by=client.integration_code_digest)
            probing = gate == "probe"
        ticket = int(event["ticket"])
        status_pending = bool(event.get("status_label")) and STATUS_STEP not in event.get("done", [])
        if status_pending:
            mapping = self.store.mapping(source.name, ticket)
            # A reopen gave the ticket a newer alert: this write is about an older one, only the note.
            superseded = mapping is not None and (
                event.get("alert_key", alert_key(ticket)) != alert_key(ticket, mapping.generation))
            # A host app's TICKET_UPDATER: the last class a callout reported decides (with the
            # Autotask writer, the ticket's current status read below does).
            moved_on = client is None and (mapping is None or not status_change_still_wanted(
                SyncAction(event["action"]), mapping.status_class))
            if superseded or moved_on:
                event["status_label"] = None
                status_pending = False

        def checkpoint(step: str) -> None:
            event["done"] = [*event.get("done", []), step]
            self.store.checkpoint(claim, event)

        try:
            with self._autotask_place(client, "Tickets"):
                if status_pending and client is not None:
                    self._status_still_wanted(client, source, event)
                update = TicketUpdate(
                    source=source.name,
                    ticket_id=int(event["ticket"]),
                    action=str(event["action"]),
                    status_label=event.get("status_label"),
                    note_title=str(event.get("note_title", "")),
                    note_text=str(event.get("note_text", "")),
                    by=str(event.get("by", "")),
                    alert_id=event.get("alert_id"),
                    completed=frozenset(event.get("done", [])),
                    checkpoint=checkpoint,
                )
                updater(update)
        except (AutotaskError, TicketUpdateError) as exc:
            if exc.retryable:
                next_probe = None
                if client is not None:
                    wait = max(PROBE_SECONDS, min(getattr(exc, "retry_after", None) or 0.0,
                                                  self.settings.retry_cap_seconds))
                    next_probe = self.store.now_ms() + int(wait * 1000)
                    self.store.breaker_failed(client.integration_code_digest, claim.member,
                                              claim.token, next_probe)
                return self._retry(claim, event, str(exc), getattr(exc, "retry_after", None),
                                   at_ms=next_probe)
            return self._dead(claim, event, getattr(exc, "status", None), str(exc))
        except _Deferred:
            if probing and client is not None:
                self.store.breaker_release(client.integration_code_digest, claim.token)
            raise
        except Exception as exc:  # a host app's updater: retry, and say where it failed
            logger.exception("ticket updater of source %s failed", source.name)
            return self._retry(claim, event, f"ticket updater raised {type(exc).__name__}", None)
        if probing and client is not None:
            self.store.breaker_succeeded(client.integration_code_digest)
        signals.send(
            signals.ticket_updated,
            self.bridge.sender,
            source=source.name,
            ticket=update.ticket_id,
            action=update.action,
            status_label=update.status_label,
            by=update.by,
        )
        return self._delivered(claim, event)

    def _status_still_wanted(
        self, client: AutotaskClient, source: SourceConfig, event: QueuedEvent
    ) -> None:
        """Read the ticket's status now (one GET) and drop the status change if it moved on.

        The class a callout last reported may be old: a person may have set
        Waiting Customer or Complete since, with no callout (business-hours
        rules, a lost callout). Autotask's answer is the truth; when the change
        is dropped, the note says so, once (the event is stored without the
        status, so a retry does not ask again).
        """
        ticket = int(event["ticket"])
        label = current_status(client, ticket)
        if label is None:
            raise TicketUpdateError(f"ticket {ticket} no longer exists in Autotask", retryable=False)
        if status_change_still_wanted(SyncAction(event["action"]), source.classify(label)):
            return
        event["status_label"] = None
        event["note_text"] = (f"{event.get('note_text', '')} The ticket's status was left at "
                              f"{label}: it had changed in Autotask meanwhile.")

    def _delivered(
        self, claim: Claim, event: QueuedEvent, verdict: str = "delivered", status: int | None = None,
    ) -> str:
        kind = audit.ALREADY_DONE if verdict == Verdict.ALREADY_DONE.value else audit.DELIVERED
        attempts = _this_attempt(event)
        self.store.delivered(claim, audit.Entry.delivery(kind, event, attempts, status))
        with self._count_lock:
            self.delivered += 1
        latency = self.store.now_ms() - int(event.get("queued_at", self.store.now_ms()))
        self._report(event, verdict, logging.INFO, attempt=attempts, http_status=status,
                     latency_ms=latency)
        self._signal(signals.event_delivered, event, attempts=attempts, latency_ms=latency)
        return "delivered"

    def _signal(self, signal: Any, event: QueuedEvent, **extra: Any) -> None:
        """Signals about an event name it the same way: source, ticket, target, action."""
        signals.send(
            signal,
            self.bridge.sender,
            source=event.get("source"),
            ticket=event.get("ticket"),
            target=event.get("target"),
            action=event.get("action"),
            **extra,
        )

    @contextmanager
    def _autotask_place(self, client: AutotaskClient | None, endpoint: str) -> Iterator[None]:
        """Hold one of the few request places Autotask allows per integration code and endpoint.

        Shared by every worker through Redis; when all are taken the event waits a
        moment (without counting as a failed attempt) instead of provoking
        "Thread Threshold Exceeded".
        """
        if client is None:
            yield
            return
        name = f"{client.integration_code_digest}:{endpoint}"
        token = uuid.uuid4().hex
        hold_ms = int(sum(self.settings.http_timeout) * 3 * 1000)
        # A place held for one short request is often free again soon: try again after each pause.
        for pause in (*PLACE_PAUSES, None):
            if self.store.try_acquire(name, self.settings.autotask_concurrency, hold_ms, token):
                break
            if pause is None:
                raise _Deferred(random.uniform(0.05, 0.25))
            time.sleep(pause)
        try:
            yield
        finally:
            self.store.release(name, token)

    def _wait_for_budget(self, client: AutotaskClient) -> None:
        """Defer ticket writes while the tenant's shared hourly API budget runs low.

        One ThresholdInformation reading serves every worker for
        AUTOTASK_THRESHOLD_CHECK_SECONDS, so the check itself costs almost nothing.
        """
        digest = client.integration_code_digest
        usage = self.store.cached_usage(digest, self.settings.autotask_threshold_check_ms)
        if usage is None:
            try:
                usage = client.threshold_usage()
            except AutotaskError as exc:
                logger.warning("Autotask usage unknown (%s); writing anyway", exc)
                return
            self.store.cache_usage(digest, usage, self.settings.autotask_threshold_check_ms)
        if usage >= self.settings.autotask_threshold_share:
            raise _Deferred(
                min(60.0, self.settings.autotask_threshold_check_ms / 1000),
                f"Autotask tenant at {usage:.0%} of its hourly API budget",
                logging.WARNING,
            )

    def _ticket_facts(
        self, claim: Claim, source: SourceConfig, event: QueuedEvent
    ) -> TicketFacts | str:
        """The ticket as Autotask has it, or why not yet (the event is tried again later).

        Paging never waits on Autotask's health: after ENRICH_ATTEMPTS failed reads,
        or ENRICH_DEADLINE_SECONDS after the event was first taken up (waits for a
        request place and a failing Autotask's breaker included), the alert goes
        out with the callout's data.
        """
        client = self.bridge.autotask(source)
        if client is None:
            return TicketFacts()
        read_with_others: dict[tuple[str, int], Any] = getattr(self._local, "tickets", {})
        left_ms = self._enrich_by(event) - self.store.now_ms()
        read = read_with_others.get((source.name, int(event["ticket"])), _UNREAD)
        if isinstance(read, _Deferred) and left_ms > 0:
            raise _Deferred(min(read.seconds, left_ms / 1000), read.reason, read.level)
        if read is not _UNREAD and not isinstance(read, _Deferred):
            try:
                return self._facts(client, event, read)
            except AutotaskError:
                pass  # the picklists: read below, with the usual retries and deadline
        if left_ms <= 0:
            logger.warning("ticket %s: no answer from Autotask within ENRICH_DEADLINE_SECONDS; "
                           "paging with the callout's data", event["ticket"])
            return TicketFacts()
        destination = client.integration_code_digest
        gate, back = self.store.breaker_check(destination, claim.member, claim.token, self._probe_lease_ms)
        if gate == "hold":  # until its probe succeeds, or the deadline
            raise _Deferred(min(back - self.store.now_ms(), left_ms) / 1000, "autotask failing: held",
                            held_by=destination)
        probing = gate == "probe"
        connect, read = self.settings.http_timeout
        timeout = (min(connect, left_ms / 1000), min(read, left_ms / 1000))
        try:
            try:
                with self._autotask_place(client, "Tickets"):
                    ticket = client.get_ticket(int(event["ticket"]), timeout=timeout)
            except _Deferred as busy:  # every place taken: look again soon, never past the deadline
                if probing:
                    self.store.breaker_release(destination, claim.token)
                raise _Deferred(min(busy.seconds, left_ms / 1000), busy.reason, busy.level) from None
            if probing:
                self.store.breaker_succeeded(destination)
            return self._facts(client, event, ticket)
        except AutotaskError as exc:
            if exc.retryable:
                self.store.breaker_failed(destination, claim.member, claim.token,
                                          self.store.now_ms() + int(PROBE_SECONDS * 1000))
            tries = int(event.get("enrich_attempts", 0)) + 1
            event["enrich_attempts"] = tries
            if exc.retryable and tries < self.settings.enrich_attempts:
                return f"autotask: {exc}"  # said once, in the retry line
            logger.warning(
                "ticket %s: Autotask read failed (%s); paging with the callout's data",
                event["ticket"],
                exc,
            )
            return TicketFacts()

    def _compose(self, source: SourceConfig, event: QueuedEvent, facts: TicketFacts) -> Alert:
        """The ALERT's text and key (content.py); the key's digest is kept in the ticket's record,
        so its ACCEPT and RESOLVE follow it even if the rules change meanwhile."""
        client = self.bridge.autotask(source)
        try:
            labels = ticket_labels(client, facts.ticket)
        except AutotaskError:  # the picklists were just read for the ticket: rare, and not worth a retry
            labels = ticket_labels(None, None)
        reader = None
        if client is not None and source.autotask is not None:
            reader = EntityReader(client, self.store, self.settings.entity_cache_ms,
                                  lambda endpoint: self._autotask_place(client, endpoint),
                                  source.autotask.username)
        alert = compose(source, event, facts, labels, reader)
        if source.routes:  # without rules every event goes to the source's key: nothing to keep
            self.store.set_route(source.name, int(event["ticket"]),
                                 alert.route.digest if alert.route is not None else None)
        return alert

    def _routed_key(self, source: SourceConfig, event: QueuedEvent) -> str:
        """The key the ticket's ALERT went to (the source's own if no rule was kept).

        Without rules now, the source's key is the only one configured: no need to ask.
        """
        if not source.routes:
            return source.ilert_integration_key
        digest = self.store.route(source.name, int(event["ticket"]))
        key = key_for_digest(source.ilert_integration_key, source.routes, digest)
        if key is None:
            logger.warning("source %s, ticket %s: the integration key its alert went to is no "
                           "longer configured; sending to the source's own key",
                           source.name, event["ticket"])
            return source.ilert_integration_key
        return key

    def _facts(
        self, client: AutotaskClient, event: QueuedEvent, ticket: dict[str, Any] | None
    ) -> TicketFacts:
        """What the alert says about the ticket read (picklists cached by the client)."""
        if ticket is None:
            logger.warning("ticket %s not found in Autotask; paging with the callout's data",
                           event["ticket"])
            return TicketFacts()
        priorities = client.picklist("Tickets", "priority")
        queues = client.picklist("Tickets", "queueID")
        return TicketFacts(
            ticket=ticket,
            priority_label=priorities.get(str(ticket.get("priority"))),
            queue_label=queues.get(str(ticket.get("queueID"))),
            url=client.ticket_url(int(event["ticket"])),
        )

    def _retry(
        self, claim: Claim, event: QueuedEvent, reason: str, retry_after: float | None,
        status: int | None = None, *, at_ms: int | None = None, not_after_ms: int | None = None,
    ) -> str:
        """A failed attempt: tried again after a backoff, at ``at_ms`` (a failing destination's
        next probe) if given, and never later than ``not_after_ms``."""
        attempts = _this_attempt(event)
        event["attempts"] = attempts
        delay = backoff(
            attempts - 1, base=self.settings.retry_base_seconds, cap=self.settings.retry_cap_seconds
        )
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.settings.retry_cap_seconds))
        if at_ms is not None:
            delay = max(0.0, (at_ms - self.store.now_ms()) / 1000)
        if not_after_ms is not None:
            delay = max(0.0, min(delay, (not_after_ms - self.store.now_ms()) / 1000))
        self._report(event, "retry", logging.INFO, attempt=attempts, http_status=status,
                     next_in_s=delay, reason=reason)
        self.store.retry_at(claim, event, self.store.now_ms() + int(delay * 1000),
                            audit.Entry.delivery(audit.FAILED, event, attempts, status, reason))
        return "retry"

    def _dead(self, claim: Claim, event: QueuedEvent, status: int | None, reason: str) -> str:
        attempts = _this_attempt(event)
        self._report(event, "dead", logging.ERROR, attempt=attempts, http_status=status, reason=reason)
        at = datetime.fromtimestamp(self.clock(), timezone.utc).isoformat()
        self.store.dead_letter(claim, dead_letter(event, status, reason, at),
                               audit.Entry.delivery(audit.DEAD, event, attempts, status, reason))
        self._signal(signals.delivery_failed, event, status=status, reason=reason)
        return "dead"

    def _report(
        self, event: QueuedEvent, outcome: str, level: int, *,
        attempt: int | None, latency_ms: int | None = None, **fields: Any,
    ) -> None:
        """The one log line and the count of one delivery outcome.

        The line carries the request id of the callout or webhook that queued
        the event, so both ends of a ticket change can be found together.
        """
        source = str(event.get("source", ""))
        target = str(event.get("target", ""))
        started = getattr(self._local, "started", None)
        logs.emit(level, "delivery", {
            "request_id": event.get("request_id"),
            "source": source,
            "ticket": event.get("ticket"),
            "target": target,
            "action": event.get("action"),
            "outcome": outcome,
            "attempt": attempt,
            **fields,
            "duration_ms": (time.perf_counter() - started) * 1000 if started is not None else None,
            "latency_ms": latency_ms,
        }, self.settings.log_format)
        metrics.count_delivery(
            source if source in self.settings.sources else "",
            target if target in (ILERT, TICKET) else "unknown",
            outcome,
            latency_ms / 1000 if latency_ms is not None else None,
        )


#: Not among the tickets read with others of its claim batch.
_UNREAD = object()


class _Deferred(Exception):
    """Not a failure: the event waits ``seconds`` (a busy place, a spent budget).

    ``level``: how loudly the wait is logged; a busy place is routine, a spent
    budget is worth an operator's eye.
    """

    def __init__(
        self, seconds: float, reason: str = "autotask busy", level: int = logging.DEBUG,
        held_by: str | None = None,
    ) -> None:
        super().__init__(seconds)
        self.seconds = seconds
        self.reason = reason
        self.level = level
        #: The destination whose breaker holds the event, if that is why it waits.
        self.held_by = held_by
