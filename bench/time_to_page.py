"""Time to page when something around the bridge fails (issue 13), against the real deployment.

The simulators answer at realistic speeds (ilert about 80 ms, Autotask about
150 ms; the bridge keeps to Autotask's three concurrent requests itself), one
worker process delivers, and each scenario measures, per alert, the time from
the callout's answer to the ALERT accepted by the ilert simulator (both clocks
are this process's monotonic clock). ``bench.report`` turns the figures into
the "time to page" section, its targets and its plot.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tests.deployment import Deployment, wait_until

from . import load, mix

if TYPE_CHECKING:
    from .scenarios import Bench

ILERT_LATENCY = 0.08
AUTOTASK_LATENCY = 0.15
#: An Autotask that answers nothing: far longer than any timeout of the bridge.
HANG = 30.0
DEADLINE = 3.0  # ENRICH_DEADLINE_SECONDS, the default


@dataclass(frozen=True)
class PageScale:
    outages: tuple[float, ...] = (10.0, 180.0)  # seconds ilert answers 503
    outage_tickets: int = 15
    hang_tickets: int = 60
    low: int = 200
    critical: int = 20
    limit: int = 20  # ilert's budget per window in the burst scenarios (the simulator enforces it)
    window: float = 10.0
    calls_burst: int = 200
    plot_outage: float = 20.0
    lone_tickets: int = 40

    @classmethod
    def make(cls, smoke: bool) -> PageScale:
        if not smoke:
            return cls()
        return cls(outages=(2.0, 5.0), outage_tickets=5, hang_tickets=10, low=30, critical=5,
                   limit=20, window=2.0, calls_burst=24, plot_outage=2.0, lone_tickets=5)


def _p(values: list[float], q: float) -> float:
    from .scenarios import percentile

    return percentile(values, q)


class TimeToPage:
    """The scenarios, each on a deployment of its own settings (no rate limit, or a tight one)."""

    def __init__(self, bench: Bench, scale: PageScale) -> None:
        self.bench = bench
        self.scale = scale
        self.free: Deployment | None = None  # ilert rate limit off
        self.paced: Deployment | None = None  # ilert rate limit scale.limit per scale.window

    def start(self) -> None:
        from .scenarios import APP_SPEC

        s = self.scale
        common = {"AUTOTASK_ILERT_ENRICH_DEADLINE_SECONDS": str(DEADLINE)}
        # Own key prefixes: each worker must only see its own deployment's queues.
        self.free = self.bench._deployment("page-free", APP_SPEC, {
            **common, "AUTOTASK_ILERT_REDIS_PREFIX": "bench-free:",
            "AUTOTASK_ILERT_ILERT_RATE_LIMIT": "0"}).start(workers=0)
        self.paced = self.bench._deployment("page-paced", APP_SPEC, {
            **common, "AUTOTASK_ILERT_REDIS_PREFIX": "bench-paced:",
            "AUTOTASK_ILERT_ILERT_RATE_LIMIT": str(s.limit),
            "AUTOTASK_ILERT_ILERT_RATE_WINDOW_SECONDS": str(s.window)}).start(workers=0)
        self.paced.ilert.configure_faults({"rate_limit": {"events": s.limit, "per_seconds": s.window}})
        for deployment in (self.free, self.paced):
            deployment.ilert.latency = ILERT_LATENCY
            deployment.autotask.latency = AUTOTASK_LATENCY
            deployment.autotask.fire_callouts = False
            deployment.start_worker()
            # Up and warm (picklists cached) before anything is measured.
            warm = self._tickets(deployment, ["High"])
            seen = len(deployment.ilert.events())
            self._paged(deployment, set(self._callouts(deployment, warm)), seen, 60)

    def close(self) -> None:
        for deployment in (self.free, self.paced):
            if deployment is not None:
                deployment.stop()

    # -- plumbing ---------------------------------------------------------------------------

    def _tickets(self, deployment: Deployment, labels: list[str]) -> list[int]:
        first = self.bench._fresh_ids(len(labels))
        return [deployment.autotask.add_ticket(f"Outage {n}", priority_label=label, ticket_id=first + n)["id"]
                for n, label in enumerate(labels)]

    def _callouts(self, deployment: Deployment, tickets: list[int]) -> dict[int, float]:
        """Fire a "New" callout for each ticket as fast as the portal answers: when each was answered."""
        requests = ((mix.body(t, "New", 1.0), t) for t in tickets)
        result = load.drive(deployment.callout_url, requests, connections=8, count=len(tickets),
                            duration=120, record=True)
        return {tag: done for tag, _due, done, status in result.records if status == 202}

    def _paged(
        self, deployment: Deployment, tickets: set[int], since: int, timeout: float
    ) -> dict[int, float]:
        """When the ilert simulator accepted each ticket's ALERT (waits for all of them)."""
        got: dict[int, float] = {}
        looked = since

        def arrived() -> bool:
            nonlocal looked
            new = deployment.ilert.events()[looked:]
            looked += len(new)
            for event in new:
                key = str(event.body.get("alertKey", ""))
                if event.accepted and event.body.get("eventType") == "ALERT" and key.startswith("autotask-"):
                    ticket = int(key.rsplit("-", 1)[1])
                    if ticket in tickets:
                        got.setdefault(ticket, event.at)
            return len(got) >= len(tickets)

        wait_until(arrived, timeout, interval=0.05, what=f"{len(tickets)} alerts at the ilert simulator")
        return got

    def _reset(self) -> None:
        self.bench.reset_store()

    # -- 0. a lone ticket, instant simulators: what the bridge itself adds ------------------------------

    def lone(self) -> dict[str, Any]:
        """New tickets one at a time (each paged before the next), simulators answering at once."""
        deployment = self.free
        assert deployment is not None
        self._reset()
        deployment.ilert.latency = deployment.autotask.latency = 0.0
        waits: list[float] = []
        try:
            for _ in range(self.scale.lone_tickets):
                tickets = self._tickets(deployment, ["High"])
                seen = len(deployment.ilert.events())
                answered = self._callouts(deployment, tickets)
                paged = self._paged(deployment, set(answered), seen, 30)
                waits += [(paged[t] - answered[t]) * 1000 for t in answered]
        finally:
            deployment.ilert.latency = ILERT_LATENCY
            deployment.autotask.latency = AUTOTASK_LATENCY
        out = {"tickets": len(waits), "p50_ms": _p(waits, 50), "p99_ms": _p(waits, 99)}
        self.bench_log(f"lone new tickets, instant simulators: callout to ilert p50 {out['p50_ms']:.1f} ms, "
                       f"p99 {out['p99_ms']:.1f} ms")
        return out

    # -- 1. ilert outage recovery ------------------------------------------------------------------

    def outage(self, seconds: float) -> dict[str, Any]:
        """ilert answers 503 for ``seconds``; alerts queued meanwhile: how soon after it is back."""
        deployment = self.free
        assert deployment is not None
        self._reset()
        tickets = self._tickets(deployment, ["High"] * self.scale.outage_tickets)
        seen = len(deployment.ilert.events())
        deployment.ilert.configure_faults({"fail_rate": 1.0, "fail_modes": ["503"]})
        down_at = time.monotonic()
        answered = self._callouts(deployment, tickets)
        time.sleep(max(0.0, down_at + seconds - time.monotonic()))
        deployment.ilert.configure_faults({"fail_rate": 0.0})
        back_at = time.monotonic()
        paged = self._paged(deployment, set(answered), seen, 60 + seconds)
        attempts = sum(1 for e in deployment.ilert.events()[seen:] if e.status_code == 503)
        after = [paged[t] - back_at for t in answered]
        out = {
            "outage_s": seconds,
            "alerts": len(answered),
            "last_after_recovery_s": max(after),
            "p50_after_recovery_s": _p(after, 50),
            "attempts_during_outage": attempts,
            "attempts_per_minute": attempts / max(seconds, 1e-9) * 60,
        }
        self.bench_log(f"ilert outage of {seconds:.0f} s: last held alert "
                       f"{out['last_after_recovery_s']:.2f} s after recovery; {attempts} attempts at "
                       "ilert while it was down")
        return out

    # -- 2. Autotask hanging ------------------------------------------------------------------------

    def autotask_hanging(self) -> dict[str, Any]:
        deployment = self.free
        assert deployment is not None
        self._reset()
        tickets = self._tickets(deployment, ["High"] * self.scale.hang_tickets)
        seen = len(deployment.ilert.events())
        deployment.autotask.latency = HANG
        try:
            answered = self._callouts(deployment, tickets)
            paged = self._paged(deployment, set(answered), seen, 60 + DEADLINE * len(answered))
        finally:
            deployment.autotask.latency = AUTOTASK_LATENCY
        waits = [paged[t] - answered[t] for t in answered]
        out = {"alerts": len(answered), "p50_s": _p(waits, 50), "p99_s": _p(waits, 99), "max_s": max(waits),
               "deadline_s": DEADLINE}
        self.bench_log(f"Autotask hanging, {len(answered)} new tickets: time to page p50 "
                       f"{out['p50_s']:.2f} s, p99 {out['p99_s']:.2f} s (deadline {DEADLINE:.0f} s)")
        time.sleep(0.5)
        return out

    # -- 3. 200 Low, then 20 Critical, beyond ilert's rate limit ----------------------------------------

    def burst(self, outage: float = 0.0) -> dict[str, Any]:
        """The burst; with ``outage``, ilert answers 503 for that long, starting a window in."""
        deployment = self.paced
        assert deployment is not None
        s = self.scale
        self._reset()
        time.sleep(s.window * 1.1)  # the previous run's sends out of the simulator's window
        low = self._tickets(deployment, ["Low"] * s.low)
        critical = self._tickets(deployment, ["Critical"] * s.critical)
        seen = len(deployment.ilert.events())
        started = time.monotonic()
        answered = self._callouts(deployment, low)
        answered.update(self._callouts(deployment, critical))
        outage_span = None
        if outage:
            time.sleep(max(0.0, started + s.window - time.monotonic()))
            deployment.ilert.configure_faults({"fail_rate": 1.0, "fail_modes": ["503"]})
            down = time.monotonic()
            time.sleep(outage)
            deployment.ilert.configure_faults({"fail_rate": 0.0})
            outage_span = (down - started, time.monotonic() - started)
        budget = (len(answered) / s.limit + 4) * (s.window * 1.1) + outage + 60
        paged = self._paged(deployment, set(answered), seen, budget)
        events = deployment.ilert.events()[seen:]
        waits = {t: paged[t] - answered[t] for t in answered}
        crit = [waits[t] for t in critical if t in waits]
        out: dict[str, Any] = {
            "low": len(low), "critical": len(critical), "limit": s.limit, "window_s": s.window,
            "critical_max_s": max(crit), "critical_p50_s": _p(crit, 50),
            "critical_max_windows": max(crit) / s.window,
            "low_max_s": max(waits[t] for t in low if t in waits),
            "rate_limited": sum(1 for e in events if e.status_code == 429),
            "lost": len(answered) - len(paged),
            "points": [(answered[t] - started, waits[t], t in set(critical)) for t in answered],
            "outage_span": outage_span,
        }
        self.bench_log(f"burst of {len(low)} Low + {len(critical)} Critical at {s.limit} a {s.window:.0f} s "
                       f"window{f', ilert down {outage:.0f} s' if outage else ''}: last Critical after "
                       f"{out['critical_max_s']:.1f} s ({out['critical_max_windows']:.2f} windows), "
                       f"{out['rate_limited']} answered 429, {out['lost']} lost")
        return out

    # -- 4. Autotask calls per alert in a burst -----------------------------------------------------------

    def autotask_calls(self) -> dict[str, Any]:
        deployment = self.free
        assert deployment is not None
        self._reset()
        warm = self._tickets(deployment, ["High"])
        seen = len(deployment.ilert.events())
        self._paged(deployment, set(self._callouts(deployment, warm)), seen, 30)  # picklists cached
        deployment.autotask.wait_idle(2)
        tickets = self._tickets(deployment, ["High"] * self.scale.calls_burst)
        before = len(deployment.autotask.calls())
        seen = len(deployment.ilert.events())
        answered = self._callouts(deployment, tickets)
        self._paged(deployment, set(answered), seen, 120)
        deployment.autotask.wait_idle(2)
        calls = deployment.autotask.calls()[before:]
        lone = self._tickets(deployment, ["High"])
        before_lone = len(deployment.autotask.calls())
        seen = len(deployment.ilert.events())
        self._paged(deployment, set(self._callouts(deployment, lone)), seen, 30)
        deployment.autotask.wait_idle(2)
        out = {"alerts": len(answered), "calls": len(calls), "per_alert": len(calls) / max(1, len(answered)),
               "queries": sum(1 for c in calls if c.path.endswith("/Tickets/query")),
               "lone_calls": len(deployment.autotask.calls()) - before_lone}
        self.bench_log(f"Autotask calls in a burst of {len(answered)} new tickets: {out['calls']} "
                       f"({out['per_alert']:.3f} per alert, {out['queries']} queries); a lone ticket: "
                       f"{out['lone_calls']}")
        return out

    def run(self) -> dict[str, Any]:
        from .scenarios import timed

        results: dict[str, Any] = {}
        self.start()
        try:
            results["lone"] = timed("lone tickets", self.lone)
            results["outages"] = [self._timed_outage(d) for d in self.scale.outages]
            results["hanging"] = timed("Autotask hanging", self.autotask_hanging)
            results["calls"] = timed("Autotask calls in a burst", self.autotask_calls)
            results["burst"] = timed("burst", self.burst)
            results["burst_outage"] = timed("burst with an ilert outage",
                                            lambda: self.burst(self.scale.plot_outage))
        finally:
            self.close()
        return results

    def _timed_outage(self, seconds: float) -> dict[str, Any]:
        from .scenarios import timed

        return dict(timed(f"ilert outage {seconds:.0f} s", lambda: self.outage(seconds)))

    @staticmethod
    def bench_log(message: str) -> None:
        from .scenarios import log

        log(message)

