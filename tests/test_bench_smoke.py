"""The benchmark (``make bench``) runs end to end and prints every figure, at a tiny scale.

No timing is asserted: the figures of a smoke run mean nothing, and the machine
may be busy. What is checked is that every measurement still runs against the
current code and produces its number, so the benchmark cannot rot.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.report import figures, revive

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.realprocess,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="the benchmark starts a redis-server"),
]


def test_the_benchmark_runs_and_prints_every_figure(tmp_path: Path) -> None:
    report = tmp_path / "performance.md"
    raw = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(report), "--json", str(raw)],
        cwd=ROOT, capture_output=True, text=True, timeout=420, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    results = json.loads(raw.read_text())
    labels = [label for label, _ in figures(revive(results))]
    assert len(labels) >= 10
    for label in labels:
        assert label in done.stdout, label
    assert "MISS" in done.stdout or "pass" in done.stdout  # the targets table

    numbers = [
        results["summary"]["app_throughput"], results["summary"]["bare_throughput"],
        results["summary"]["ratio"], results["half"]["app_p99_ms"],
        results["summary"]["floor_ratio"], results["summary"]["floor_socket_ratio"],
        results["propagation"]["p50_ms"], results["propagation"]["p99_ms"],
        results["drain"]["rate"], results["propagation"]["calls_per_alert"],
        results["propagation"]["calls_per_status_callout"], results["round_trips"]["per_callout"],
        results["memory"]["bytes_per_ticket"], results["fsync"]["always"], results["fsync"]["everysec"],
    ]
    page = results["time_to_page"]
    numbers += [outage["last_after_recovery_s"] for outage in page["outages"]]
    numbers += [page["lone"]["p50_ms"], page["hanging"]["p99_s"], page["burst"]["critical_max_windows"],
                page["burst_outage"]["critical_max_s"], page["calls"]["per_alert"]]
    assert len(page["outages"]) == 2 and page["burst"]["lost"] == 0 and page["burst_outage"]["lost"] == 0
    assert all(isinstance(n, int | float) and math.isfinite(n) for n in numbers), numbers
    assert results["round_trips"]["commands"], "MONITOR saw no command"

    text = report.read_text()
    assert "## Targets" in text and "## 5. appendfsync" in text and "## 6. Time to page" in text
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / "performance-latency.png").stat().st_size > 1000
        assert "performance-latency.png" in text
        assert (tmp_path / "performance-time-to-page.png").stat().st_size > 1000
        assert "performance-time-to-page.png" in text

    # The report can be written again from the saved figures, measuring nothing.
    again = tmp_path / "again.md"
    rewritten = subprocess.run(
        [sys.executable, "-m", "bench", "--report-from", str(raw), "--out", str(again)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert rewritten.returncode == 0, rewritten.stderr[-2000:]
    assert again.read_text() == text

