"""The store's Lua scripts, on fakeredis, a real redis-server and Valkey alike."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import fakeredis
import pytest
import redis

from flask_autotask_ilert.audit import DELIVERED, FAILED, Entry
from flask_autotask_ilert.callouts import handle_callout
from flask_autotask_ilert.config import load_settings
from flask_autotask_ilert.lifecycle import Action, State, StatusClass, column
from flask_autotask_ilert.schemas import Callout
from flask_autotask_ilert.store import Claim, Store, dumps_event

from .conftest import INTEGRATION_KEY, TOKEN, Clock

RETENTION_MS = 30 * 86_400_000


@pytest.fixture
def make_store(backend: str, request: pytest.FixtureRequest, clock: Clock) -> Callable[[], Store]:
    if backend == "fakeredis":
        server = fakeredis.FakeServer()

        def fake() -> Store:
            return Store(lambda: fakeredis.FakeRedis(server=server), "t:", clock)

        return fake
    url, prefix = request.getfixturevalue("server_url")

    def real() -> Store:
        return Store(lambda: redis.Redis.from_url(url), prefix, clock)

    return real


@pytest.fixture
def store(make_store: Callable[[], Store]) -> Store:
    return make_store()


def apply(store: Store, ticket: int, status_class: StatusClass, last_us: int | None = None,
          source: str = "default", realert: bool = False) -> tuple[str, State, State]:
    col = column(status_class, realert_on_reopen=realert)
    events = {
        cell.action: dumps_event({"id": f"{ticket}-{cell.action.value}-{last_us}",
                                  "action": cell.action.value, "ticket": ticket})
        for cell in col.values() if cell.schedules_event
    }
    out = store.apply_callout(source, ticket, status_class, col, events, last_us, RETENTION_MS)
    return out.action, out.previous, out.state


def test_first_callout_creates_and_queues_one_event(store: Store) -> None:
    assert apply(store, 1, StatusClass.NEW) == ("create", State.NONE, State.PENDING)
    assert [e["action"] for e in store.queued("default", 1)] == ["create"]
    assert store.queue_stats()["tickets"] == 1
    mapping = store.mapping("default", 1)
    assert mapping is not None and mapping.state is State.PENDING and mapping.ttl_ms is None


def test_repeats_change_nothing_and_queue_nothing(store: Store) -> None:
    apply(store, 1, StatusClass.NEW)
    assert apply(store, 1, StatusClass.NEW) == ("nothing", State.PENDING, State.PENDING)
    assert apply(store, 1, StatusClass.OTHER) == ("nothing", State.PENDING, State.PENDING)
    assert len(store.queued("default", 1)) == 1


def test_a_rejected_callout_records_nothing(store: Store) -> None:
    assert apply(store, 2, StatusClass.CLOSED) == ("reject", State.NONE, State.NONE)
    assert apply(store, 2, StatusClass.WAITING) == ("reject", State.NONE, State.NONE)
    assert store.mapping("default", 2) is None
    assert store.queued("default", 2) == []
    assert store.queue_stats()["tickets"] == 0


def test_events_queue_in_order_of_transitions(store: Store) -> None:
    apply(store, 3, StatusClass.NEW)
    apply(store, 3, StatusClass.IN_PROGRESS)
    apply(store, 3, StatusClass.CLOSED)
    assert [e["action"] for e in store.queued("default", 3)] == ["create", "accept", "resolve"]


def test_resolved_mapping_expires_after_retention_and_keeps_its_ttl(store: Store) -> None:
    apply(store, 4, StatusClass.NEW)
    apply(store, 4, StatusClass.CLOSED)
    first = store.mapping("default", 4)
    assert first is not None and first.state is State.RESOLVED
    assert first.ttl_ms is not None and RETENTION_MS - 5_000 < first.ttl_ms <= RETENTION_MS
    apply(store, 4, StatusClass.NEW)  # a late callout: no-op, and it must not renew the TTL forever
    again = store.mapping("default", 4)
    assert again is not None and again.state is State.RESOLVED
    assert again.ttl_ms is not None and again.ttl_ms <= first.ttl_ms


def test_realert_on_reopen_queues_a_new_alert(store: Store) -> None:
    apply(store, 5, StatusClass.NEW)
    apply(store, 5, StatusClass.CLOSED)
    assert apply(store, 5, StatusClass.NEW, realert=True) == ("create", State.RESOLVED, State.PENDING)
    mapping = store.mapping("default", 5)
    assert mapping is not None and mapping.ttl_ms is None  # open again: no longer expires
    assert [e["action"] for e in store.queued("default", 5)] == ["create", "resolve", "create"]


def test_an_older_callout_is_stale(store: Store) -> None:
    apply(store, 6, StatusClass.NEW, last_us=2_000)
    assert apply(store, 6, StatusClass.CLOSED, last_us=1_000) == ("stale", State.PENDING, State.PENDING)
    assert apply(store, 6, StatusClass.CLOSED, last_us=2_000)[0] == "resolve"  # equal is not stale
    assert apply(store, 6, StatusClass.CLOSED, last_us=None)[0] == "nothing"  # no timestamp: the table


def test_sources_never_share_a_mapping(store: Store) -> None:
    apply(store, 7, StatusClass.NEW, source="a")
    assert apply(store, 7, StatusClass.NEW, source="b")[0] == "create"
    apply(store, 7, StatusClass.CLOSED, source="a")
    mb = store.mapping("b", 7)
    assert mb is not None and mb.state is State.PENDING


def test_claim_leases_until_finish_or_expiry(store: Store, clock: Clock) -> None:
    apply(store, 8, StatusClass.NEW)
    [claim] = store.claim("w1", lease_ms=10_000, limit=5)
    assert claim.head is not None and claim.head["action"] == "create"
    assert claim.source == "default" and claim.ticket == 8
    assert store.claim("w2", lease_ms=10_000, limit=5) == []  # leased
    clock.advance(11)
    [taken] = store.claim("w2", lease_ms=10_000, limit=5)  # the first worker died
    assert taken.head == claim.head
    assert store.delivered(claim) is False  # w1 lost its lease but its delivered head is popped once
    assert store.queued("default", 8) == []
    assert store.delivered(taken) is True  # w2's head is already gone: nothing more popped
    assert store.queue_stats()["tickets"] == 0


def test_finish_pops_only_the_head_it_sent(store: Store) -> None:
    apply(store, 9, StatusClass.NEW)
    apply(store, 9, StatusClass.IN_PROGRESS)
    [claim] = store.claim("w", 10_000, 5)
    assert store.delivered(claim) is True
    assert [e["action"] for e in store.queued("default", 9)] == ["accept"]
    assert store.delivered(claim) is False  # a repeated finish pops nothing more
    assert [e["action"] for e in store.queued("default", 9)] == ["accept"]
    [second] = store.claim("w", 10_000, 5)
    assert second.head is not None and second.head["action"] == "accept"


def test_reschedule_rewrites_the_head_and_defers(store: Store, clock: Clock) -> None:
    apply(store, 10, StatusClass.NEW)
    [claim] = store.claim("w", 10_000, 5)
    assert claim.head is not None
    store.put_off(claim, {**claim.head, "attempts": 1}, store.now_ms() + 5_000)
    assert store.claim("w", 10_000, 5) == []
    clock.advance(5)
    [again] = store.claim("w", 10_000, 5)
    assert again.head is not None and again.head["attempts"] == 1 and again.head["id"] == claim.head["id"]


def test_a_checkpoint_rewrites_the_head_and_keeps_the_lease(store: Store, clock: Clock) -> None:
    apply(store, 12, StatusClass.NEW)
    [claim] = store.claim("w", 10_000, 5)
    assert claim.head is not None
    assert store.checkpoint(claim, {**claim.head, "done": ["status"]}) is True
    assert store.queued("default", 12)[0].get("done") == ["status"]
    assert store.schedule("default", 12)[1] is True  # still leased: the worker goes on
    assert store.claim("w2", 10_000, 5) == []
    assert store.delivered(claim) is True
    assert store.queued("default", 12) == [] and store.schedule("default", 12) == (None, False)


def test_a_retry_counts_in_the_trail_and_waits(store: Store, clock: Clock) -> None:
    apply(store, 13, StatusClass.NEW)
    [claim] = store.claim("w", 10_000, 5)
    assert claim.head is not None
    failed = {**claim.head, "attempts": 1}
    assert store.retry_at(claim, failed, store.now_ms() + 3_000, Entry.delivery(FAILED, failed, 1, 503))
    assert store.schedule("default", 13) == (store.now_ms() + 3_000, False)
    trail = [text for _, text in store.audit("default", 13)]
    assert trail[0] == "ilert create failed (try 1): http 503, retried"


def test_handing_back_an_emptied_queue_lets_the_ticket_go(store: Store) -> None:
    apply(store, 14, StatusClass.NEW)
    [claim] = store.claim("w", 10_000, 5)
    store.client.delete(store.keys.queue("default", 14))  # emptied meanwhile (forgotten, say)
    assert store.hand_back(Claim(claim.member, claim.token, None)) is True
    assert store.schedule("default", 14) == (None, False)


def test_dead_letter_is_recorded_and_the_queue_moves_on(store: Store) -> None:
    apply(store, 11, StatusClass.NEW)
    apply(store, 11, StatusClass.CLOSED)
    [claim] = store.claim("w", 10_000, 5)
    store.dead_letter(claim, {"event": claim.head, "reason": "http 404"})
    assert [d["reason"] for d in store.dead_letters()] == ["http 404"]
    [nxt] = store.claim("w", 10_000, 5)
    assert nxt.head is not None and nxt.head["action"] == "resolve"


def _send_when_due(store: Store, clock: Clock, heads: list[tuple[str, int]], limit: int,
                   window_ms: int, late_ms: int = 0) -> dict[str, int]:
    """Every head asks for a slot, and asks again when told to: when each was granted (ms)."""
    granted: dict[str, int] = {}
    due = {head: store.now_ms() for head, _rank in heads}
    ranks = dict(heads)
    while due:
        now = min(due.values())
        clock.now = max(clock.now, now / 1000)
        for head in [h for h, at in due.items() if at <= store.now_ms()]:
            ok, at = store.pace("k", limit, window_ms, head, ranks[head], late_ms)
            if ok:
                granted[head] = at
                del due[head]
            else:
                assert at > store.now_ms()
                due[head] = at
    return granted


def test_pacing_spreads_a_burst_over_windows(store: Store, clock: Clock) -> None:
    now = store.now_ms()
    granted = _send_when_due(store, clock, [(f"r{i}", i) for i in range(7)], 3, 1_000)
    assert sorted(granted.values()) == [now, now, now, now + 1_000, now + 1_000, now + 1_000, now + 2_000]
    assert [h for h, _ in sorted(granted.items(), key=lambda kv: kv[1])][:3] == ["r0", "r1", "r2"]
    clock.advance(10)
    later = store.now_ms()
    assert store.pace("k", 3, 1_000, "late", 0, 0) == (True, later)
    assert store.pace("other", 3, 1_000, "x", 0, 0) == (True, later)  # per key


def test_no_window_ever_holds_more_than_the_limit(store: Store, clock: Clock) -> None:
    slots = []
    for i in range(40):
        head = f"r{i}"
        while True:
            ok, at = store.pace("k", 5, 1_000, head, i, 0)
            if ok:
                slots.append(at)
                break
            clock.now = max(clock.now + 0.037, at / 1000)
        clock.advance(0.037)
    for start in slots:
        assert sum(1 for s in slots if start <= s < start + 1_000) <= 5


def test_the_next_free_slot_goes_to_the_most_urgent_waiting_head(store: Store, clock: Clock) -> None:
    assert store.pace("k", 2, 1_000, "low-1", 50, 0)[0]
    assert store.pace("k", 2, 1_000, "low-2", 51, 0)[0]
    low_ok, low_back = store.pace("k", 2, 1_000, "low-3", 52, 0)  # the window is full: waits
    urgent_ok, urgent_back = store.pace("k", 2, 1_000, "urgent", 1, 0)  # asks later, ranks first
    assert not low_ok and not urgent_ok
    assert urgent_back <= low_back
    clock.now = low_back / 1000 + 0.5  # both due again; the low one happens to ask first
    assert store.pace("k", 1, 1_000, "low-3", 52, 0)[0] is False
    assert store.pace("k", 1, 1_000, "urgent", 1, 0)[0] is True
    assert store.pace("k", 1, 1_000, "low-3", 52, 0)[0] is False  # the slot went to the urgent one


def test_a_waiter_that_never_comes_back_stops_holding_others_up(store: Store, clock: Clock) -> None:
    assert store.pace("k", 1, 1_000, "first", 5, 0)[0]
    ok, back = store.pace("k", 1, 1_000, "gone", 0, 0, grace_ms=2_000)  # most urgent, then vanishes
    assert not ok
    clock.now = back / 1000
    assert store.pace("k", 1, 1_000, "later", 9, 0, grace_ms=2_000)[0] is False  # "gone" still ranks first
    clock.advance(2.5)
    assert store.pace("k", 1, 1_000, "later", 9, 0, grace_ms=2_000)[0] is True


def test_breaker_holds_events_behind_one_probe_at_a_time(store: Store, clock: Clock) -> None:
    assert store.breaker_check("dest", "s:1", "a", 10_000) == ("closed", 0)
    next_probe = store.now_ms() + 5_000
    store.breaker_failed("dest", "s:1", "a", next_probe)
    assert store.breaker_check("dest", "s:2", "b", 10_000) == ("hold", next_probe)
    clock.advance(5)
    assert store.breaker_check("dest", "s:2", "b", 10_000) == ("probe", 0)
    gate, back = store.breaker_check("dest", "s:3", "c", 10_000)  # a probe is in flight
    assert gate == "hold" and back == store.now_ms() + 10_000
    store.breaker_release("dest", "b")  # b was not sent after all: c may probe
    assert store.breaker_check("dest", "s:3", "c", 10_000) == ("probe", 0)
    clock.advance(11)  # c's probe never answered: its lease ran out, another may probe
    assert store.breaker_check("dest", "s:4", "d", 10_000) == ("probe", 0)
    assert store.breaker_check("other", "s:4", "d", 10_000) == ("closed", 0)  # per destination


def test_breaker_success_makes_every_held_queue_due_at_once(store: Store, clock: Clock) -> None:
    for ticket in (1, 2, 3):
        apply(store, ticket, StatusClass.NEW)
    claims = store.claim("w", 10_000, 5)
    assert len(claims) == 3
    far = store.now_ms() + 300_000
    store.breaker_failed("dest", claims[0].member, "w", far)
    for claim in claims:
        gate, _back = store.breaker_check("dest", claim.member, "w", 10_000)
        assert gate == "hold"
        assert claim.head is not None
        store.put_off(claim, claim.head, far)
    assert store.claim("w", 10_000, 5) == []
    clock.advance(1)
    assert store.breaker_succeeded("dest") == 3
    assert len(store.claim("w", 10_000, 5)) == 3
    assert store.breaker_check("dest", "s:9", "w", 10_000) == ("closed", 0)


def test_fifty_concurrent_identical_callouts_create_one_alert(redis_server: str, redis_prefix: str,
                                                             clock: Clock) -> None:
    settings = load_settings({"AUTOTASK_ILERT_CALLOUT_TOKEN": TOKEN,
                              "AUTOTASK_ILERT_ILERT_INTEGRATION_KEY": INTEGRATION_KEY}, {})
    source = settings.sources["default"]
    stores = [Store(lambda: redis.Redis.from_url(redis_server), redis_prefix, clock) for _ in range(50)]
    barrier = threading.Barrier(50)
    answers: list[Any] = []

    def post(store: Store) -> None:
        barrier.wait()
        answers.append(handle_callout(settings, store, source, Callout(ticket_id=4242, status="New")))

    threads = [threading.Thread(target=post, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a.action for a in answers).count(Action.CREATE.value) == 1
    assert sum(a.http_status == 202 for a in answers) == 1
    assert sum(a.http_status == 200 for a in answers) == 49
    queued = stores[0].queued("default", 4242)
    assert [json.loads(dumps_event(e))["action"] for e in queued] == ["create"]


# -- audit trail -------------------------------------------------------------------------------------


def test_audit_trail_records_callouts_newest_first(store: Store) -> None:
    apply(store, 20, StatusClass.NEW)
    apply(store, 20, StatusClass.NEW)
    apply(store, 20, StatusClass.CLOSED)
    texts = [text for _, text in store.audit("default", 20)]
    assert [t.split(": ", 1)[1] for t in texts] == [
        "resolve PENDING>RESOLVED",
        "nothing PENDING>PENDING",
        "create NONE>PENDING",
    ]
    assert all(stamp == int(store.now_ms() // 1000) for stamp, _ in store.audit("default", 20))


def test_audit_trail_is_capped(make_store: Callable[[], Store], clock: Clock) -> None:
    store = make_store()
    store.audit_entries = 3
    for _ in range(6):
        apply(store, 21, StatusClass.OTHER)
    assert len(store.audit("default", 21)) == 3


def test_a_rejected_ticket_is_audited_but_not_tracked(store: Store) -> None:
    apply(store, 22, StatusClass.WAITING)
    apply(store, 22, StatusClass.CLOSED)
    assert store.mapping("default", 22) is None
    assert [t for _, t in store.audit("default", 22)] == [
        "callout CLOSED: reject NONE>NONE", "callout WAITING: reject NONE>NONE"]
    assert apply(store, 22, StatusClass.NEW)[0] == "create"  # the audit does not count as an alert
    mapping = store.mapping("default", 22)
    assert mapping is not None and mapping.ttl_ms is None  # tracked now: the short expiry is gone


def test_no_audit_when_turned_off(make_store: Callable[[], Store]) -> None:
    store = make_store()
    store.audit_entries = 0
    apply(store, 23, StatusClass.NEW)
    apply(store, 24, StatusClass.CLOSED)
    assert store.audit("default", 23) == [] and store.audit("default", 24) == []
    assert store.mapping("default", 23) is not None


def test_deliveries_are_audited_on_the_ticket(store: Store) -> None:
    apply(store, 25, StatusClass.NEW)
    [claim] = store.claim("w", 10_000, 5)
    store.delivered(claim, Entry.delivery(DELIVERED, claim.head or {}, 1, 202))
    assert [text for _, text in store.audit("default", 25)] == [
        "ilert create delivered (try 1, http 202)",
        "callout NEW: create NONE>PENDING",
    ]


def test_a_full_lifecycle_keeps_the_ticket_in_the_compact_encoding(store: Store) -> None:
    """Eight records of eight bytes: Redis keeps the hash as a listpack (a third of the memory)."""
    for status_class in (StatusClass.NEW, StatusClass.NEW, StatusClass.IN_PROGRESS, StatusClass.CLOSED):
        apply(store, 27, status_class)
        for claim in store.claim("w", 10_000, 5):
            store.delivered(claim, Entry.delivery(DELIVERED, claim.head or {}, 2, 202))
    for _ in range(5):
        apply(store, 27, StatusClass.CLOSED)
    trail = store.audit("default", 27)
    assert len(trail) == 8
    assert [text for _, text in trail][:2] == ["callout CLOSED: nothing RESOLVED>RESOLVED"] * 2
    key = store.keys.mapping("default", 27)
    assert len(store.client.hget(key, "a") or b"") == 64
    if not isinstance(store.client, fakeredis.FakeRedis):  # fakeredis has no OBJECT ENCODING
        assert store.client.object("encoding", key) in (b"listpack", b"ziplist")


def test_finish_never_recreates_a_forgotten_ticket(store: Store) -> None:
    apply(store, 26, StatusClass.NEW)
    [claim] = store.claim("w", 10_000, 5)
    store.client.delete(store.keys.mapping("default", 26))
    store.delivered(claim, Entry.delivery(DELIVERED, claim.head or {}, 1, 202))
    assert store.client.exists(store.keys.mapping("default", 26)) == 0


def test_every_callout_action_is_named_in_the_trail(store: Store) -> None:
    """callout.lua spells the action letters itself; each must read back as its action."""
    apply(store, 28, StatusClass.NEW, last_us=2_000)
    apply(store, 28, StatusClass.IN_PROGRESS, last_us=3_000)
    apply(store, 28, StatusClass.NEW, last_us=1_000)  # older than the last one: stale
    apply(store, 28, StatusClass.CLOSED, last_us=4_000)
    assert [text for _, text in store.audit("default", 28)] == [
        "callout CLOSED: resolve ACCEPTED>RESOLVED",
        "callout NEW: stale ACCEPTED>ACCEPTED",
        "callout IN_PROGRESS: accept PENDING>ACCEPTED",
        "callout NEW: create NONE>PENDING",
    ]


def test_a_queue_held_while_the_probe_succeeded_is_due_at_once(store: Store, clock: Clock) -> None:
    apply(store, 1, StatusClass.NEW)
    apply(store, 2, StatusClass.NEW)
    probe, held = sorted(store.claim("w", 10_000, 5), key=lambda c: c.member)
    store.breaker_failed("dest", "", "w", store.now_ms())
    assert store.breaker_check("dest", probe.member, "w", 10_000)[0] == "probe"
    gate, back = store.breaker_check("dest", held.member, "w", 10_000)
    assert gate == "hold"
    assert store.breaker_succeeded("dest") == 0  # the held queue is still leased: not woken here
    assert held.head is not None
    store.put_off(held, held.head, back)  # its worker puts it off, too late to hear of the success
    assert store.breaker_settle("dest", held.member) is True
    assert [c.member for c in store.claim("w2", 10_000, 5)] == [held.member]


def test_held_queues_wake_most_urgent_first(store: Store, clock: Clock) -> None:
    for ticket in (1, 2, 3):
        apply(store, ticket, StatusClass.NEW)
    claims = {c.ticket: c for c in store.claim("w", 10_000, 5)}
    far = store.now_ms() + 300_000
    store.breaker_failed("dest", "", "w", far)
    for ticket, urgency in ((1, 2), (2, 0), (3, 1)):
        claim = claims[ticket]
        assert store.breaker_check("dest", claim.member, "w", 10_000, urgency)[0] == "hold"
        assert claim.head is not None
        store.put_off(claim, claim.head, far)
    assert store.breaker_succeeded("dest") == 3
    assert [c.ticket for c in store.claim("w", 10_000, 1)] == [2]  # the most urgent is claimed first
    assert [c.ticket for c in store.claim("w", 10_000, 2)] == [3, 1]
