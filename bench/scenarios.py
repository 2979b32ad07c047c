"""The measurements of issue 6, each against the real deployment on loopback.

``Bench`` owns the processes: its own redis-server, the example portal and the
bare endpoint under identical gunicorn settings (``flask_autotask_ilert.testing.
deployment``, the same harness as the end-to-end tests), the simulators, and
the delivery worker when a measurement needs it. Each method measures one
thing and returns plain numbers; ``bench.report`` turns them into the table,
the plot and docs/performance.md.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask

from flask_autotask_ilert import AutotaskIlert
from flask_autotask_ilert.config import OPTIONS
from flask_autotask_ilert.ilert import SendResult, Verdict
from flask_autotask_ilert.worker import Worker
from tests.deployment import Deployment, wait_until

from . import load, mix
from .keepalive import KeepAliveDeployment
from .redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[1]
APP_SPEC = "examples.msp_portal:create_app()"
BARE_SPEC = "bench.bare:create_app()"
FLOOR_SPEC = "bench.floor:create_app()"
#: The one-round-trip floor (bench/floor.py), by the Redis client it uses.
FLOORS = {"floor": "redis-py", "floor-socket": "socket"}
PREFIX = "bench:"


def _default(name: str) -> Any:
    return next(option.default for option in OPTIONS if option.name == name)


@dataclass(frozen=True)
class Scale:
    """How big each measurement is; ``smoke`` shrinks everything to seconds."""

    smoke: bool
    web_workers: int = 2
    use_wrk: bool = True
    settings: tuple[tuple[str, str], ...] = ()  # AUTOTASK_ILERT_<name>=<value> for the deployment
    connections: int = 16
    saturation_seconds: float = 3.0
    rounds: int = 5
    sweep_fractions: tuple[float, ...] = (0.1, 0.25, 0.5, 0.7, 0.85)  # of the bare ceiling
    portal_fractions: tuple[float, ...] = (0.5, 0.75, 0.9)  # of the portal's own, portal only
    sweep_seconds: float = 4.0
    tickets_per_round: int = 3000
    propagation_rate: float = 100.0
    propagation_seconds: float = 15.0
    status_tickets: int = 300
    drain_events: int = 10_000
    memory_tickets: int = 100_000
    memory_sample: int = 2000
    monitor_callouts: int = 300
    warm_seconds: float = 1.0

    @classmethod
    def make(cls, smoke: bool, web_workers: int, use_wrk: bool,
             settings: tuple[tuple[str, str], ...] = ()) -> Scale:
        if not smoke:
            return cls(False, web_workers, use_wrk, settings)
        return cls(
            True, web_workers, use_wrk, settings, connections=8, saturation_seconds=1.0, rounds=1,
            sweep_fractions=(0.5,), portal_fractions=(0.5,), sweep_seconds=0.6, tickets_per_round=200,
            propagation_rate=100.0, propagation_seconds=0.6, status_tickets=10, drain_events=100,
            memory_tickets=1000, memory_sample=60, monitor_callouts=30, warm_seconds=0.3,
        )


@dataclass
class Run:
    """One load run, reduced to what the report needs (latencies in ms)."""

    target: str
    tool: str
    offered: float | None
    throughput: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    statuses: dict[int, int] = field(default_factory=dict)
    cpu_us: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, target: str, result: load.LoadResult, cpu_us: dict[str, float] | None = None) -> Run:
        return cls(
            target, result.tool, result.offered, result.throughput, result.p50 * 1000,
            result.p99 * 1000, result.requests, result.errors, dict(result.statuses), cpu_us or {},
        )


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rounded(values: dict[str, float]) -> dict[str, int]:
    return {k: round(v) for k, v in values.items()}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


class _Delivered:
    """An ilert that accepts everything at once (the memory measurement needs no sockets)."""

    def send_event(self, event: dict[str, Any]) -> SendResult:
        return SendResult(Verdict.DELIVERED, 202, "http 202")


class Bench:
    def __init__(self, scale: Scale) -> None:
        self.scale = scale
        self.workdir = Path(tempfile.mkdtemp(prefix="fai-bench-"))
        self.redis = RedisServer(appendfsync="everysec")
        self.app: Deployment | None = None
        self.bare: Deployment | None = None
        self.floors: dict[str, Deployment] = {}
        self.worker: Any = None
        self._ids = mix.FIRST_ID
        self.steps = mix.round_steps(scale.tickets_per_round)
        self.wrk = load.wrk_binary() if scale.use_wrk else None

    # -- processes -------------------------------------------------------------------

    def _deployment(self, name: str, spec: str, extra: dict[str, str] | None = None) -> Deployment:
        folder = self.workdir / name
        folder.mkdir()
        return KeepAliveDeployment(
            redis_url=self.redis.url,
            redis_prefix=PREFIX,
            workdir=folder,
            root=ROOT,
            web_workers=self.scale.web_workers,
            app_spec=spec,
            extra_env={
                # The shipped defaults, not the end-to-end tests' quick settings.
                "AUTOTASK_ILERT_WORKER_POLL_SECONDS": str(_default("WORKER_POLL_SECONDS")),
                "AUTOTASK_ILERT_RETRY_BASE_SECONDS": str(_default("RETRY_BASE_SECONDS")),
                **{f"AUTOTASK_ILERT_{name}": value for name, value in self.scale.settings},
                **(extra or {}),
            },
        )

    def start(self) -> None:
        self.redis.start()
        log(f"redis-server {self.redis.version()} on port {self.redis.port} (appendfsync everysec)")
        self.app = self._deployment("app", APP_SPEC).start(workers=0)
        self.bare = self._deployment("bare", BARE_SPEC).start(workers=0)
        for name, client in FLOORS.items():
            self.floors[name] = self._deployment(name, FLOOR_SPEC, {"FLOOR_CLIENT": client}).start(workers=0)
        log(f"gunicorn with {self.scale.web_workers} sync workers: portal, bare endpoint and "
            "one-round-trip floors up")

    def close(self) -> None:
        for deployment in (self.app, self.bare, *self.floors.values()):
            if deployment is not None:
                deployment.stop()
        self.redis.close()

    def _target(self, name: str) -> Deployment:
        deployment = {"app": self.app, "bare": self.bare, **self.floors}[name]
        assert deployment is not None
        return deployment

    def _fresh_ids(self, count: int) -> int:
        first = self._ids
        self._ids += count + 1000
        return first

    def _mix(self) -> Iterator[tuple[str, Any]]:
        # A fresh id space per run: every run sees the same proportions of actions.
        first = self._fresh_ids(100 * self.scale.tickets_per_round)
        return mix.bodies(self.steps, self.scale.tickets_per_round, first)

    def _path(self, deployment: Deployment) -> str:
        return f"/autotask-ilert/callout/{deployment.token}"

    # -- 1. callout throughput and latency ------------------------------------------------

    def saturate(self, name: str, seconds: float | None = None) -> Run:
        """Closed-loop saturation with the realistic mix; CPU per request of every process."""
        deployment = self._target(name)
        seconds = seconds or self.scale.saturation_seconds
        pids = {"web": deployment.web_worker_pids(), "redis": [self.redis.process.pid]}  # type: ignore[union-attr]
        before = {k: sum(_cpu_seconds(p) for p in v) for k, v in pids.items()}
        generator_before = time.process_time()
        children_before = _children_cpu()
        if self.wrk:
            first = self._fresh_ids(100 * self.scale.tickets_per_round)
            script = mix.wrk_script(self.steps, self.scale.tickets_per_round, first, self._path(deployment))
            result = load.run_wrk(deployment.callout_url, script, connections=self.scale.connections,
                                  duration=seconds)
        else:
            result = load.drive(deployment.callout_url, self._mix(), connections=self.scale.connections,
                                duration=seconds)
        after = {k: sum(_cpu_seconds(p) for p in v) for k, v in pids.items()}
        n = max(1, result.requests)
        cpu = {k: (after[k] - before[k]) * 1e6 / n for k in pids}
        if self.wrk:  # wrk is the only child process that ends during the run
            cpu["wrk"] = (_children_cpu() - children_before) * 1e6 / n
        else:
            cpu["load generator"] = (time.process_time() - generator_before) * 1e6 / n
        run = Run.of(name, result, cpu)
        log(f"saturation {name:12}: {run.throughput:7.0f}/s p50 {run.p50_ms:6.1f} ms "
            f"p99 {run.p99_ms:6.1f} ms ({result.tool}, {run.errors} errors)")
        return run

    def fixed_rate(self, name: str, rate: float, seconds: float | None = None) -> Run:
        deployment = self._target(name)
        started = time.process_time()
        result = load.drive(deployment.callout_url, self._mix(), rate=rate, connections=64,
                            duration=seconds or self.scale.sweep_seconds)
        generator = (time.process_time() - started) * 1e6 / max(1, result.requests)
        run = Run.of(name, result, {"load generator": generator})
        log(f"{rate:7.0f}/s offered to {name:4}: p50 {run.p50_ms:6.1f} ms p99 {run.p99_ms:7.1f} ms "
            f"({run.errors} errors)")
        time.sleep(0.3)  # let the server finish anything queued before the next run
        return run

    def warm_up(self, name: str, seconds: float | None = None) -> None:
        deployment = self._target(name)
        seconds = seconds or self.scale.warm_seconds
        deadline = time.monotonic() + 15
        while True:
            result = load.drive(deployment.callout_url, self._mix(), connections=4, duration=seconds)
            if result.requests and not result.errors and 503 not in result.statuses:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} does not answer callouts: {result.statuses}")
            time.sleep(0.2)

    # -- 4a. Redis round trips per callout ---------------------------------------------

    def round_trips(self) -> dict[str, Any]:
        """Every command the web workers send while they answer callouts (Redis MONITOR)."""
        deployment = self._target("app")
        marker = f"bench-monitor-{uuid.uuid4().hex}"
        lines: list[str] = []
        ready = threading.Event()

        def monitor() -> None:
            with socket.create_connection(("127.0.0.1", self.redis.port), timeout=30) as sock:
                sock.sendall(b"MONITOR\r\n")
                buffer = b""
                ready.set()
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                    *complete, buffer = buffer.split(b"\r\n")
                    for line in complete:
                        text = line.decode("utf-8", "replace")
                        lines.append(text)
                        if f'"ECHO" "{marker}-end"' in text:
                            return

        thread = threading.Thread(target=monitor, daemon=True)
        thread.start()
        ready.wait(5)
        own = self.redis.client()
        time.sleep(0.1)
        own.echo(f"{marker}-start")
        result = load.drive(deployment.callout_url, self._mix(), connections=1,
                            count=self.scale.monitor_callouts, duration=60)
        own.echo(f"{marker}-end")
        thread.join(10)
        started = False
        commands: Counter[str] = Counter()
        for line in lines:
            if f"{marker}-start" in line:
                started = True
                continue
            if not started or f"{marker}-end" in line or "[" not in line:
                continue
            source = line.split("[", 1)[1].split("]", 1)[0].split(" ", 1)[-1]
            if source == "lua":
                continue
            commands[line.split("]", 1)[1].strip().split(" ", 1)[0].strip('"').upper()] += 1
        callouts = result.requests
        per_callout = sum(commands.values()) / callouts if callouts else float("nan")
        log(f"round trips: {per_callout:.3f} per callout over {callouts} callouts: {dict(commands)}")
        return {"per_callout": per_callout, "callouts": callouts, "commands": dict(commands),
                "statuses": dict(result.statuses)}

    # -- 2 and 3. propagation, Autotask calls ---------------------------------------------

    def start_worker(self) -> None:
        deployment = self._target("app")
        self.worker = deployment.start_worker()

    def stop_worker(self) -> None:
        if self.worker is not None:
            self._target("app").kill(self.worker, signal.SIGTERM)
            self.worker = None

    def _add_tickets(self, count: int) -> list[int]:
        autotask = self._target("app").autotask
        autotask.fire_callouts = False
        first = self._fresh_ids(count)
        priorities = ("Low", "Medium", "High", "Critical")
        return [
            autotask.add_ticket(f"Bench outage {n}", priority_label=priorities[n % 4],
                                ticket_id=first + n)["id"]
            for n in range(count)
        ]

    def _ilert_events(self, start: int = 0) -> list[Any]:
        return self._target("app").ilert.events()[start:]

    def _wait_for_events(self, start: int, wanted: set[tuple[int, str]], timeout: float) -> list[Any]:
        """The ilert simulator's events since ``start`` once (ticket, eventType) of each is in."""
        missing = set(wanted)
        looked = start  # each event is looked at once: the poll runs in the simulators' process

        def arrived() -> bool:
            nonlocal looked
            new = self._ilert_events(looked)
            looked += len(new)
            for event in new:
                if event.accepted:
                    key = str(event.body.get("alertKey", ""))
                    missing.discard((int(key.rsplit("-", 1)[1]), str(event.body.get("eventType"))))
            return not missing

        wait_until(arrived, timeout, interval=0.1, what=f"{len(wanted)} events at the ilert simulator")
        return self._ilert_events(start)

    def _head_rewrites(self) -> int:
        stats = self.redis.client().info("commandstats").get("cmdstat_lset", {})
        return int(stats.get("calls", 0)) if isinstance(stats, dict) else 0

    def reset_store(self) -> None:
        """Empty the bench's own Redis: no leftover backlog may reach the next measurement."""
        self.redis.client().flushdb()

    def propagation(self) -> dict[str, Any]:
        """Callout answered -> event accepted by ilert, at a fixed rate of new tickets."""
        deployment = self._target("app")
        scale = self.scale
        # One ticket first: the worker process starts and caches the picklists.
        warm = self._add_tickets(1)[0]
        seen = len(self._ilert_events())
        calls_at_start = len(deployment.autotask.calls())
        load.drive(deployment.callout_url, iter([(mix.body(warm, "New", 1.0), warm)]), count=1, duration=10)
        self._wait_for_events(seen, {(warm, "ALERT")}, 30)
        warm_calls = len(deployment.autotask.calls()) - calls_at_start

        count = max(1, round(scale.propagation_rate * scale.propagation_seconds))
        tickets = self._add_tickets(count)
        seen = len(self._ilert_events())
        calls_before = len(deployment.autotask.calls())
        rewrites_before = self._head_rewrites()
        requests = ((mix.body(t, "New", 10.0), t) for t in tickets)
        result = load.drive(deployment.callout_url, requests, rate=scale.propagation_rate,
                            connections=32, count=count, duration=scale.propagation_seconds + 1,
                            record=True)
        answered = {tag: done for tag, _due, done, status in result.records if status == 202}
        events = self._wait_for_events(seen, {(t, "ALERT") for t in answered}, 60 + count / 50)
        accepted_at: dict[int, float] = {}
        for event in events:
            key = event.body.get("alertKey", "")
            if event.body.get("eventType") == "ALERT" and event.accepted:
                accepted_at.setdefault(int(key.rsplit("-", 1)[1]), event.at)
        latencies = [max(0.0, accepted_at[t] - answered[t]) * 1000 for t in answered if t in accepted_at]
        deployment.autotask.wait_idle(1)
        calls = deployment.autotask.calls()[calls_before:]
        ticket_reads = [c for c in calls if c.method == "GET" and "/Tickets/" in c.path
                        and "entityInformation" not in c.path]
        out = {
            "rate": result.throughput,
            "offered": scale.propagation_rate,
            "tickets": len(answered),
            "p50_ms": percentile(latencies, 50),
            "p99_ms": percentile(latencies, 99),
            "max_ms": max(latencies, default=float("nan")),
            "callout_p99_ms": result.p99 * 1000,
            "autotask_calls": len(calls),
            "autotask_ticket_reads": len(ticket_reads),
            "autotask_calls_first_alert": warm_calls,
            "calls_per_alert": len(calls) / max(1, len(accepted_at)),
            # Heads written back instead of delivered: with no faults injected, events put
            # off because every Autotask request place was taken.
            "deferred": self._head_rewrites() - rewrites_before,
        }
        log(f"propagation at {out['rate']:.0f} new tickets/s: p50 {out['p50_ms']:.1f} ms "
            f"p99 {out['p99_ms']:.1f} ms; Autotask calls per alert {out['calls_per_alert']:.3f} "
            f"(first alert of the worker process: {warm_calls}); {out['deferred']} deferred")

        # Status-only callouts: accept and resolve some of those alerts.
        some = tickets[: min(len(tickets), scale.status_tickets)]
        seen = len(self._ilert_events())
        calls_before = len(deployment.autotask.calls())
        for label in ("In Progress", "Complete"):
            requests = ((mix.body(t, label, 20.0 if label == "In Progress" else 30.0), t) for t in some)
            load.drive(deployment.callout_url, requests, rate=scale.propagation_rate, connections=32,
                       count=len(some), duration=len(some) / scale.propagation_rate + 1)
        self._wait_for_events(seen, {(t, e) for t in some for e in ("ACCEPT", "RESOLVE")}, 60)
        deployment.autotask.wait_idle(1)
        status_calls = len(deployment.autotask.calls()) - calls_before
        out["status_callouts"] = 2 * len(some)
        out["calls_per_status_callout"] = status_calls / (2 * len(some))
        log(f"{2 * len(some)} status-only callouts: {status_calls} Autotask calls")
        return out

    # -- 2b. drain rate ----------------------------------------------------------------------

    def drain(self) -> dict[str, Any]:
        """One worker process empties a backlog: creates (with an Autotask read), accepts, resolves."""
        deployment = self._target("app")
        self.stop_worker()
        events = self.scale.drain_events
        created = max(1, round(events * 0.4))
        worked = (events - created) // 2
        tickets = self._add_tickets(created)
        plan = [("New", tickets, 1.0), ("In Progress", tickets[:worked], 2.0),
                ("Complete", tickets[:worked], 3.0)]
        queued = 0
        wanted: set[tuple[int, str]] = set()
        kinds = {"New": "ALERT", "In Progress": "ACCEPT", "Complete": "RESOLVE"}
        for label, group, at in plan:
            requests = ((mix.body(t, label, at), t) for t in group)
            result = load.drive(deployment.callout_url, requests, connections=8, count=len(group),
                                duration=600, record=True)
            queued += result.statuses.get(202, 0)
            wanted |= {(tag, kinds[label]) for tag, _due, _done, status in result.records if status == 202}
        backlog = self.redis.client().zcard(f"{PREFIX}ready")
        log(f"backlog: {queued} events on {backlog} tickets; starting one worker process")
        seen = len(self._ilert_events())
        calls_before = len(deployment.autotask.calls())
        started = time.monotonic()
        self.start_worker()
        wait_until(lambda: len(self._ilert_events(seen)) > 0, 60, interval=0.01, what="the first delivery")
        first = len(self._ilert_events(seen))
        window_start = time.monotonic()
        cpu_before = self._drain_cpu()
        got = self._wait_for_events(seen, wanted, 60 + queued / 20)
        finished = time.monotonic()
        cpu: dict[str, float] = {k: v - cpu_before[k] for k, v in self._drain_cpu().items()}
        in_window = max(1, len(got) - first)
        stamps = [e.at for e in got[:queued]]
        spread = max(stamps) - min(stamps) if len(stamps) > 1 else float("nan")
        calls = deployment.autotask.calls()[calls_before:]
        cpu_us = {k: v * 1e6 / in_window for k, v in cpu.items()}
        out = {
            "events": queued,
            "rate": (len(stamps) - 1) / spread if spread and spread > 0 else float("nan"),
            "rate_with_startup": queued / (finished - started),
            "threads": int(dict(self.scale.settings).get("WORKER_THREADS", _default("WORKER_THREADS"))),
            "autotask_calls": len(calls),
            "creates": created,
            "calls_per_alert": len(calls) / created,
            # CPU per delivered event while draining, and how busy the worker process was.
            "cpu_us": cpu_us,
            "worker_busy": cpu["worker"] / max(1e-9, finished - window_start),
        }
        log(f"drain: {out['rate']:.0f} events/s for one worker process "
            f"({out['rate_with_startup']:.0f}/s counting its start); "
            f"Autotask calls per created alert {out['calls_per_alert']:.3f}; CPU per event "
            f"{_rounded(cpu_us)} µs, worker process busy {out['worker_busy']:.0%} of a core")
        return out

    def _drain_cpu(self) -> dict[str, float]:
        worker = self.worker.pid if self.worker is not None else 0
        return {
            "worker": _cpu_seconds(worker),
            "simulators (bench process)": time.process_time(),
            "redis": _cpu_seconds(self.redis.process.pid),  # type: ignore[union-attr]
        }

    # -- 4b. memory per tracked ticket ------------------------------------------------------

    def memory(self, audit_entries: int | None = None) -> dict[str, Any]:
        """used_memory delta / N for N tickets of the mix, settled (their events delivered).

        A sample of the mix goes through the real code (the callout view, the Lua
        scripts, the worker with an ilert that accepts at once); the rest are
        byte-identical copies of the sample's keys under new ticket ids (DUMP and
        RESTORE keep the encoding), which is what lets 100,000 tickets fit in seconds.
        """
        scale = self.scale
        self.redis.restart("everysec")
        client = self.redis.client()
        baseline = int(client.info("memory")["used_memory"])
        app = Flask("bench-memory")
        config: dict[str, Any] = {
            "TESTING": True,
            "AUTOTASK_ILERT_REDIS_URL": self.redis.url,
            "AUTOTASK_ILERT_CALLOUT_TOKEN": "bench-memory-token-0123456789",
            "AUTOTASK_ILERT_ILERT_INTEGRATION_KEY": "bench-memory-key",
            "AUTOTASK_ILERT_ILERT_API_URL": "http://127.0.0.1:9",
            "AUTOTASK_ILERT_ILERT_RATE_LIMIT": 0,
            "AUTOTASK_ILERT_RATE_LIMIT": "off",
        }
        if audit_entries is not None:
            config["AUTOTASK_ILERT_AUDIT_ENTRIES"] = audit_entries
        app.config.update(config)
        AutotaskIlert(app)
        bridge = app.extensions["autotask_ilert"]
        bridge.ilert = lambda source: _Delivered()
        web = app.test_client()
        steps = mix.round_steps(scale.memory_sample, seed=7)
        first = mix.FIRST_ID
        for step in steps:
            answer = web.post(
                "/autotask-ilert/callout/bench-memory-token-0123456789",
                data=mix.body(first + step.offset, step.status, step.at),
                content_type="application/x-www-form-urlencoded",
            )
            if answer.status_code not in (200, 202, 400):
                raise RuntimeError(f"memory sample: callout answered {answer.status_code}")
        Worker(bridge, threads=1).drain(timeout=600)
        prefix = bridge.settings.redis_prefix
        templates = sorted(k.decode() for k in client.scan_iter(f"{prefix}map:*", count=1000))
        if client.zcard(f"{prefix}ready"):
            raise RuntimeError("memory sample: events left undelivered")
        client.delete(f"{prefix}wake")  # the wake-up tokens no idle worker took: not per ticket
        dumps = []
        states: Counter[str] = Counter()
        usage: dict[str, list[int]] = {}
        audit_bytes = []
        for key in templates:
            payload = client.dump(key)
            assert isinstance(payload, bytes)
            dumps.append((payload, max(0, int(client.pttl(key)))))
            raw = client.hget(key, "s")
            state = _text(raw).split("|")[0] if raw else "rejected (audit only)"
            states[state] += 1
            usage.setdefault(state, []).append(int(client.memory_usage(key, samples=0) or 0))
            audit_bytes.append(int(client.hstrlen(key, "a")))
        pipe = client.pipeline(transaction=False)
        next_id = first + scale.memory_sample
        copies = max(0, scale.memory_tickets - len(templates))
        for n in range(copies):
            payload, ttl = dumps[n % len(dumps)]
            pipe.restore(f"{prefix}map:default:{next_id + n}", ttl, payload)
            if n % 2000 == 1999:
                pipe.execute()
        pipe.execute()
        tickets = len(templates) + copies
        if client.dbsize() != tickets:
            raise RuntimeError(f"memory: {client.dbsize()} keys for {tickets} tickets")
        used = int(client.info("memory")["used_memory"])
        encodings = Counter(_text(client.object("encoding", key)) for key in templates[:200])
        out = {
            "tickets": tickets,
            "bytes_per_ticket": (used - baseline) / tickets,
            "states": dict(states),
            "memory_usage_by_state": {k: statistics.mean(v) for k, v in usage.items()},
            "audit_bytes_mean": statistics.mean(audit_bytes) if audit_bytes else 0.0,
            "encodings": dict(encodings),
            "audit_entries": audit_entries if audit_entries is not None else _default("AUDIT_ENTRIES"),
            "hash_max_listpack_value": int(str(client.config_get("hash-max-listpack-value")[
                "hash-max-listpack-value"])),
        }
        log(f"memory: {out['bytes_per_ticket']:.0f} bytes per ticket at {tickets} tickets "
            f"(audit entries {out['audit_entries']}, hash-max-listpack-value "
            f"{out['hash_max_listpack_value']}, hash encodings {dict(encodings)})")
        return out

    # -- 5. fsync ---------------------------------------------------------------------------

    def fsync(self) -> dict[str, Any]:
        runs: dict[str, list[Run]] = {"always": [], "everysec": []}
        for _ in range(max(1, (self.scale.rounds + 1) // 2)):
            for policy in ("always", "everysec"):
                self.redis.restart(policy)
                self.warm_up("app")
                run = self.saturate("app")
                run.target = f"app, appendfsync {policy}"
                runs[policy].append(run)
        out: dict[str, Any] = {
            policy: statistics.median(r.throughput for r in rs) for policy, rs in runs.items()
        }
        out["p99_ms"] = {policy: statistics.median(r.p99_ms for r in rs) for policy, rs in runs.items()}
        out["ratio"] = out["always"] / out["everysec"] if out["everysec"] else float("nan")
        log(f"appendfsync always {out['always']:.0f}/s vs everysec {out['everysec']:.0f}/s")
        return out


def timed(label: str, action: Callable[[], Any]) -> Any:
    started = time.monotonic()
    value = action()
    log(f"{label} took {time.monotonic() - started:.1f} s")
    return value
