"""The one queue-health reading: what readyz, /metrics and `queue` render, read in bounded replies.

readyz and /metrics are asked on every request (and by every scraper), so a
backlog of thousands of tickets must not make each of them read the whole
ready set. A connection that counts what Redis sends back shows it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis

from flask_autotask_ilert.extension import get_bridge
from flask_autotask_ilert.health import SAMPLE, read_queue_health
from flask_autotask_ilert.store import Store, dumps_event, member

from .conftest import TOKEN, AppFactory, Clock

BACKLOG = 5_000


class CountingConnection(redis.Connection):
    """Counts the values (each list item) Redis answers with, over every connection."""

    values = 0

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        reply = super().read_response(*args, **kwargs)
        CountingConnection.values += _size(reply)
        return reply

    @classmethod
    def reset(cls) -> None:
        cls.values = 0


#: What a bounded reading may fetch: the sampled members with their scores, two numbers per
#: sampled queue, and a few counts.
BOUND = 5 * SAMPLE


def _size(reply: Any) -> int:
    if isinstance(reply, (list, tuple)):
        return sum(_size(item) for item in reply) or 1
    return 1


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> type[CountingConnection]:
    """Every Redis client the app builds from its URL talks through a CountingConnection."""
    from_url = redis.Redis.from_url

    def counting(url: str, **kwargs: Any) -> redis.Redis:
        return from_url(url, connection_class=CountingConnection, **kwargs)

    monkeypatch.setattr(redis.Redis, "from_url", counting)
    CountingConnection.reset()
    return CountingConnection


def fill(store: Store, clock: Clock, tickets: int) -> None:
    """Queue one alert create for each ticket, ticket 1 first and oldest."""
    now = store.now_ms()
    pipe = store.client.pipeline(transaction=False)
    for ticket in range(1, tickets + 1):
        at = now - 600_000 + ticket
        event = {"id": str(ticket), "target": "ilert", "action": "create", "source": "default",
                 "ticket": ticket, "queued_at": at, "attempts": 0}
        pipe.rpush(store.keys.queue("default", ticket), dumps_event(event))
        pipe.zadd(store.keys.ready, {member("default", ticket): at})
    pipe.execute()


def test_the_reading_counts_the_backlog_but_reads_only_the_tickets_due_first(
    make_app: AppFactory, clock: Clock, counted: type[CountingConnection]
) -> None:
    app = make_app(real_redis=True, ready_queue_age_seconds=300)
    bridge = get_bridge(app)
    fill(bridge.store, clock, BACKLOG)

    counted.reset()
    health = read_queue_health(bridge.store, bridge.settings)
    assert health.tickets == BACKLOG
    assert health.oldest_age_ms == 600_000 - 1
    assert health.queue_ok is False
    assert len(health.heads) == SAMPLE
    assert counted.values <= BOUND, counted.values

    counted.reset()
    everything = bridge.store.queue_heads()  # what the reading used to do: far more
    assert len(everything) == BACKLOG and counted.values >= 4 * BACKLOG


def test_readyz_and_metrics_stay_bounded_with_a_backlog(
    make_app: AppFactory, clock: Clock, counted: type[CountingConnection]
) -> None:
    app = make_app(real_redis=True)
    fill(get_bridge(app).store, clock, BACKLOG)
    client = app.test_client()
    for path in ("/autotask-ilert/readyz", "/autotask-ilert/metrics"):
        counted.reset()
        response = client.get(path)
        assert response.status_code in (200, 503)
        assert counted.values <= BOUND, (path, counted.values)
    body = client.get("/autotask-ilert/readyz").get_json()
    assert body["checks"]["queue"]["tickets"] == BACKLOG
    assert body["checks"]["queue"]["oldest_age_s"] == 600.0


def test_readyz_metrics_and_the_queue_command_agree(make_app: AppFactory, clock: Clock) -> None:
    app = make_app()
    for ticket in (1, 2, 3):
        app.test_client().post(f"/autotask-ilert/callout/{TOKEN}", data=f"id={ticket}&status=New",
                               content_type="application/x-www-form-urlencoded")
        clock.advance(20)
    readyz = app.test_client().get("/autotask-ilert/readyz").get_json()
    metrics = app.test_client().get("/autotask-ilert/metrics").get_data(as_text=True).splitlines()
    queue = json.loads(app.test_cli_runner().invoke(args=["autotask-ilert", "queue"]).output)
    assert readyz["checks"]["queue"]["tickets"] == queue["tickets"] == 3
    assert "autotask_ilert_queue_tickets 3.0" in metrics
    assert readyz["checks"]["queue"]["oldest_age_s"] == queue["oldest_event_age_s"] == 60.0
    assert "autotask_ilert_queue_oldest_event_age_seconds 60.0" in metrics
