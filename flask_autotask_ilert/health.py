"""Readiness: is the bridge as a whole delivering, not just this web process alive?

``healthz`` answers for the process and its Redis. ``readyz`` also needs a
worker that wrote a heartbeat lately and a queue whose oldest event is not
stuck, because a bridge that accepts callouts while nothing delivers them is
the failure on-call engineers never hear about.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import StoreUnavailable

if TYPE_CHECKING:
    from .bridge import Bridge


def readiness(bridge: Bridge) -> tuple[bool, dict[str, Any]]:
    """(ready, the JSON body of readyz): every check with what was measured and what is wrong."""
    settings, store = bridge.settings, bridge.store
    try:
        store.ping()
        now = store.now_ms()
        beats = store.heartbeats()
        heads = store.queue_heads()
    except StoreUnavailable:
        checks: dict[str, dict[str, Any]] = {
            "redis": {"ok": False, "error": "Redis is unreachable"},
            "worker": {"ok": False, "last_heartbeat_age_s": None,
                       "error": "unknown: Redis is unreachable"},
            "queue": {"ok": False, "oldest_age_s": None, "tickets": None,
                      "error": "unknown: Redis is unreachable"},
        }
        return False, {"status": "not ready", "checks": checks}

    worker: dict[str, Any] = {"ok": False, "last_heartbeat_age_s": None}
    limit = settings.ready_heartbeat_seconds
    if beats:
        age = round(max(0, now - beats[0][1]) / 1000, 1)
        worker["last_heartbeat_age_s"] = age
        worker["ok"] = age <= limit
        if not worker["ok"]:
            worker["error"] = f"no worker heartbeat for {age:g} s (limit {limit:g} s)"
    else:
        worker["error"] = "no worker has written a heartbeat: is a worker running?"

    queued = [h.queued_at_ms for h in heads if h.queued_at_ms is not None]
    oldest = round(max(0, now - min(queued)) / 1000, 1) if queued else None
    queue: dict[str, Any] = {"ok": True, "oldest_age_s": oldest, "tickets": len(heads)}
    if oldest is not None and oldest > settings.ready_queue_age_seconds:
        queue["ok"] = False
        queue["error"] = (f"the oldest undelivered event is {oldest:g} s old "
                          f"(limit {settings.ready_queue_age_seconds:g} s)")

    checks = {"redis": {"ok": True}, "worker": worker, "queue": queue}
    ready = all(check["ok"] for check in checks.values())
    return ready, {"status": "ready" if ready else "not ready", "checks": checks}
