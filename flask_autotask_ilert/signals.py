"""The outbound sync hook: blinker signals a host app can subscribe to.

Every signal is sent with the Flask app as sender (connect with
``sender=app`` to hear one app only) and plain data as keyword arguments:
str, int, None and dicts of those, never objects of this package, so a
receiver can log, store or forward them as they are. Receivers run in the
thread that sends (a web request or a worker thread): keep them quick, and
an exception in one is logged, never allowed to break the bridge.

Example::

    from flask_autotask_ilert import signals

    @signals.ticket_updated.connect_via(app)
    def mirror(sender, source, ticket, action, status_label, by, **extra):
        db.record(ticket, action, by)
"""

from __future__ import annotations

import logging
from typing import Any

from blinker import NamedSignal, Namespace

logger = logging.getLogger("flask_autotask_ilert")
_signals = Namespace()

#: A callout scheduled an ilert event. kwargs: source, ticket, action ("create",
#: "accept", "resolve"), state (the new mapping state), status (the ticket's status label).
alert_scheduled: NamedSignal = _signals.signal("autotask-ilert.alert-scheduled")

#: A callout was answered 400 because its status may not open an alert.
#: kwargs: source, ticket, status.
callout_rejected: NamedSignal = _signals.signal("autotask-ilert.callout-rejected")

#: An event reached its target. kwargs: source, ticket, target ("ilert" or "ticket"),
#: action, attempts, latency_ms (from the callout or webhook that queued it).
event_delivered: NamedSignal = _signals.signal("autotask-ilert.event-delivered")

#: An event was given up on and dead-lettered. kwargs: source, ticket, target, action,
#: status (HTTP status or None), reason (secret-free text).
delivery_failed: NamedSignal = _signals.signal("autotask-ilert.delivery-failed")

#: A ticket was updated after an alert changed in ilert (by Autotask's API or by the
#: configured ticket updater). kwargs: source, ticket, action ("accept-ticket",
#: "resolve-ticket"), status_label (None when the status was left alone), by.
ticket_updated: NamedSignal = _signals.signal("autotask-ilert.ticket-updated")


def send(signal: NamedSignal, sender: Any, **data: Any) -> None:
    """Send without letting a receiver's failure reach the bridge."""
    if not signal.receivers:
        return
    for receiver in signal.receivers_for(sender):
        try:
            receiver(sender, **data)
        except Exception:
            logger.exception("a receiver of %s failed", signal.name)
