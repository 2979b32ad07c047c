"""The ordering holes of the lifecycle over real processes: gunicorn (2 workers), a separate
worker process, redis-server, and the ilert and Autotask simulators.

What arrives when is the point here, so each case is played over sockets, in the
order that once went wrong: ilert's webhook about a reopened ticket's first alert
after the reopen, and a ticket's Complete callout before its older New.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest
import redis
import requests

from tests.deployment import Deployment, wait_until

pytestmark = pytest.mark.realprocess  # slow; deselect with -m "not realprocess"

WEBHOOK_TOKEN = "e2e-webhook-token-0123456789abcdef"


def callout_time(moment: datetime) -> str:
    """Autotask's callout timestamp: 8 fraction digits, an offset with seconds (EDT here)."""
    local = moment.astimezone(timezone(timedelta(hours=-4)))
    return f"{local:%Y-%m-%dT%H:%M:%S}.{local.microsecond:06d}00-04:00:00"


@pytest.fixture
def reopening(deploy: Callable[..., Deployment]) -> Deployment:
    running = deploy(extra_env={
        "AUTOTASK_ILERT_BIDIRECTIONAL": "1",
        "AUTOTASK_ILERT_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "AUTOTASK_ILERT_REALERT_ON_REOPEN": "1",
        "AUTOTASK_ILERT_WORKER_LEASE_SECONDS": "3",
    })
    running.send_ilert_webhooks(WEBHOOK_TOKEN)
    return running


def test_the_first_alerts_late_webhooks_never_close_the_reopened_ticket(reopening: Deployment) -> None:
    d = reopening
    d.start(workers=1)
    ticket = d.autotask.create_ticket("Backup failed", priority_label="High")[0]["id"]
    first, second = f"autotask-{ticket}", f"autotask-{ticket}-2"
    wait_until(lambda: d.ilert.alert_for(first) is not None, 30, what="the first alert")

    d.autotask.set_status(ticket, "Complete")  # resolved in Autotask: the bridge resolves alert 1
    wait_until(lambda: d.ilert.alert_for(first).status == "RESOLVED", 30,  # type: ignore[union-attr]
               what="the first alert resolved")
    assert d.ilert.wait_idle(5)
    [resolved_hook] = [w for w in d.ilert.webhooks() if w.alert_key == first and w.status == "RESOLVED"]
    assert resolved_hook.status_code == 200  # in order, it changed nothing

    d.autotask.set_status(ticket, "New")  # reopened: a second alert, under its own key
    wait_until(lambda: d.ilert.alert_for(second) is not None, 30, what="the second alert")
    assert d.ilert.alert_for(first).status == "RESOLVED"  # type: ignore[union-attr]

    # ilert delivers the first alert's RESOLVED again, late (and an ACCEPTED of it too).
    accepted_body = copy.deepcopy(resolved_hook.body)
    accepted_body.update(status="ACCEPTED", eventType="alert-acknowledged")
    for body in (resolved_hook.body, accepted_body):
        answer = requests.post(d.ilert.webhook_url or "", json=body, timeout=5)
        assert (answer.status_code, answer.json()["action"]) == (200, "ignored")

    # The person who really resolves the second alert is the only one who completes the ticket.
    time.sleep(1.0)  # a write queued by the late webhooks would have gone out by now
    assert d.autotask.status_label(ticket) == "New"
    assert d.autotask.calls_matching("PATCH") == []
    d.ilert.resolve(second, by="jdoe")
    wait_until(lambda: d.autotask.status_label(ticket) == "Complete", 30,
               what="the ticket completed for the second alert")
    assert d.ilert.wait_idle(5)
    d.autotask.wait_idle(5)
    time.sleep(1.0)  # the echoes of that write reach the bridge and change nothing
    assert len([c for c in d.autotask.calls_matching("PATCH") if c.status_code == 200]) == 1
    assert [a.key for a in d.ilert.alerts()] == [first, second]  # the echo paged nobody
    assert [a.status for a in d.ilert.alerts()] == ["RESOLVED", "RESOLVED"]


@pytest.fixture
def deployment(deploy: Callable[..., Deployment]) -> Deployment:
    return deploy(extra_env={"AUTOTASK_ILERT_WORKER_LEASE_SECONDS": "3"})


def test_a_complete_delivered_before_its_older_new_pages_nobody(
    deployment: Deployment, redis_server: str, redis_prefix: str
) -> None:
    """An RMM opened and closed a ticket within a second; Autotask delivered the two swapped."""
    d = deployment
    d.start(workers=1)
    d.autotask.fire_callouts = False
    ticket = d.autotask.create_ticket("Disk full on SRV-01", priority_label="High")[0]
    d.autotask.fire_callouts = True
    opened = datetime.now(timezone.utc) - timedelta(seconds=30)
    closed = opened + timedelta(seconds=1)

    def send(status: str, moment: datetime) -> requests.Response:
        form = {"id": str(ticket["id"]), "number": ticket["ticketNumber"], "status": status,
                "created_datetime": callout_time(opened), "last_activity_datetime": callout_time(moment),
                "domain": "EXAMPLE"}
        return requests.post(d.callout_url, data=form, timeout=5)

    complete = send("Complete", closed)
    assert (complete.status_code, complete.json()["action"]) == (400, "reject")
    for _ in range(3):  # and New, late, several times (each may reach another gunicorn worker)
        new = send("New", opened)
        assert (new.status_code, new.json()) == (200, {"ticket": ticket["id"], "action": "stale",
                                                       "state": "NONE"})

    # A ticket after it pages as usual: the worker is running and has caught up.
    marker = d.autotask.create_ticket("Marker", priority_label="High")[0]["id"]
    wait_until(lambda: d.ilert.alert_for(f"autotask-{marker}") is not None, 30, what="the marker alert")
    time.sleep(0.5)
    assert [e.body["alertKey"] for e in d.ilert.events()] == [f"autotask-{marker}"]
    store = redis.Redis.from_url(redis_server)
    assert store.llen(f"{redis_prefix}q:default:{ticket['id']}") == 0
    assert store.hget(f"{redis_prefix}map:default:{ticket['id']}", "s") is None  # still untracked
