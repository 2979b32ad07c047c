"""The realistic callout mix: what an MSP's Autotask sends over a few thousand tickets.

Each ticket follows a walk of status labels (created, worked, closed; some
repeated, some rejected) and the walks are interleaved in time the way
tickets overlap on a service desk. One *round* is ``tickets`` tickets; a load
generator that runs longer than a round starts the next round with fresh
ticket ids, so the mix stays the same however long it runs (replaying a
round would only hit tickets that are already resolved).

Every body is a Name Value Pair form exactly as the Autotask simulator (and
Autotask) writes it, with ``last_activity_datetime`` increasing along each
ticket's walk.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import quote_plus

from flask_autotask_ilert.lifecycle import DEFAULT_STATUS_LABELS, State, StatusClass, fold, transition

#: (probability, walk, optional steps): a step marked optional happens with the given chance.
WALKS: tuple[tuple[float, tuple[tuple[str, float], ...]], ...] = (
    # The usual life: new, picked up, closed; Autotask repeats callouts on other edits.
    (0.55, (("New", 1.0), ("New", 0.3), ("In Progress", 1.0), ("Customer Note Added", 0.5),
            ("Complete", 1.0))),
    # Closed straight from New.
    (0.15, (("New", 1.0), ("Customer Note Added", 0.5), ("Complete", 1.0))),
    # Still open at the end of the round.
    (0.10, (("New", 1.0),)),
    # Parked with the customer, then worked and closed.
    (0.10, (("New", 1.0), ("Waiting Customer", 1.0), ("In Progress", 1.0), ("Complete", 1.0))),
    # Created already closed or waiting: ilert's integration rejects those (400).
    (0.05, (("Complete", 1.0), ("Complete", 0.5))),
    (0.05, (("Waiting Customer", 1.0),)),
)

#: The first ticket id a benchmark uses; far above the simulator's own ids.
FIRST_ID = 50_000_000
EPOCH = datetime(2026, 11, 27, 8, 0, tzinfo=timezone.utc)
DOMAIN = "EXAMPLESANDBOX.COM"


@dataclass(frozen=True)
class Step:
    """One callout of a round: which ticket (offset in the round), which status, when."""

    offset: int
    status: str
    at: float  # seconds after the round's start


def round_steps(tickets: int, seed: int = 6) -> list[Step]:
    """One round's callouts in the order they are sent."""
    rng = random.Random(seed)
    weights = [w for w, _ in WALKS]
    span = float(tickets)  # a round spans one "second" per ticket of activity time
    steps: list[Step] = []
    for offset in range(tickets):
        _, walk = rng.choices(WALKS, weights)[0]
        at = rng.uniform(0, span)
        for status, chance in walk:
            if chance < 1.0 and rng.random() >= chance:
                continue
            steps.append(Step(offset, status, at))
            at += rng.expovariate(1 / (span * 0.01)) + 0.001
    steps.sort(key=lambda s: s.at)
    return steps


def expected_actions(steps: list[Step]) -> Counter[str]:
    """What the lifecycle table makes of the round (callouts arriving in order)."""
    classes = {fold(label): cls for cls, labels in DEFAULT_STATUS_LABELS.items() for label in labels}
    states: dict[int, State] = {}
    actions: Counter[str] = Counter()
    for step in steps:
        cls = classes.get(fold(step.status), StatusClass.OTHER)
        cell = transition(states.get(step.offset, State.NONE), cls)
        states[step.offset] = cell.new_state
        actions[cell.action.value] += 1
    return actions


#: The capture the Autotask simulator mimics came from a US Eastern tenant in summer.
OFFSET = timedelta(hours=-4)


def timestamp(seconds: float) -> str:
    """Autotask's callout spelling: local time, 8 fraction digits, an offset with seconds."""
    moment = EPOCH + timedelta(seconds=seconds) + OFFSET
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond:06d}00-04:00:00"


def body(ticket_id: int, status: str, at: float) -> str:
    pairs = (
        ("id", str(ticket_id)),
        ("number", f"T20261127.{ticket_id % 10_000:04d}"),
        ("status", status),
        ("created_datetime", timestamp(0)),
        ("last_activity_datetime", timestamp(at)),
        ("domain", DOMAIN),
    )
    return "&".join(f"{k}={quote_plus(v, safe=':')}" for k, v in pairs)


def bodies(steps: list[Step], tickets: int, first_id: int) -> Iterator[tuple[str, int]]:
    """Endless (body, ticket id): round after round, fresh ids each round."""
    round_no = 0
    while True:
        base = first_id + round_no * tickets
        shift = round_no * float(tickets)
        for step in steps:
            yield body(base + step.offset, step.status, shift + step.at), base + step.offset
        round_no += 1


def wrk_script(steps: list[Step], tickets: int, first_id: int, path: str) -> str:
    """The same endless mix as a wrk Lua script (one id space per wrk thread)."""
    rows = ",".join(
        f'{{{s.offset},"{quote_plus(s.status)}",{s.at:.6f}}}' for s in steps
    )
    epoch = int((EPOCH + OFFSET).timestamp())
    return f"""
local steps = {{{rows}}}
local tickets, first_id, epoch = {tickets}, {first_id}, {epoch}
local path = "{path}"
local headers = {{["Content-Type"] = "application/x-www-form-urlencoded"}}
local created = os.date("!%Y-%m-%dT%H:%M:%S", epoch) .. ".00000000-04:00:00"
local counter = 0
local threads = {{}}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  tid = tid or 0
end

function request()
  local n = #steps
  local round = math.floor(counter / n)
  local step = steps[(counter % n) + 1]
  counter = counter + 1
  local id = first_id + tid * 100000000 + round * tickets + step[1]
  local at = round * tickets + step[3]
  local whole = math.floor(at)
  local frac = math.floor((at - whole) * 1000000)
  local last = os.date("!%Y-%m-%dT%H:%M:%S", epoch + whole) .. string.format(".%06d00-04:00:00", frac)
  local body = "id=" .. id .. "&number=T20261127." .. string.format("%04d", id % 10000)
    .. "&status=" .. step[2] .. "&created_datetime=" .. created
    .. "&last_activity_datetime=" .. last .. "&domain={DOMAIN}"
  return wrk.format("POST", path, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d mean_us=%.1f "
    .. "max_us=%d connect=%d read=%d write=%d status=%d timeout=%d\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.mean, latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""
