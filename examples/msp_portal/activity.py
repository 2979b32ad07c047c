"""The portal's "bridge activity" page, fed by the bridge's signals.

Shows how a host app listens to the outbound sync hook: every receiver gets
plain data, so it can be shown, stored or forwarded as it is.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from flask import Flask

from flask_autotask_ilert import signals

_SIGNALS = {
    "alert scheduled": signals.alert_scheduled,
    "callout rejected": signals.callout_rejected,
    "event delivered": signals.event_delivered,
    "delivery failed": signals.delivery_failed,
    "ticket updated": signals.ticket_updated,
}


class ActivityLog:
    """The last few things the bridge did in this process (a real portal would use its DB)."""

    def __init__(self, size: int = 100) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=size)
        self._lock = threading.Lock()

    def connect(self, app: Flask) -> None:
        for name, signal in _SIGNALS.items():
            signal.connect(self._receiver(name), sender=app, weak=False)

    def _receiver(self, name: str) -> Any:
        def receive(sender: Flask, **data: Any) -> None:
            with self._lock:
                self._entries.appendleft({"at": time.strftime("%H:%M:%S"), "what": name, **data})

        return receive

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._entries)
