"""The benchmark's outputs: the table on stdout, the plot, and docs/performance.md."""

from __future__ import annotations

import math
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

from .scenarios import Run

FINDINGS = Path(__file__).with_name("findings.md")


def machine(redis_version: str, wrk: str | None) -> dict[str, str]:
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            names = (line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
            model = next(names, "")
    except OSError:
        pass
    versions = {}
    for package in ("flask", "werkzeug", "gunicorn", "redis", "hiredis", "marshmallow"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    wrk_version = "not installed (Python load generator)"
    if wrk:
        out = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
        wrk_version = (out.stdout or out.stderr).split("[")[0].strip() or wrk
    return {
        "cpus": str(os.cpu_count()),
        "cpu model": model or platform.processor() or "unknown",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "redis-server": redis_version,
        "wrk": wrk_version,
        **{f"{k} (Python)" if k == "redis" else k: v for k, v in versions.items()},
    }


def _ms(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.1f} ms"


def _num(value: float, digits: int = 0) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def targets(results: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    s = results["summary"]
    prop = results["propagation"]
    page = results["time_to_page"]
    floor_share = s["ratio"] / max(1e-9, s["floor_ratio"])
    calls, hanging, burst = page["calls"], page["hanging"], page["burst"]
    rows = [
        ("callout throughput / the redis-py one-round-trip floor (a guard)", f"{floor_share:.2f}",
         ">= 0.65", floor_share >= 0.65),
        ("Redis round trips per callout", f"{results['round_trips']['per_callout']:.2f}", "1",
         abs(results["round_trips"]["per_callout"] - 1) < 0.005),
        (f"lone new ticket, instant simulators: callout to ilert, p50 of {page['lone']['tickets']}",
         _ms(page["lone"]["p50_ms"]), "<= 10 ms", page["lone"]["p50_ms"] <= 10),
    ]
    for outage in page["outages"]:
        rows.append((f"ilert outage of {outage['outage_s']:.0f} s: last held alert after recovery",
                     f"{outage['last_after_recovery_s']:.2f} s", "<= 5 s",
                     outage["last_after_recovery_s"] <= 5))
    rows += [
        (f"Autotask hanging, {hanging['alerts']} new tickets: p99 time to page",
         f"{hanging['p99_s']:.2f} s", f"<= {hanging['deadline_s'] + 1:.0f} s",
         hanging["p99_s"] <= hanging["deadline_s"] + 1),
        (f"{burst['low']} Low + {burst['critical']} Critical at {burst['limit']} a window: last Critical",
         f"{burst['critical_max_windows']:.2f} windows", "<= 2 windows", burst["critical_max_windows"] <= 2),
        ("... answered 429 by ilert, lost", f"{burst['rate_limited']}, {burst['lost']}", "0, 0",
         burst["rate_limited"] == 0 and burst["lost"] == 0),
        (f"Autotask calls per alert in a burst of {calls['alerts']} new tickets",
         f"{calls['per_alert']:.3f}", "<= 0.2", calls["per_alert"] <= 0.2),
        ("Autotask calls for a lone new ticket (picklists cached)", f"{calls['lone_calls']}", "1",
         calls["lone_calls"] == 1),
        ("Autotask calls per status-only callout", f"{prop['calls_per_status_callout']:.3f}", "0",
         prop["calls_per_status_callout"] == 0),
        ("Redis memory per tracked ticket", f"{results['memory']['bytes_per_ticket']:.0f} B", "<= 2 KB",
         results["memory"]["bytes_per_ticket"] <= 2048),
    ]
    return rows


def figures(results: dict[str, Any]) -> list[tuple[str, str]]:
    """Every figure the benchmark prints (the smoke test checks each label)."""
    s, half, fs = results["summary"], results["half"], results["fsync"]
    prop, drain, mem = results["propagation"], results["drain"], results["memory"]
    return [
        ("bare Flask ceiling", f"{_num(s['bare_throughput'])}/s, p50 {_ms(s['bare_p50_ms'])}, "
                               f"p99 {_ms(s['bare_p99_ms'])}"),
        ("callout throughput", f"{_num(s['app_throughput'])}/s, p50 {_ms(s['app_p50_ms'])}, "
                               f"p99 {_ms(s['app_p99_ms'])}"),
        ("throughput ratio", f"{s['ratio']:.2f} (CPU cost per callout, bare/portal: {s['cpu_ratio']:.2f})"),
        ("one-round-trip floor", f"{s['floor_ratio']:.2f} of the bare ceiling with redis-py, "
                                 f"{s['floor_socket_ratio']:.2f} with a plain socket"),
        ("p99 at half the ceiling", f"{_ms(half['app_p99_ms'])} at {half['rate']:.0f}/s "
                                    f"(bare: {_ms(half['bare_p99_ms'])}; portal at half its own "
                                    f"ceiling, {results['portal_half']['rate']:.0f}/s: "
                                    f"{_ms(results['portal_half']['p99_ms'])})"),
        ("propagation latency", f"p50 {_ms(prop['p50_ms'])}, p99 {_ms(prop['p99_ms'])} at "
                                f"{prop['rate']:.0f} new tickets/s"),
        ("drain rate", f"{_num(drain['rate'])} events/s ({drain['events']} events, 1 worker process, "
                       f"{drain['threads']} threads)"),
        ("Autotask calls per created alert", f"{prop['calls_per_alert']:.3f} (drain: "
                                             f"{drain['calls_per_alert']:.3f}; first alert of a worker "
                                             f"process: {prop['autotask_calls_first_alert']})"),
        ("Autotask calls per status-only callout", f"{prop['calls_per_status_callout']:.3f}"),
        ("Redis round trips per callout", f"{results['round_trips']['per_callout']:.2f} "
                                          f"{results['round_trips']['commands']}"),
        ("Redis memory per tracked ticket", f"{mem['bytes_per_ticket']:.0f} B at {mem['tickets']:,} tickets"),
        ("appendfsync always vs everysec", f"{_num(fs['always'])}/s vs {_num(fs['everysec'])}/s "
                                           f"({fs['ratio']:.2f}x)"),
        *page_figures(results["time_to_page"]),
    ]


def page_figures(page: dict[str, Any]) -> list[tuple[str, str]]:
    """The time-to-page figures (bench/time_to_page.py)."""
    out = [(f"ilert outage {o['outage_s']:.0f} s, recovery",
            f"last held alert {o['last_after_recovery_s']:.2f} s after ilert was back (p50 "
            f"{o['p50_after_recovery_s']:.2f} s, {o['alerts']} alerts); {o['attempts_during_outage']} "
            f"attempts at ilert while down ({o['attempts_per_minute']:.1f} a minute)")
           for o in page["outages"]]
    h, b, bo, c = page["hanging"], page["burst"], page["burst_outage"], page["calls"]
    out += [
        ("lone new tickets, callout to ilert", f"p50 {_ms(page['lone']['p50_ms'])}, p99 "
                                               f"{_ms(page['lone']['p99_ms'])} ({page['lone']['tickets']} "
                                               "tickets one at a time, instant simulators)"),
        ("Autotask hanging, time to page", f"p50 {h['p50_s']:.2f} s, p99 {h['p99_s']:.2f} s, max "
                                           f"{h['max_s']:.2f} s ({h['alerts']} new tickets, deadline "
                                           f"{h['deadline_s']:.0f} s)"),
        ("burst, Critical time to page",
         f"max {b['critical_max_s']:.1f} s = {b['critical_max_windows']:.2f} windows of "
         f"{b['window_s']:.0f} s (p50 {b['critical_p50_s']:.1f} s); last Low {b['low_max_s']:.1f} s; "
         f"{b['rate_limited']} 429, {b['lost']} lost"),
        ("burst with an ilert outage",
         f"last Critical {bo['critical_max_s']:.1f} s, last Low {bo['low_max_s']:.1f} s; "
         f"{bo['rate_limited']} 429, {bo['lost']} lost"),
        ("Autotask calls per alert in a burst",
         f"{c['per_alert']:.3f} ({c['calls']} calls, {c['queries']} queries, {c['alerts']} alerts; "
         f"lone ticket {c['lone_calls']})"),
    ]
    return out


def table(rows: Sequence[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [" | ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def console(results: dict[str, Any]) -> str:
    figs = table(figures(results), ("figure", "value"))
    goals = table(
        [(name, value, goal, "pass" if ok else "MISS") for name, value, goal, ok in targets(results)],
        ("target", "measured", "goal", ""),
    )
    return f"{figs}\n\n{goals}\n"


def _pyplot() -> Any:
    """matplotlib's pyplot drawing to files only, or None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _save(plt: Any, fig: Any, path: Path) -> None:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def plot(results: dict[str, Any], path: Path) -> bool:
    """Latency against offered load, both endpoints; False when matplotlib is missing."""
    plt = _pyplot()
    if plt is None:
        return False
    sweep: list[Run] = results["sweep"]
    s = results["summary"]
    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=110)
    styles = {"app": ("tab:red", "portal (bridge)"), "bare": ("tab:blue", "bare Flask")}
    for target, (colour, label) in styles.items():
        runs = sorted((r for r in sweep if r.target == target), key=lambda r: r.offered or 0)
        if not runs:
            continue
        xs = [r.offered or 0.0 for r in runs]
        ax.plot(xs, [r.p50_ms for r in runs], "o--", color=colour, alpha=0.6, label=f"{label} p50")
        ax.plot(xs, [r.p99_ms for r in runs], "s-", color=colour, label=f"{label} p99")
    ax.axvline(s["bare_throughput"], color="tab:blue", linestyle=":", linewidth=1)
    ax.axvline(s["app_throughput"], color="tab:red", linestyle=":", linewidth=1)
    ax.axvline(results["half"]["rate"], color="grey", linestyle="-.", linewidth=1)
    ax.axhline(25, color="grey", linestyle="--", linewidth=1)
    ax.annotate("p99 target 25 ms", (0, 25), xycoords=("axes fraction", "data"), xytext=(4, 3),
                textcoords="offset points", fontsize=8, color="grey")
    ax.annotate(" half the bare ceiling", (results["half"]["rate"], 1), xycoords=("data", "axes fraction"),
                xytext=(2, -12), textcoords="offset points", fontsize=8, color="grey")
    ax.set_yscale("log")
    ax.set_xlabel("offered load (callouts/s, open loop); dotted: saturation throughput")
    ax.set_ylabel("latency (ms)")
    ax.set_title(f"Callout latency against offered load, gunicorn {results['scale']['web_workers']} "
                 f"sync workers, {results['machine']['cpus']} cores")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    _save(plt, fig, path)
    return True


def plot_time_to_page(results: dict[str, Any], path: Path) -> bool:
    """Each alert's time from callout to ilert over the burst with an ilert outage."""
    plt = _pyplot()
    if plt is None:
        return False
    run = results["time_to_page"]["burst_outage"]
    fig, ax = plt.subplots(figsize=(8, 4.4), dpi=110)
    for critical, colour, label in ((False, "tab:blue", "Low"), (True, "tab:red", "Critical")):
        points = [(at + wait, wait) for at, wait, is_critical in run["points"] if is_critical == critical]
        ax.scatter([x for x, _ in points], [y for _, y in points], s=10, color=colour, label=label, alpha=0.8)
    if run.get("outage_span"):
        start, end = run["outage_span"]
        ax.axvspan(start, end, color="grey", alpha=0.2, label="ilert answers 503")
    ax.set_xlabel("seconds since the burst began (when ilert accepted the alert)")
    ax.set_ylabel("time from callout to ilert (s)")
    ax.set_title(f"{run['low']} Low + {run['critical']} Critical tickets, ilert budget {run['limit']} "
                 f"per {run['window_s']:.0f} s")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    _save(plt, fig, path)
    return True


def markdown(results: dict[str, Any], plot_name: str | None, page_plot: str | None = None) -> str:
    s, half, prop, drain = results["summary"], results["half"], results["propagation"], results["drain"]
    mem, fs, rt = results["memory"], results["fsync"], results["round_trips"]
    out: list[str] = []
    add = out.append
    add("# Performance\n")
    add("Measured by `make bench` (`python -m bench`), which starts its own `redis-server`, the "
        "example portal and a bare Flask endpoint under the same gunicorn settings "
        f"(`examples/gunicorn.conf.py`, {results['scale']['web_workers']} sync workers), the ilert "
        "and Autotask simulators (no latency, ilert rate limit off) and the delivery worker, all "
        "on loopback. `python -m bench --smoke` runs every measurement at a tiny scale; the tests "
        "run it so the benchmark cannot rot. This page is written by the benchmark: run "
        "`make bench` again to refresh it.\n")
    add("## Machine\n")
    add("| | |\n|---|---|")
    for key, value in results["machine"].items():
        add(f"| {key} | {value} |")
    add("\nThe load generator, both servers, Redis and the simulators share these cores; other "
        "work on the machine shows up as noise, which is why saturation runs alternate between the "
        "endpoints and report medians.\n")
    add("## Targets\n")
    add("| target | measured | goal | |\n|---|---|---|---|")
    for name, value, goal, ok in targets(results):
        add(f"| {name} | {value} | {goal} | {'pass' if ok else '**missed**'} |")
    add("\nRetired: callout throughput as a goal (now the guard above), the drain rate per worker "
        "process (ilert takes 50 events a minute per key) and 300 B per tracked ticket (the budget is "
        "2 KB). The time-to-page targets are measured in section 6 with the simulators at realistic "
        "speeds. Where a target is missed, the findings at the end of this page say why, with "
        "measurements, and how loaded the machine was.\n")
    if page_plot:
        add(f"![Time from callout to ilert, burst with an ilert outage]({page_plot})\n")
    add(f"\nFor scale: in the same rounds, an endpoint that makes only the one Redis round trip and "
        f"nothing of the bridge reaches {s['floor_ratio']:.2f} of the bare ceiling through redis-py "
        f"and {s['floor_socket_ratio']:.2f} through a plain socket (section 1).\n")
    add("## 1. Callout throughput and latency\n")
    add(f"Saturation, closed loop ({results['saturation'][0].tool}, {results['scale']['connections']} "
        "connections), the realistic mix: new tickets, status changes, repeats and rejected statuses "
        f"over {results['scale']['tickets_per_round']:,} tickets per round, fresh ticket ids every "
        f"round. Answers: {_statuses(results)}. No delivery worker runs during these runs.\n")
    add("| endpoint | run | callouts/s | p50 | p99 | CPU per callout |\n|---|---|---|---|---|---|")
    for run in results["saturation"]:
        cpu = ", ".join(f"{k} {v:.0f} µs" for k, v in run.cpu_us.items())
        add(f"| {run.target} | {run.tool} | {run.throughput:,.0f} | {_ms(run.p50_ms)} | "
            f"{_ms(run.p99_ms)} | {cpu} |")
    add(f"\nMedians: portal **{s['app_throughput']:,.0f}/s**, bare Flask **{s['bare_throughput']:,.0f}/s**; "
        f"ratio **{s['ratio']:.2f}** (median of the per-round ratios). The CPU all processes spend per "
        f"callout (web workers, Redis, wrk) gives {s['cpu_ratio']:.2f} (bare/portal): with every core "
        "busy, throughput follows it.\n")
    add("The floors are the bare endpoint plus the one Redis round trip every callout must make "
        "before it is answered (`bench/floor.py`: one `EVALSHA` of a script that writes the ticket "
        f"id under one key and does nothing else): **{s['floor_ratio']:.2f}** of the bare ceiling "
        f"through redis-py with the bridge's socket settings, **{s['floor_socket_ratio']:.2f}** "
        "through one plain blocking socket per process "
        "(the least any Python client can spend). No callout endpoint that records the callout in "
        "Redis before it answers can do better than these under the same gunicorn settings, "
        "whatever else it does or does not do; the portal reaches "
        f"{s['ratio'] / max(1e-9, s['floor_ratio']):.2f} of the redis-py floor.\n")
    add("Latency against offered load (open loop: each request is due at a fixed time and its "
        "latency counts from then, so queueing is not hidden):\n")
    if plot_name:
        add(f"![Latency against offered load]({plot_name})\n")
    add("| offered/s | endpoint | achieved/s | p50 | p99 | errors | load generator CPU per request |\n"
        "|---|---|---|---|---|---|---|")
    for run in sorted(results["sweep"], key=lambda r: (r.offered or 0, r.target)):
        generator = run.cpu_us.get("load generator")
        add(f"| {run.offered:,.0f} | {run.target} | {run.throughput:,.0f} | {_ms(run.p50_ms)} | "
            f"{_ms(run.p99_ms)} | {run.errors} | {'' if generator is None else f'{generator:.0f} µs'} |")
    add("\nThe open-loop client is Python (wrk cannot hold a fixed rate); it takes the CPU shown "
        "from the same two cores, two to three times what wrk takes per request.\n")
    add(f"\nAt half the bare ceiling ({half['rate']:,.0f}/s) the portal's p99 is "
        f"**{_ms(half['app_p99_ms'])}** (bare: {_ms(half['bare_p99_ms'])}). At half the portal's own "
        f"ceiling ({results['portal_half']['rate']:,.0f}/s) it is {_ms(results['portal_half']['p99_ms'])}; "
        "whenever the ratio is below 0.5, half the bare ceiling is more than the portal can take, "
        "and its p99 there is queueing.\n")
    add("## 2. Propagation and drain\n")
    add(f"{prop['tickets']:,} new tickets at {prop['offered']:.0f}/s (open loop), one worker process with "
        "the default settings, each ticket read from the Autotask simulator: from the callout's answer "
        "to the ALERT accepted by the ilert simulator, "
        f"p50 **{_ms(prop['p50_ms'])}**, p99 **{_ms(prop['p99_ms'])}**, max {_ms(prop['max_ms'])} "
        f"(callout p99 meanwhile {_ms(prop['callout_p99_ms'])}; {prop['deferred']} events put off "
        "because every Autotask request place was taken).\n")
    add(f"Drain: a backlog of {drain['events']:,} events (40% creates, each with an Autotask read; "
        "30% accepts; 30% resolves) emptied by one worker process with "
        f"{drain['threads']} threads at **{_num(drain['rate'])} events/s** "
        f"({_num(drain['rate_with_startup'])}/s counting the process start). CPU per event meanwhile: "
        f"{', '.join(f'{k} {v:.0f} µs' for k, v in drain.get('cpu_us', {}).items())}; the worker "
        f"process was busy {drain.get('worker_busy', float('nan')):.0%} of one core (one process "
        "runs its threads on one core at a time), so one core of its own would carry about "
        f"{_num(1e6 / drain.get('cpu_us', {}).get('worker', float('nan')))} events/s.\n")
    add("## 3. Autotask API calls\n")
    add(f"- per created alert, picklists cached: **{prop['calls_per_alert']:.3f}** "
        f"({prop['autotask_calls']} calls for {prop['tickets']} alerts; during the drain "
        f"{drain['calls_per_alert']:.3f})")
    add(f"- the first alert of a worker process: {prop['autotask_calls_first_alert']} (the ticket, and "
        "the ticket picklists, cached for 10 minutes)")
    add(f"- per status-only callout: **{prop['calls_per_status_callout']:.3f}** "
        f"({prop['status_callouts']} accept and resolve callouts)\n")
    add("## 4. Redis: round trips and memory\n")
    add(f"Redis MONITOR while {rt['callouts']} callouts of the mix were answered by warm web workers: "
        f"**{rt['per_callout']:.2f}** commands per callout, by command: `{rt['commands']}` "
        "(commands run inside scripts not counted).\n")
    add(f"Memory at {mem['tickets']:,} tickets of the mix, every event delivered (ticket states "
        f"{mem['states']}):\n")
    add("| configuration | bytes per ticket | hash encodings (sample) |\n|---|---|---|")
    variants = [("defaults: audit trail of up to "
                 f"{mem['audit_entries']} entries, hash-max-listpack-value {mem['hash_max_listpack_value']}",
                 mem)]
    if results.get("memory_no_audit"):
        variants.append(("AUDIT_ENTRIES=0 (no audit trail)", results["memory_no_audit"]))
    for name, figures_ in variants:
        add(f"| {name} | **{figures_['bytes_per_ticket']:.0f}** | {figures_['encodings']} |")
    add(f"\nWith the defaults the audit field averages {mem['audit_bytes_mean']:.0f} bytes; "
        f"`MEMORY USAGE` by state: {_rounded(mem['memory_usage_by_state'])}.\n")
    add("Method: a sample of "
        f"{results['scale']['memory_sample']:,} tickets goes through the real code (the callout view, "
        "the scripts, the worker with an ilert that accepts at once); the other tickets are DUMP/RESTORE "
        "copies of the sample's keys under new ids, which keeps each key's encoding and size. "
        "`used_memory` delta divided by the number of tickets.\n")
    add("## 5. appendfsync always against everysec\n")
    add(f"Portal saturation throughput with the bench Redis restarted for each setting: `always` "
        f"**{_num(fs['always'])}/s** (p99 {_ms(fs['p99_ms']['always'])}), `everysec` "
        f"**{_num(fs['everysec'])}/s** (p99 {_ms(fs['p99_ms']['everysec'])}): "
        f"always/everysec = **{fs['ratio']:.2f}**.\n")
    add(page_markdown(results["time_to_page"]))
    if FINDINGS.exists():
        add(FINDINGS.read_text(encoding="utf-8").strip() + "\n")
    return "\n".join(out)


def page_markdown(page: dict[str, Any]) -> str:
    out = ["## 6. Time to page\n",
           "One worker process (4 threads), the ilert simulator answering in about "
           "80 ms and the Autotask simulator in about 150 ms (the bridge keeps to Autotask's three "
           "concurrent requests itself); from each callout's answer to the ALERT accepted by the ilert "
           "simulator. The burst scenarios run against a deployment with an ilert budget of "
           f"{page['burst']['limit']} events per {page['burst']['window_s']:.0f} s window, which the "
           "simulator enforces with 429.\n",
           "| scenario | figure |\n|---|---|"]
    out += [f"| {label} | {value} |" for label, value in page_figures(page)]
    out.append("")
    return "\n".join(out)


def _statuses(results: dict[str, Any]) -> str:
    counts: dict[int, int] = {}
    for run in results["sweep"]:
        if run.target == "app":
            for code, n in run.statuses.items():
                counts[code] = counts.get(code, 0) + n
    total = sum(counts.values()) or 1
    return ", ".join(f"{code} {100 * n / total:.0f}%" for code, n in sorted(counts.items()))


def _rounded(values: dict[str, float]) -> dict[str, int]:
    return {k: round(v) for k, v in values.items()}


def jsonable(results: dict[str, Any]) -> dict[str, Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, Run):
            return asdict(value)
        if isinstance(value, dict):
            return {str(k): convert(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [convert(v) for v in value]
        if isinstance(value, float) and math.isnan(value):
            return None
        return value

    return dict(convert(results))


def revive(saved: dict[str, Any]) -> dict[str, Any]:
    """Figures saved with ``--json``, with the runs as objects again."""
    results = dict(saved)
    for key in ("saturation", "sweep"):
        results[key] = [
            Run(**{**run, "statuses": {int(k): v for k, v in run.get("statuses", {}).items()}})
            for run in saved.get(key, [])
        ]
    return results


def write(results: dict[str, Any], doc: Path, png: Path) -> None:
    plotted = plot(results, png)
    name = os.path.relpath(png, doc.parent) if plotted else None
    page_png = png.with_name("performance-time-to-page.png")
    page_name = os.path.relpath(page_png, doc.parent) if plot_time_to_page(results, page_png) else None
    if not plotted:
        print("plot skipped: matplotlib is not installed", file=sys.stderr)
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(markdown(results, name, page_name), encoding="utf-8")
