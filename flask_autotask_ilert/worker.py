"""Delivery: lease due ticket queues, send each head once, settle it.

At-least-once by construction: an event leaves its queue only after ilert
answered for it (or it was dead-lettered), and a worker that dies mid-send
simply lets its lease run out so another worker sends the same head again.
ilert's ``alertKey`` makes the repeat harmless. Retries are not loops here:
a failed event is written back to the head of its queue with the time it may
be tried again, so a restart, another thread or another host can pick it up.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .alerts import TicketFacts, build_event
from .autotask import AutotaskError
from .errors import StoreUnavailable
from .http import backoff
from .ilert import Verdict
from .lifecycle import Action
from .store import Claim

if TYPE_CHECKING:
    from .config import SourceConfig
    from .extension import Bridge

logger = logging.getLogger("flask_autotask_ilert")

CLAIM_BATCH = 8


def _key_digest(integration_key: str) -> str:
    """Pacing is per integration key; Redis sees a digest, never the key."""
    return hashlib.sha256(integration_key.encode()).hexdigest()[:16]


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

    # -- loops ---------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Work until ``stop`` is set; survives Redis outages by waiting them out."""
        with ThreadPoolExecutor(self.threads, thread_name_prefix="autotask-ilert") as pool:
            for _ in range(self.threads):
                pool.submit(self._loop, stop)

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
                stop.wait(self.settings.worker_poll_seconds)

    def work_once(self, token: str | None = None) -> int:
        """Claim a batch of due ticket queues and settle each head; returns how many."""
        token = token or uuid.uuid4().hex
        claims = self.store.claim(token, self.settings.worker_lease_ms, CLAIM_BATCH)
        for claim in claims:
            self.process(claim)
        return len(claims)

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
        event = claim.head
        if event is None:
            self.store.finish(claim)
            return "empty"
        source = self.settings.sources.get(event.get("source", ""))
        if source is None:
            return self._dead(claim, event, None, "no such alert source in the configuration")
        if event.get("target") != "ilert":
            return self._dead(claim, event, None, f"unknown target {event.get('target')!r}")
        return self._deliver_ilert(claim, source, dict(event))

    def _deliver_ilert(self, claim: Claim, source: SourceConfig, event: dict[str, Any]) -> str:
        body = event.get("body")
        if body is None:
            facts = TicketFacts()
            if event["action"] == Action.CREATE.value:
                found = self._ticket_facts(source, event)
                if found is None:
                    return self._retry(claim, event, "autotask", None)
                facts = found
            body = build_event(event, source.priority, facts)
            event["body"] = body

        if source.ilert_rate_limit and "slot" not in event:
            slot = self.store.reserve_send_slot(
                _key_digest(source.ilert_integration_key),
                source.ilert_rate_limit,
                int(source.ilert_rate_window * 1000),
                event["id"],
            )
            event["slot"] = slot
            if slot > self.store.now_ms():
                self.store.finish(claim, next_at_ms=slot, replace_head=event)
                return "paced"

        result = self.bridge.ilert(source).send_event(
            {**body, "integrationKey": source.ilert_integration_key}
        )
        if result.verdict in (Verdict.DELIVERED, Verdict.ALREADY_DONE):
            self.store.finish(claim)
            with self._count_lock:
                self.delivered += 1
            logger.info(
                "delivered source=%s ticket=%s event=%s outcome=%s attempts=%s latency_ms=%s",
                source.name,
                event["ticket"],
                body["eventType"],
                result.verdict.name.lower(),
                event.get("attempts", 0) + 1,
                self.store.now_ms() - int(event.get("queued_at", self.store.now_ms())),
            )
            return "delivered"
        if result.verdict is Verdict.RETRY:
            event.pop("slot", None)
            return self._retry(claim, event, result.reason, result.retry_after)
        return self._dead(claim, event, result.status, result.reason)

    def _ticket_facts(self, source: SourceConfig, event: dict[str, Any]) -> TicketFacts | None:
        """The ticket as Autotask has it, or None to try again later.

        After ENRICH_ATTEMPTS failed reads the alert goes out with the callout's
        data: paging never waits on Autotask's health.
        """
        client = self.bridge.autotask(source)
        if client is None:
            return TicketFacts()
        try:
            ticket = client.get_ticket(int(event["ticket"]))
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
        except AutotaskError as exc:
            tries = int(event.get("enrich_attempts", 0)) + 1
            event["enrich_attempts"] = tries
            if exc.retryable and tries < self.settings.enrich_attempts:
                logger.info("ticket %s: Autotask read failed (%s); retrying", event["ticket"], exc)
                return None
            logger.warning(
                "ticket %s: Autotask read failed (%s); paging with the callout's data",
                event["ticket"],
                exc,
            )
            return TicketFacts()

    def _retry(
        self, claim: Claim, event: dict[str, Any], reason: str, retry_after: float | None
    ) -> str:
        attempts = int(event.get("attempts", 0)) + 1
        event["attempts"] = attempts
        delay = backoff(
            attempts - 1, base=self.settings.retry_base_seconds, cap=self.settings.retry_cap_seconds
        )
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.settings.retry_cap_seconds))
        logger.info(
            "retry source=%s ticket=%s action=%s attempt=%s in %.1fs: %s",
            event.get("source"),
            event.get("ticket"),
            event.get("action"),
            attempts,
            delay,
            reason,
        )
        self.store.finish(claim, next_at_ms=self.store.now_ms() + int(delay * 1000),
                          replace_head=event)
        return "retry"

    def _dead(self, claim: Claim, event: dict[str, Any], status: int | None, reason: str) -> str:
        logger.error(
            "dead letter source=%s ticket=%s action=%s status=%s: %s",
            event.get("source"),
            event.get("ticket"),
            event.get("action"),
            status,
            reason,
        )
        record = {
            "event": event,
            "status": status,
            "reason": reason,
            "at": datetime.fromtimestamp(self.clock(), timezone.utc).isoformat(),
        }
        self.store.finish(claim, dead_record=record)
        return "dead"
