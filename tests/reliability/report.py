"""Figures for docs/reliability.md: each fault and attack records what was tried and what came of it.

A pytest plugin (tests/conftest.py loads it). ``--reliability-report=PATH``
writes the figures of the tests that ran to PATH as JSON when the session ends;
``scripts/reliability-report`` renders them into docs/reliability.md
(``make reliability-report`` does both). Without the option nothing is written.
"""

from __future__ import annotations

import json
import platform
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest

_LOCK = threading.Lock()
_FIGURES: dict[str, Figure] = {}


@dataclass
class Figure:
    """One row of the report."""

    key: str  # sorts the rows: "fault-1", "attack-3", ...
    what: str  # the fault or attack, in a few words
    requests: int  # requests sent to the bridge
    events: int  # events or ticket writes the model expects (0 for attacks)
    lost: int = 0
    duplicated: int = 0
    server_errors: int = 0  # answers 5xx other than the 503s a Redis outage calls for
    resent: int = 0  # deliveries repeated after a crash, absorbed by the alert key
    seconds: float = 0.0
    outcome: str = ""  # anything else worth a word: 503s during an outage, 429s, ...


def record(figure: Figure) -> None:
    """Keep the figure of a test that passed its assertions (call it last)."""
    with _LOCK:
        _FIGURES[figure.key] = figure


def figures() -> dict[str, Figure]:
    with _LOCK:
        return dict(_FIGURES)


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.monotonic()

    @property
    def seconds(self) -> float:
        return round(time.monotonic() - self.started, 1)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--reliability-report",
        metavar="PATH",
        default=None,
        help="write the figures of the reliability and hostile-input tests to PATH (JSON)",
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = session.config.getoption("--reliability-report", default=None)
    if not path:
        return
    rows: list[dict[str, Any]] = [asdict(f) for f in sorted(figures().values(), key=lambda f: f.key)]
    document = {
        "generated": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {_cpus()} CPU(s)",
        "exit_status": int(exitstatus),
        "rows": rows,
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def _cpus() -> int:
    import os

    return os.cpu_count() or 1
