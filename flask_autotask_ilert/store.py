"""Redis: the ticket -> alert map, its atomic transitions, and the delivery queue.

Every change that must be atomic is one Lua script from ``lua/``; this module
only names keys, encodes arguments and decodes answers. Any Redis failure
surfaces as :class:`~flask_autotask_ilert.errors.StoreUnavailable`, which the
views turn into a 503 with ``Retry-After`` (a callout that was not recorded is
never answered 2xx).

Layout (every key under the configured prefix):

``map:<source>:<ticket>``   hash: ``s`` "STATE|CLASS|LAST_ACTIVITY_US[|GENERATION]", ``a``
                            audit trail (8-byte records, audit.py), ``t`` the activity time
                            of a refused first callout, ``m`` the alert's short summary,
                            ``rk`` digest of the integration key its ALERT went to
                            (routing.py); RESOLVED ones expire, and so do refused ones
``entity:<digest>:<Entity>:<id>`` an Autotask company, contact or resource a template
                            names, and when it was read (JSON; item null for none);
                            kept for ENTITY_CACHE_SECONDS
``q:<source>:<ticket>``     the ticket's undelivered events, oldest first
``ready``                   sorted set "<source>:<ticket>" -> when it may be worked
``leases``                  hash "<source>:<ticket>" -> token of the worker on it
``dead``                    list of dead-letter records (JSON)
``pace:<digest>``           send-slot log of one ilert integration key (granted slots)
``wait:<digest>``           heads waiting for a send slot, ranked by urgency (pace.lua)
``back:<digest>``           when each waiting head is due back (pace.lua drops the no-shows)
``brk:<destination>``       a failing destination's breaker: next probe, probe lease (breaker.lua)
``held:<destination>``      ticket queues waiting on that breaker, woken by its first success
``busy:<digest>:<endpoint>`` holders of Autotask request places (semaphore)
``usage:<digest>``          last reading of the Autotask tenant's hourly API usage
``heartbeats``              sorted set "<host>:<pid>:<id>" -> last heartbeat of a worker (ms)
``wake``                    list of wake-up tokens: one per queued callout event, popped by
                            idle delivery threads (at most 64 kept; expires when unused)
``stats``                   counters of things ignored on purpose
``hook:<source>:<guid>:<seq>`` an Autotask webhook delivery already taken (expires after a day)
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any

import redis
from redis.exceptions import RedisClusterException

from .alerts import alert_key
from .audit import COMPACT_ENTRIES, Entry, callout_prefix, callout_words, decode
from .errors import StoreUnavailable
from .events import DeadLetter, QueuedEvent
from .lifecycle import Action, State, StatusClass, Transition

_SCRIPTS = (
    "callout", "claim", "finish", "pace", "transition", "semaphore", "heads", "replay", "summary",
    "route", "breaker",
)
#: Scripts that write a ticket's audit trail get the shared helper prepended.
_WITH_AUDIT = frozenset({"callout", "finish", "transition", "replay"})


def _script_text(name: str) -> str:
    folder = resources.files(__package__).joinpath("lua")
    text = folder.joinpath(f"{name}.lua").read_text(encoding="utf-8")
    if name in _WITH_AUDIT:
        text = folder.joinpath("_audit.lua").read_text(encoding="utf-8") + "\n" + text
    return text


@dataclass(frozen=True)
class Keys:
    """The one place a Redis key is spelled."""

    prefix: str

    def mapping(self, source: str, ticket: int) -> str:
        return f"{self.prefix}map:{source}:{ticket}"

    def queue(self, source: str, ticket: int) -> str:
        return f"{self.prefix}q:{source}:{ticket}"

    def queue_of(self, member: str) -> str:
        return f"{self.prefix}q:{member}"

    @property
    def ready(self) -> str:
        return f"{self.prefix}ready"

    @property
    def leases(self) -> str:
        return f"{self.prefix}leases"

    @property
    def dead(self) -> str:
        return f"{self.prefix}dead"

    def pace(self, digest: str) -> str:
        return f"{self.prefix}pace:{digest}"

    def waiting(self, digest: str) -> str:
        return f"{self.prefix}wait:{digest}"

    def due_back(self, digest: str) -> str:
        return f"{self.prefix}back:{digest}"

    def breaker(self, destination: str) -> str:
        return f"{self.prefix}brk:{destination}"

    def held(self, destination: str) -> str:
        return f"{self.prefix}held:{destination}"

    def busy(self, name: str) -> str:
        return f"{self.prefix}busy:{name}"

    def usage(self, digest: str) -> str:
        return f"{self.prefix}usage:{digest}"

    def entity(self, tenant: str, entity: str, item_id: int) -> str:
        return f"{self.prefix}entity:{tenant}:{entity}:{item_id}"

    @property
    def heartbeats(self) -> str:
        return f"{self.prefix}heartbeats"

    @property
    def wake(self) -> str:
        return f"{self.prefix}wake"

    @property
    def stats(self) -> str:
        return f"{self.prefix}stats"

    def delivery(self, source: str, guid: str, sequence: int) -> str:
        return f"{self.prefix}hook:{source}:{guid}:{sequence}"


def member(source: str, ticket: int) -> str:
    """How a ticket's queue is named in the ready set and the lease hash."""
    return f"{source}:{ticket}"


def split_member(value: str) -> tuple[str, int]:
    source, _, ticket = value.rpartition(":")
    return source, int(ticket)


@dataclass(frozen=True)
class CalloutOutcome:
    action: str  # an Action value, or "stale"
    previous: State
    state: State


@dataclass(frozen=True)
class TicketMapping:
    state: State
    status_class: StatusClass
    last_activity_us: int | None
    ttl_ms: int | None = None
    #: Which alert of the ticket is the current one: 1 for the first, one more for each
    #: alert a reopen created (callout.lua counts them); its key is ``alerts.alert_key``'s.
    generation: int = 1

    def encode(self) -> str:
        """The stored form (callout.lua writes the same): "STATE|CLASS|LAST_ACTIVITY_US[|GEN]".

        The generation is written only from the second alert on, so a record of a
        ticket that was never reopened reads the same as before generations existed.
        """
        last = "" if self.last_activity_us is None else str(self.last_activity_us)
        gen = f"|{self.generation}" if self.generation > 1 else ""
        return f"{self.state.value}|{self.status_class.value}|{last}{gen}"

    @classmethod
    def decode(cls, raw: str, ttl_ms: int | None = None) -> TicketMapping:
        state, status_class, last, *gen = raw.split("|", 3)
        return cls(State(state), StatusClass(status_class), int(last) if last else None, ttl_ms,
                   int(gen[0]) if gen else 1)


@dataclass(frozen=True)
class Claim:
    """A leased ticket queue and the event at its head (None if the queue emptied)."""

    member: str
    token: str
    head: QueuedEvent | None

    @property
    def source(self) -> str:
        return split_member(self.member)[0]

    @property
    def ticket(self) -> int:
        return split_member(self.member)[1]


_STATE_ORDER = (State.NONE, State.PENDING, State.ACCEPTED, State.RESOLVED)


class Store:
    """All Redis access of one app, safe to share across threads and forks.

    The client is created lazily and again after a fork, because a gunicorn
    master imports the app and forks workers that must not share its sockets.
    """

    def __init__(
        self,
        client_factory: Callable[[], redis.Redis],
        prefix: str,
        clock: Callable[[], float],
        audit_entries: int = COMPACT_ENTRIES,
        reject_audit_ms: int = 86_400_000,
    ) -> None:
        self.keys = Keys(prefix)
        self.audit_entries = audit_entries
        self.reject_audit_ms = reject_audit_ms
        self._factory = client_factory
        self._clock = clock
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._client: redis.Redis | None = None
        self._scripts: dict[str, Any] = {}

    # -- plumbing -----------------------------------------------------------

    @property
    def client(self) -> redis.Redis:
        pid = os.getpid()
        if self._client is None or self._pid != pid:
            with self._lock:
                if self._client is None or self._pid != pid:
                    client = self._factory()
                    self._scripts = {
                        name: client.register_script(_script_text(name)) for name in _SCRIPTS
                    }
                    self._client, self._pid = client, pid
        return self._client

    def _script(self, name: str) -> Any:
        self.client  # noqa: B018 - make sure the scripts belong to this process
        return self._scripts[name]

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except (redis.RedisError, RedisClusterException) as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {str(exc)[:200]}") from exc

    def ping(self) -> None:
        with self._guard():
            self.client.ping()

    # -- callouts -------------------------------------------------------------

    def apply_callout(
        self,
        source: str,
        ticket: int,
        status_class: StatusClass,
        column: Mapping[State, Transition],
        events: Mapping[Action, str],
        last_activity_us: int | None,
        retention_ms: int,
        clock_skew_ms: int | None = None,
        label: str = "",
    ) -> CalloutOutcome:
        """Evaluate the column against the stored state and queue its event: one round trip.

        ``clock_skew_ms``: an activity time (given, or stored by an earlier callout)
        more than this far ahead of now orders nothing, as if absent (None: no limit).
        Each queued event gets the ``alert_key`` of the alert it is about; callout.lua
        knows the ticket's generation, which Python cannot know before the call.
        """
        now_ms = self.now_ms()
        limit = "" if clock_skew_ms is None else (now_ms + clock_skew_ms) * 1000
        args: list[str | int | bytes] = [
            status_class.value,
            "" if last_activity_us is None else last_activity_us,
            now_ms,
            retention_ms,
            member(source, ticket),
        ]
        for state in _STATE_ORDER:
            cell = column[state]
            args += [cell.action.value, cell.new_state.value, events.get(cell.action, "")]
        args += [
            callout_prefix(now_ms // 1000, status_class) if self.audit_entries else "",
            self.audit_entries,
            self.reject_audit_ms,
            limit,
            alert_key(ticket),
            callout_words(label) if self.audit_entries else "",
        ]
        keys = [self.keys.mapping(source, ticket), self.keys.queue(source, ticket), self.keys.ready,
                self.keys.wake]
        with self._guard():
            action, previous, new = self._script("callout")(keys=keys, args=args)
        return CalloutOutcome(_text(action), State(_text(previous)), State(_text(new)))

    def _audit_record(self, entry: Entry | None) -> bytes | str:
        """The stamped record for a script ("" when there is none or the trail is off)."""
        return entry.pack(self.now_ms() // 1000) if entry is not None and self.audit_entries else ""

    def _audit_words(self, entry: Entry | None) -> str:
        """The record's line of words for a script ("" when there are none)."""
        return entry.line() if entry is not None and self.audit_entries else ""

    def mapping(self, source: str, ticket: int) -> TicketMapping | None:
        key = self.keys.mapping(source, ticket)
        with self._guard():
            pipe = self.client.pipeline(transaction=False)
            pipe.hget(key, "s")
            pipe.pttl(key)
            raw, ttl = pipe.execute()
        if raw is None:
            return None
        return TicketMapping.decode(_text(raw), ttl if ttl is not None and ttl >= 0 else None)

    def compare_and_set(
        self,
        source: str,
        ticket: int,
        expected: TicketMapping | None,
        new: TicketMapping,
        event: str | None,
        retention_ms: int | None,
        audit_entry: Entry | None = None,
    ) -> bool:
        """Store ``new`` (and queue ``event``) only if the mapping is still ``expected``."""
        keys = [self.keys.mapping(source, ticket), self.keys.queue(source, ticket), self.keys.ready]
        args: list[str | int | bytes] = [
            expected.encode() if expected else "",
            new.encode(),
            event or "",
            member(source, ticket),
            self.now_ms(),
            "" if retention_ms is None else retention_ms,
            self._audit_record(audit_entry),
            self.audit_entries,
            self._audit_words(audit_entry),
        ]
        with self._guard():
            return bool(self._script("transition")(keys=keys, args=args))

    def keep_summary(self, source: str, ticket: int, summary: str) -> bool:
        """Keep the summary of the ticket's newest alert for its ACCEPT and RESOLVE (False: no record)."""
        with self._guard():
            return bool(self._script("summary")(
                keys=[self.keys.mapping(source, ticket)], args=[summary]
            ))

    def summary(self, source: str, ticket: int) -> str | None:
        """The summary kept by :meth:`keep_summary`, if any."""
        with self._guard():
            raw = self.client.hget(self.keys.mapping(source, ticket), "m")
        return None if raw is None else _text(raw)

    def audit(self, source: str, ticket: int) -> list[tuple[int, str]]:
        """The ticket's audit trail, newest first: (unix seconds, what happened)."""
        with self._guard():
            raw, words = self.client.hmget(self.keys.mapping(source, ticket), ["a", "w"])
        if raw is None:
            return []
        return decode(raw if isinstance(raw, bytes) else raw.encode("latin-1"),
                      None if words is None else _text(words))

    def count(self, counter: str, amount: int = 1) -> None:
        with self._guard():
            self.client.hincrby(self.keys.stats, counter, amount)

    def counters(self) -> dict[str, int]:
        with self._guard():
            raw = self.client.hgetall(self.keys.stats)
        return {_text(k): int(v) for k, v in raw.items()}

    def queued(self, source: str, ticket: int) -> list[QueuedEvent]:
        with self._guard():
            raw = self.client.lrange(self.keys.queue(source, ticket), 0, -1)
        return [json.loads(item) for item in raw]

    # -- delivery -------------------------------------------------------------

    def wait_for_work(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds (at most 1) for a wake-up token; True if one came.

        Every callout that queues an event pushes a token (callout.lua), so an idle
        delivery thread starts on it at once instead of at its next poll.
        """
        with self._guard():
            return self.client.blpop([self.keys.wake], timeout=max(0.01, min(timeout, 1.0))) is not None

    def claim(self, token: str, lease_ms: int, limit: int) -> list[Claim]:
        """Lease up to ``limit`` due ticket queues and read their heads."""
        with self._guard():
            members = self._script("claim")(
                keys=[self.keys.ready, self.keys.leases],
                args=[self.now_ms(), lease_ms, token, limit],
            )
            if not members:
                return []
            names = [_text(m) for m in members]
            pipe = self.client.pipeline(transaction=False)
            for name in names:
                pipe.lindex(self.keys.queue_of(name), 0)
            heads = pipe.execute()
        return [
            Claim(name, token, json.loads(head) if head is not None else None)
            for name, head in zip(names, heads, strict=True)
        ]

    # One method per outcome of a claimed head; each is one call of finish.lua, and each
    # returns False if the lease was lost meanwhile (the queue is then someone else's).

    def delivered(self, claim: Claim, audit_entry: Entry | None = None) -> bool:
        """The head is done with: pop it, and hand the ticket back (or let it go if empty)."""
        return self._finish(claim, "pop", audit_entry=audit_entry)

    def hand_back(self, claim: Claim) -> bool:
        """A claim whose queue emptied meanwhile (no head): release it, nothing to pop."""
        return self._finish(claim, "pop")

    def retry_at(
        self, claim: Claim, event: QueuedEvent, at_ms: int, audit_entry: Entry | None = None
    ) -> bool:
        """A failed attempt: the head becomes ``event`` (its attempt counted), worked again at ``at_ms``."""
        return self._finish(claim, "replace", _dumps(event), at_ms, audit_entry)

    def put_off(self, claim: Claim, event: QueuedEvent, at_ms: int) -> bool:
        """Not an attempt (pacing, a busy place, a spent budget): the head waits until ``at_ms``."""
        return self._finish(claim, "replace", _dumps(event), at_ms)

    def checkpoint(self, claim: Claim, event: QueuedEvent) -> bool:
        """A step of the head is done: store ``event`` as the head, keep the lease and go on."""
        return self._finish(claim, "checkpoint", _dumps(event))

    def dead_letter(
        self, claim: Claim, record: DeadLetter, audit_entry: Entry | None = None
    ) -> bool:
        """Given up on: pop the head and append its record to the dead letters."""
        return self._finish(claim, "dead", _dumps(record), audit_entry=audit_entry)

    def _finish(
        self, claim: Claim, outcome: str, payload: str = "", next_at_ms: int | None = None,
        audit_entry: Entry | None = None,
    ) -> bool:
        event_id = claim.head["id"] if claim.head else ""
        with self._guard():
            _popped, owned, _left = self._script("finish")(
                keys=[
                    self.keys.queue_of(claim.member),
                    self.keys.ready,
                    self.keys.leases,
                    self.keys.dead,
                    self.keys.mapping(claim.source, claim.ticket),
                ],
                args=[
                    claim.member,
                    claim.token,
                    event_id,
                    self.now_ms() if next_at_ms is None else next_at_ms,
                    outcome,
                    payload,
                    self._audit_record(audit_entry),
                    self.audit_entries,
                    self._audit_words(audit_entry),
                ],
            )
        return bool(owned)

    def pace(
        self, digest: str, limit: int, window_ms: int, head: str, rank: int, late_ms: int,
        grace_ms: int = 10_000,
    ) -> tuple[bool, int]:
        """May ``head`` be sent to that integration key now? (True, the granted slot) or
        (False, when to ask again).

        The next free slot goes to the most urgent waiting head (lowest ``rank``),
        whoever asks first; see lua/pace.lua.
        """
        with self._guard():
            granted, at = self._script("pace")(
                keys=[self.keys.pace(digest), self.keys.waiting(digest), self.keys.due_back(digest)],
                args=[self.now_ms(), limit, window_ms, head, rank, late_ms, grace_ms],
            )
        return bool(granted), int(at)

    def _breaker(
        self, destination: str, op: str, member: str, token: str, arg: int, urgency: int = 0,
        opens_after: int = 1,
    ) -> tuple[str, int]:
        with self._guard():
            outcome, value = self._script("breaker")(
                keys=[self.keys.breaker(destination), self.keys.held(destination), self.keys.ready,
                      self.keys.leases],
                args=[op, self.now_ms(), member, token, arg, urgency, opens_after],
            )
        return _text(outcome), int(value)

    def breaker_check(
        self, destination: str, member: str, token: str, probe_lease_ms: int, urgency: int = 0
    ) -> tuple[str, int]:
        """("closed", 0): send; ("closed", 1): send, and on success reset the failures counted;
        ("probe", 0): send as the one probe of a failing destination;
        ("hold", at): the destination is failing, wait until ``at`` (ms) or its first success.
        ``urgency`` (0 most urgent, up to 2): held queues are woken most urgent first."""
        return self._breaker(destination, "check", member, token, probe_lease_ms, urgency)

    def breaker_failed(
        self, destination: str, member: str, token: str, next_probe_ms: int, urgency: int = 0,
        opens_after: int = 1,
    ) -> bool:
        """The destination failed; after ``opens_after`` failures in a row the breaker is open
        (True): no probe before ``next_probe_ms``, and ``member`` waits on it."""
        return self._breaker(destination, "fail", member, token, next_probe_ms, urgency,
                             opens_after)[1] == 1

    def breaker_settle(self, destination: str, member: str) -> bool:
        """After ``member`` was put off as held: if the breaker closed meanwhile, make it due now."""
        return bool(self._breaker(destination, "settle", member, "", 0)[1])

    def breaker_release(self, destination: str, token: str) -> None:
        """A probe that was not sent after all (paced): another event may probe."""
        self._breaker(destination, "release", "", token, 0)

    def breaker_open(self, destination: str) -> bool:
        """Whether that destination is failing (its events wait on one probe)."""
        with self._guard():
            return bool(self.client.exists(self.keys.breaker(destination)))

    def breaker_succeeded(self, destination: str) -> int:
        """The destination answers: close its breaker, make every held queue due now; how many."""
        return self._breaker(destination, "ok", "", "", 0)[1]

    def try_acquire(self, name: str, limit: int, hold_ms: int, token: str) -> bool:
        """Take one of ``limit`` shared places for at most ``hold_ms``; False if none is free."""
        with self._guard():
            return bool(self._script("semaphore")(
                keys=[self.keys.busy(name)], args=[self.now_ms(), limit, hold_ms, token]
            ))

    def release(self, name: str, token: str) -> None:
        with self._guard():
            self.client.zrem(self.keys.busy(name), token)

    def cached_usage(self, digest: str, max_age_ms: int) -> float | None:
        """The last reading of a tenant's API usage, if it is younger than ``max_age_ms``."""
        with self._guard():
            raw = self.client.get(self.keys.usage(digest))
        if raw is None:
            return None
        usage, read_at = _text(raw).split("|")
        return float(usage) if self.now_ms() - int(read_at) < max_age_ms else None

    def cache_usage(self, digest: str, usage: float, max_age_ms: int) -> None:
        with self._guard():
            self.client.set(
                self.keys.usage(digest), f"{usage!r}|{self.now_ms()}", px=max(1, 2 * max_age_ms)
            )

    # -- routing and the entity cache (templates) ---------------------------------

    #: The field of a ticket's record that names the key its ALERT went to (a digest).
    ROUTE_FIELD = "rk"

    def set_route(self, source: str, ticket: int, digest: str | None) -> bool:
        """Remember the key (digest) a ticket's ALERT went to, or forget it (None).

        Only on an existing record: a ticket forgotten meanwhile gets no new,
        never-expiring record. False when there was none.
        """
        with self._guard():
            return bool(self._script("route")(
                keys=[self.keys.mapping(source, ticket)], args=[self.ROUTE_FIELD, digest or ""]
            ))

    def route(self, source: str, ticket: int) -> str | None:
        """The digest of the key a ticket's ALERT went to, if one was kept."""
        with self._guard():
            raw = self.client.hget(self.keys.mapping(source, ticket), self.ROUTE_FIELD)
        return _text(raw) if raw is not None else None

    def cached_entity(self, tenant: str, entity: str, item_id: int, max_age_ms: int) -> tuple[bool, Any]:
        """(found, the entity or None) from the cache; (False, None) when not cached or too old.

        The age is checked against the store's clock, as the usage reading's is.
        """
        with self._guard():
            raw = self.client.get(self.keys.entity(tenant, entity, item_id))
        if raw is None:
            return False, None
        cached = json.loads(raw)
        if not isinstance(cached, dict) or self.now_ms() - int(cached.get("at", 0)) >= max_age_ms:
            return False, None
        return True, cached.get("item")

    def cache_entity(self, tenant: str, entity: str, item_id: int, value: Any, max_age_ms: int) -> None:
        with self._guard():
            self.client.set(self.keys.entity(tenant, entity, item_id),
                            _dumps_any({"at": self.now_ms(), "item": value}), px=max(1, max_age_ms))

    # -- inspection -------------------------------------------------------------

    def queue_stats(self) -> dict[str, Any]:
        """Tickets with undelivered work, and how overdue the most overdue one is."""
        with self._guard():
            pipe = self.client.pipeline(transaction=False)
            pipe.zcard(self.keys.ready)
            pipe.zrange(self.keys.ready, 0, 0, withscores=True)
            pipe.llen(self.keys.dead)
            tickets, first, dead = pipe.execute()
        lag = max(0, self.now_ms() - int(first[0][1])) if first else 0
        return {"tickets": tickets, "most_overdue_ms": lag, "dead_letters": dead}

    def dead_letters(self, start: int = 0, stop: int = -1) -> list[DeadLetter]:
        with self._guard():
            raw = self.client.lrange(self.keys.dead, start, stop)
        return [json.loads(item) for item in raw]

    # -- watching and operating (metrics, readyz, the CLI) ---------------------------

    def queue_heads(self, batch: int = 200, limit: int | None = None) -> list[QueueHead]:
        """Every ticket with undelivered work (or the ``limit`` due first), with when its
        oldest event was queued.

        Batched so that a backlog of thousands of tickets costs many short
        script calls rather than one that holds every other client up; a
        ``limit`` keeps a per-request reading (readyz, metrics) bounded.
        """
        if limit is not None and limit < 1:
            return []
        with self._guard():
            stop = -1 if limit is None else limit - 1
            due: Any = self.client.zrange(self.keys.ready, 0, stop, withscores=True)
            heads: list[QueueHead] = []
            for start in range(0, len(due), batch):
                part = [(_text(m), int(score)) for m, score in due[start:start + batch]]
                numbers = self._script("heads")(keys=[self.keys.queue_of(m) for m, _ in part])
                for index, (name, due_ms) in enumerate(part):
                    at, length = int(numbers[2 * index]), int(numbers[2 * index + 1])
                    heads.append(QueueHead(name, at if at >= 0 else None, length, due_ms))
        return heads

    def oldest_queued_ms(self) -> int | None:
        """When the oldest undelivered event was queued (ms), None if nothing waits."""
        times = [h.queued_at_ms for h in self.queue_heads() if h.queued_at_ms is not None]
        return min(times) if times else None

    def schedule(self, source: str, ticket: int) -> tuple[int | None, bool]:
        """When the ticket's queue may next be worked (ms, None if not queued), and if leased."""
        name = member(source, ticket)
        with self._guard():
            pipe = self.client.pipeline(transaction=False)
            pipe.zscore(self.keys.ready, name)
            pipe.hexists(self.keys.leases, name)
            due, leased = pipe.execute()
        return (int(due) if due is not None else None), bool(leased)

    def heartbeat(self, worker: str, keep_ms: int) -> None:
        """Say that ``worker`` is alive now; forget workers silent for ``keep_ms``."""
        now = self.now_ms()
        with self._guard():
            pipe = self.client.pipeline(transaction=False)
            pipe.zadd(self.keys.heartbeats, {worker: now})
            pipe.zremrangebyscore(self.keys.heartbeats, "-inf", now - keep_ms)
            pipe.execute()

    def drop_heartbeat(self, worker: str) -> None:
        with self._guard():
            self.client.zrem(self.keys.heartbeats, worker)

    def heartbeats(self) -> list[tuple[str, int]]:
        """Workers and their last heartbeat (ms), newest first."""
        with self._guard():
            raw: Any = self.client.zrange(self.keys.heartbeats, 0, -1, desc=True, withscores=True)
        return [(_text(name), int(score)) for name, score in raw]

    def usage_reading(self, digest: str) -> tuple[float, int] | None:
        """The last reading of a tenant's API usage and when it was taken (ms), however old."""
        with self._guard():
            raw = self.client.get(self.keys.usage(digest))
        if raw is None:
            return None
        usage, read_at = _text(raw).split("|")
        return float(usage), int(read_at)

    def dead_records(self) -> list[str]:
        """The dead list as stored (exact strings, which replay_dead needs to remove one)."""
        with self._guard():
            return [_text(item) for item in self.client.lrange(self.keys.dead, 0, -1)]

    def replay_dead(
        self,
        record: str,
        event: QueuedEvent,
        states: tuple[State, ...] = (),
        audit_entry: Entry | None = None,
    ) -> int:
        """Queue a dead letter's event again, if ``record`` is still dead: 1, 0 gone, -1 moved on.

        ``states``: the ticket must be in one of these (none given: any), or the
        record stays dead.
        """
        source, ticket = event["source"], event["ticket"]
        with self._guard():
            return int(self._script("replay")(
                keys=[self.keys.dead, self.keys.queue(source, ticket), self.keys.ready,
                      self.keys.mapping(source, ticket)],
                args=[record, _dumps(event), member(source, ticket), self.now_ms(),
                      "|".join(s.value for s in states),
                      self._audit_record(audit_entry),
                      self.audit_entries,
                      self._audit_words(audit_entry)],
            ))

    def forget(self, source: str, ticket: int) -> bool:
        """Delete a ticket's record, audit trail and queue in one transaction; False if none."""
        name = member(source, ticket)
        with self._guard():
            try:
                pipe = self.client.pipeline(transaction=True)
            except (redis.RedisError, RedisClusterException):
                # redis-py before 5 has no transactions on a Cluster client; the keys share a
                # slot (hash-tagged prefix), and forget is an operator's command: one by one.
                pipe = self.client.pipeline(transaction=False)
            pipe.delete(self.keys.mapping(source, ticket))
            pipe.delete(self.keys.queue(source, ticket))
            pipe.zrem(self.keys.ready, name)
            pipe.hdel(self.keys.leases, name)
            mapping, queue, unready, _unleased = pipe.execute()
        return bool(mapping or queue or unready)

    # -- Autotask webhook deliveries ------------------------------------------------

    def first_delivery(self, source: str, guid: str, sequence: int, keep_ms: int) -> bool:
        """Mark an Autotask webhook delivery as taken; False if it already was (a repeat)."""
        with self._guard():
            return bool(self.client.set(self.keys.delivery(source, guid, sequence), "1",
                                        nx=True, px=keep_ms))

    def forget_delivery(self, source: str, guid: str, sequence: int) -> None:
        """Unmark a delivery whose recording failed, so Autotask's retry is taken."""
        with self._guard():
            self.client.delete(self.keys.delivery(source, guid, sequence))


@dataclass(frozen=True)
class QueueHead:
    """One ticket with undelivered work, as the inspection commands and metrics see it."""

    member: str
    queued_at_ms: int | None  # when its oldest (head) event was queued
    length: int
    due_ms: int  # when it may next be worked (or until when it is leased)

    @property
    def source(self) -> str:
        return split_member(self.member)[0]

    @property
    def ticket(self) -> int:
        return split_member(self.member)[1]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


#: What ``json.dumps(value, separators=(",", ":"), sort_keys=True)`` builds on every call;
#: an encoder keeps no state between calls, so one serves every thread.
_ENCODER = json.JSONEncoder(separators=(",", ":"), sort_keys=True)


def _dumps(value: Mapping[str, Any]) -> str:
    return _ENCODER.encode(value)


def _dumps_any(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def dumps_event(event: QueuedEvent) -> str:
    """Events are stored as compact JSON; the id must be a string the finish script can compare."""
    return _dumps(event)
