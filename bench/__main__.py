"""``python -m bench [--smoke] [--web-workers N] [--out PATH]``: run every measurement, print the table.

Without ``--smoke`` it writes docs/performance.md and docs/performance-latency.png
(takes up to about ten minutes on the two-core machine). ``--smoke`` runs each
measurement at a tiny scale in seconds and writes its report under a temporary
directory unless ``--out`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import report
from .scenarios import FLOORS, ROOT, Bench, Run, Scale, log, timed
from .time_to_page import PageScale, TimeToPage

PHASES = ("saturation", "round-trips", "propagation", "drain", "time-to-page", "fsync", "memory")


def run(scale: Scale, only: set[str] | None = None) -> dict[str, Any]:
    bench = Bench(scale)
    results: dict[str, Any] = {"scale": {
        "web_workers": scale.web_workers, "connections": scale.connections,
        "tickets_per_round": scale.tickets_per_round, "memory_sample": scale.memory_sample,
        "smoke": scale.smoke,
    }}
    started = time.monotonic()

    def wanted(phase: str) -> bool:
        return only is None or phase in only

    try:
        bench.start()
        results["machine"] = report.machine(bench.redis.version(), bench.wrk)
        load_before = os.getloadavg()[0]
        if not bench.wrk:
            log("wrk not found: saturation runs use the Python load generator")
        for name in ("bare", *FLOORS, "app"):
            bench.warm_up(name)
        if wanted("saturation"):
            saturation_and_sweep(bench, scale, results)
        if wanted("round-trips"):
            results["round_trips"] = bench.round_trips()

        # 2, 3. Propagation, Autotask calls, drain: without the backlog the runs above left.
        bench.reset_store()
        if wanted("propagation"):
            bench.start_worker()
            results["propagation"] = timed("propagation", bench.propagation)
        if wanted("drain"):
            results["drain"] = timed("drain", bench.drain)
        bench.stop_worker()

        # 6. Time to page, on deployments of its own (simulators at realistic speeds).
        if wanted("time-to-page"):
            results["time_to_page"] = timed(
                "time to page", TimeToPage(bench, PageScale.make(scale.smoke)).run)

        # 5. appendfsync (restarts the bench Redis), then 4b. memory (on a fresh one).
        if wanted("fsync"):
            results["fsync"] = timed("fsync", bench.fsync)
        if wanted("memory"):
            results["memory"] = timed("memory", bench.memory)
            results["memory_no_audit"] = timed("memory without audit", lambda: bench.memory(audit_entries=0))
        results["machine"]["load average (1 min) at start, end"] = (
            f"{load_before:.2f}, {os.getloadavg()[0]:.2f}")
    finally:
        bench.close()
    results["seconds"] = time.monotonic() - started
    log(f"all measurements took {results['seconds']:.0f} s")
    return results


def saturation_and_sweep(bench: Bench, scale: Scale, results: dict[str, Any]) -> None:
    """Saturation runs alternating between the endpoints, then the open-loop sweep."""
    # 1. Saturation, alternating so that noise hits every endpoint alike.
    saturation = []
    for _ in range(scale.rounds):
        saturation += [bench.saturate(name) for name in ("bare", *FLOORS, "app")]
    results["saturation"] = saturation
    bare = [r for r in saturation if r.target == "bare"]
    app = [r for r in saturation if r.target == "app"]
    ceiling = statistics.median(r.throughput for r in bare)

    def ratio(runs: list[Run]) -> float:
        """The median of the per-round ratios to the bare endpoint of the same round."""
        return statistics.median(a.throughput / b.throughput for a, b in zip(runs, bare, strict=True))
    results["summary"] = {
        "bare_throughput": ceiling,
        "app_throughput": statistics.median(r.throughput for r in app),
        "bare_p50_ms": statistics.median(r.p50_ms for r in bare),
        "bare_p99_ms": statistics.median(r.p99_ms for r in bare),
        "app_p50_ms": statistics.median(r.p50_ms for r in app),
        "app_p99_ms": statistics.median(r.p99_ms for r in app),
        "ratio": ratio(app),
        # The most any callout endpoint with one Redis round trip reaches (bench/floor.py).
        **{f"{name.replace('-', '_')}_ratio": ratio([r for r in saturation if r.target == name])
           for name in FLOORS},
        # CPU per callout of every process involved: what throughput follows when CPU is the limit.
        "cpu_ratio": statistics.median(sum(r.cpu_us.values()) for r in bare)
        / max(1e-9, statistics.median(sum(r.cpu_us.values()) for r in app)),
    }

    # Latency against offered load; the portal only up to a little past its own ceiling.
    sweep = []
    fractions = sorted({*scale.sweep_fractions, 0.5})
    app_ceiling = results["summary"]["app_throughput"]
    for fraction in fractions:
        rate = fraction * ceiling
        sweep.append(bench.fixed_rate("bare", rate))
        if rate <= 1.1 * app_ceiling or fraction == 0.5:
            sweep.append(bench.fixed_rate("app", rate))
    # And the portal at fractions of its own ceiling: where its p99 turns.
    for fraction in scale.portal_fractions:
        sweep.append(bench.fixed_rate("app", fraction * app_ceiling))
    results["sweep"] = sweep
    own_rate = scale.portal_fractions[0] * app_ceiling
    own_half = next(r for r in sweep if r.target == "app" and r.offered == own_rate)
    results["portal_half"] = {"rate": own_half.offered, "p99_ms": own_half.p99_ms}
    half = [r for r in sweep if r.offered == 0.5 * ceiling]
    results["half"] = {
        "rate": 0.5 * ceiling,
        "app_p99_ms": next(r.p99_ms for r in half if r.target == "app"),
        "bare_p99_ms": next(r.p99_ms for r in half if r.target == "bare"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny scale, a few seconds per measurement")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn sync workers (default 2)")
    parser.add_argument("--no-wrk", action="store_true",
                        help="use the Python load generator even if wrk is there")
    parser.add_argument("--out", type=Path,
                        help="the report (default docs/performance.md; smoke: a temp dir)")
    parser.add_argument("--json", type=Path, help="also write the raw figures as JSON")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a bridge option for the deployment, e.g. --set WORKER_THREADS=8")
    parser.add_argument("--report-from", type=Path, metavar="JSON",
                        help="measure nothing: write the report from figures saved with --json")
    parser.add_argument("--only", help=f"comma-separated phases to run, no report ({', '.join(PHASES)})")
    args = parser.parse_args(argv)
    if args.web_workers < 1:
        parser.error("--web-workers must be at least 1")

    only = set(args.only.split(",")) if args.only else None
    if only and not only <= set(PHASES):
        parser.error(f"--only takes {', '.join(PHASES)}")
    if args.report_from is not None:
        saved = report.revive(json.loads(args.report_from.read_text(encoding="utf-8")))
        doc = args.out or ROOT / "docs" / "performance.md"
        report.write(saved, doc, doc.with_name("performance-latency.png"))
        print(report.console(saved))
        print(f"report: {doc}")
        return 0
    if any("=" not in item for item in args.set):
        parser.error("--set takes NAME=VALUE")
    settings = tuple((k.upper(), v) for k, _, v in (item.partition("=") for item in args.set))
    scale = Scale.make(args.smoke, args.web_workers, not args.no_wrk, settings)
    results = run(scale, only)
    if only:
        print(json.dumps(report.jsonable(results), indent=2))
        return 0
    results["machine"]["gunicorn workers"] = str(args.web_workers)
    print(report.console(results))
    if args.out is not None:
        doc = args.out
    elif args.smoke:
        doc = Path(tempfile.mkdtemp(prefix="fai-bench-report-")) / "performance.md"
    else:
        doc = ROOT / "docs" / "performance.md"
    png = doc.with_name("performance-latency.png")
    report.write(results, doc, png)
    print(f"report: {doc}")
    if args.json is not None:
        args.json.write_text(json.dumps(report.jsonable(results), indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
