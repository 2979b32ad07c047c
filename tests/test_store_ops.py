"""The store calls behind metrics, readyz and the CLI, on fakeredis, a real redis-server and Valkey alike."""

from __future__ import annotations

import json

import fakeredis
import pytest
import redis

from flask_autotask_ilert.audit import REPLAYED, Entry
from flask_autotask_ilert.lifecycle import State, StatusClass, column
from flask_autotask_ilert.store import Store, dumps_event

from .conftest import Clock

RETENTION_MS = 30 * 86_400_000


@pytest.fixture
def store(backend: str, request: pytest.FixtureRequest, clock: Clock) -> Store:
    if backend == "fakeredis":
        server = fakeredis.FakeServer()
        return Store(lambda: fakeredis.FakeRedis(server=server), "ops:", clock)
    url, prefix = request.getfixturevalue("server_url")
    return Store(lambda: redis.Redis.from_url(url), prefix, clock)


def new_ticket(store: Store, ticket: int, source: str = "default") -> None:
    col = column(StatusClass.NEW)
    events = {cell.action: dumps_event({"id": f"{ticket}", "target": "ilert", "action": "create",
                                        "source": source, "ticket": ticket,
                                        "queued_at": store.now_ms()})
              for cell in col.values() if cell.schedules_event}
    store.apply_callout(source, ticket, StatusClass.NEW, col, events, None, RETENTION_MS)


def kill_head(store: Store, source: str, ticket: int) -> str:
    """Dead-letter the ticket's head, as the worker does; returns the record as stored."""
    [claim] = [c for c in store.claim("tok", 60_000, 100) if c.ticket == ticket]
    store.dead_letter(claim, {"event": claim.head, "status": 400, "reason": "refused"})
    [raw] = [r for r in store.dead_records() if json.loads(r)["event"]["ticket"] == ticket]
    return raw


def test_queue_heads_reads_every_ticket_in_small_batches(store: Store, clock: Clock) -> None:
    for ticket in range(1, 6):
        new_ticket(store, ticket)
        clock.advance(10)
    store.client.rpush(store.keys.queue("default", 3), "not json")  # a second event, never the head
    heads = {h.ticket: h for h in store.queue_heads(batch=2)}
    assert sorted(heads) == [1, 2, 3, 4, 5]
    assert heads[1].queued_at_ms == 1_700_000_000_000
    assert heads[5].queued_at_ms == 1_700_000_040_000
    assert heads[3].length == 2
    assert store.oldest_queued_ms() == 1_700_000_000_000


def test_a_head_without_a_queue_time_is_not_the_oldest(store: Store) -> None:
    store.client.rpush(store.keys.queue("default", 9), "garbage")
    store.client.zadd(store.keys.ready, {"default:9": 0})
    [head] = store.queue_heads()
    assert head.queued_at_ms is None and head.length == 1
    assert store.oldest_queued_ms() is None


def test_replay_moves_a_dead_letter_back_once(store: Store) -> None:
    new_ticket(store, 7)
    raw = kill_head(store, "default", 7)
    assert store.queue_stats()["tickets"] == 0
    event = {**json.loads(raw)["event"], "attempts": 0}
    assert store.replay_dead(raw, event, (State.PENDING,), audit_entry=Entry.delivery(REPLAYED, event)) == 1
    assert store.dead_records() == []
    assert store.queued("default", 7) == [event]
    assert store.queue_stats()["tickets"] == 1
    assert store.audit("default", 7)[0][1] == "ilert create replayed from the dead letters"
    assert store.replay_dead(raw, event) == 0  # already gone: never queued twice
    assert store.queued("default", 7) == [event]


def test_replay_keeps_dead_what_the_ticket_moved_past(store: Store) -> None:
    new_ticket(store, 8)
    raw = kill_head(store, "default", 8)
    event = json.loads(raw)["event"]
    assert store.replay_dead(raw, event, (State.ACCEPTED,)) == -1
    assert store.dead_records() == [raw]
    assert store.queued("default", 8) == []


def test_forget_removes_record_queue_and_schedule(store: Store) -> None:
    new_ticket(store, 11)
    store.claim("tok", 60_000, 10)
    assert store.schedule("default", 11)[1] is True  # leased
    assert store.forget("default", 11) is True
    assert store.mapping("default", 11) is None and store.queued("default", 11) == []
    assert store.schedule("default", 11) == (None, False)
    assert store.forget("default", 11) is False


def test_heartbeats_newest_first_and_pruned(store: Store, clock: Clock) -> None:
    store.heartbeat("host:1:a", keep_ms=60_000)
    clock.advance(30)
    store.heartbeat("host:2:b", keep_ms=60_000)
    assert store.heartbeats() == [("host:2:b", 1_700_000_030_000), ("host:1:a", 1_700_000_000_000)]
    clock.advance(40)
    store.heartbeat("host:2:b", keep_ms=60_000)
    assert [name for name, _ in store.heartbeats()] == ["host:2:b"]
    store.drop_heartbeat("host:2:b")
    assert store.heartbeats() == []


def test_usage_reading_is_kept_whatever_its_age(store: Store, clock: Clock) -> None:
    assert store.usage_reading("abc") is None
    store.cache_usage("abc", 0.25, max_age_ms=1000)
    clock.advance(1.5)
    assert store.cached_usage("abc", 1000) is None  # too old to act on
    assert store.usage_reading("abc") == (0.25, 1_700_000_000_000)  # still worth showing
