"""Queue health, read once, and readiness: is the bridge as a whole delivering?

``healthz`` answers for the process and its Redis. ``readyz`` also needs a
worker that wrote a heartbeat lately and a queue whose oldest event is not
stuck, because a bridge that accepts callouts while nothing delivers them is
the failure on-call engineers never hear about.

readyz, the metrics collector and the CLI's ``queue`` command all render the
same :class:`QueueHealth`, so they cannot disagree about what "stuck" means.
readyz and /metrics are asked for it on every request, so the reading is
bounded: it counts the ready set and looks at the heads of only the tickets
due first, however large the backlog.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config import Settings
from .errors import StoreUnavailable
from .store import QueueHead, Store

#: How many of the tickets due first a reading looks at. Those are the ones waiting
#: longest for a worker: a ticket due later is retrying or paced, and reaches the
#: front once the tickets before it are delivered.
SAMPLE = 100


@dataclass(frozen=True)
class QueueHealth:
    """One reading of the shared queue state, at ``now_ms``."""

    now_ms: int
    tickets: int  # tickets with undelivered events (all of them, counted, not read)
    most_overdue_ms: int  # how long the ticket due first has been due
    dead_letters: int
    heads: tuple[QueueHead, ...]  # the tickets due first (at most the sample), oldest head first
    heartbeats: tuple[tuple[str, int], ...]  # worker -> last heartbeat (ms), newest first
    heartbeat_limit_ms: int
    queue_age_limit_ms: int

    @property
    def oldest_age_ms(self) -> int | None:
        """Age of the oldest undelivered event seen, None when nothing waits."""
        queued = [h.queued_at_ms for h in self.heads if h.queued_at_ms is not None]
        return max(0, self.now_ms - min(queued)) if queued else None

    @property
    def last_heartbeat_age_ms(self) -> int | None:
        return max(0, self.now_ms - self.heartbeats[0][1]) if self.heartbeats else None

    @property
    def workers(self) -> int:
        """Workers whose last heartbeat is within the readiness limit."""
        return sum(1 for _, at in self.heartbeats if self.now_ms - at <= self.heartbeat_limit_ms)

    @property
    def worker_ok(self) -> bool:
        age = self.last_heartbeat_age_ms
        return age is not None and age <= self.heartbeat_limit_ms

    @property
    def queue_ok(self) -> bool:
        age = self.oldest_age_ms
        return age is None or age <= self.queue_age_limit_ms


def read_queue_health(store: Store, settings: Settings, sample: int = SAMPLE) -> QueueHealth:
    """Read the queue's health from Redis with a bounded number of replies.

    Raises StoreUnavailable when Redis does not answer.
    """
    now = store.now_ms()
    stats = store.queue_stats()
    heads = store.queue_heads(limit=sample)
    heads.sort(key=lambda h: (h.queued_at_ms is None, h.queued_at_ms or 0))
    return QueueHealth(
        now_ms=now,
        tickets=int(stats["tickets"]),
        most_overdue_ms=int(stats["most_overdue_ms"]),
        dead_letters=int(stats["dead_letters"]),
        heads=tuple(heads),
        heartbeats=tuple(store.heartbeats()),
        heartbeat_limit_ms=int(settings.ready_heartbeat_seconds * 1000),
        queue_age_limit_ms=int(settings.ready_queue_age_seconds * 1000),
    )


def _seconds(ms: int | None) -> float | None:
    return round(ms / 1000, 1) if ms is not None else None


def readiness(store: Store, settings: Settings) -> tuple[bool, dict[str, Any]]:
    """(ready, the JSON body of readyz): every check with what was measured and what is wrong."""
    try:
        health = read_queue_health(store, settings)
    except StoreUnavailable:
        checks: dict[str, dict[str, Any]] = {
            "redis": {"ok": False, "error": "Redis is unreachable"},
            "worker": {"ok": False, "last_heartbeat_age_s": None,
                       "error": "unknown: Redis is unreachable"},
            "queue": {"ok": False, "oldest_age_s": None, "tickets": None,
                      "error": "unknown: Redis is unreachable"},
        }
        return False, {"status": "not ready", "checks": checks}

    beat_age = _seconds(health.last_heartbeat_age_ms)
    worker: dict[str, Any] = {"ok": health.worker_ok, "last_heartbeat_age_s": beat_age}
    limit = settings.ready_heartbeat_seconds
    if beat_age is None:
        worker["error"] = "no worker has written a heartbeat: is a worker running?"
    elif not health.worker_ok:
        worker["error"] = f"no worker heartbeat for {beat_age:g} s (limit {limit:g} s)"

    oldest = _seconds(health.oldest_age_ms)
    queue: dict[str, Any] = {"ok": health.queue_ok, "oldest_age_s": oldest, "tickets": health.tickets}
    if not health.queue_ok:
        queue["error"] = (f"the oldest undelivered event is {oldest:g} s old "
                          f"(limit {settings.ready_queue_age_seconds:g} s)")

    checks = {"redis": {"ok": True}, "worker": worker, "queue": queue}
    ready = all(check["ok"] for check in checks.values())
    return ready, {"status": "ready" if ready else "not ready", "checks": checks}
