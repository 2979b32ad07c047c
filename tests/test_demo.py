"""The demo must keep telling the truth: the story it prints, its exit code, no secrets.

``flask_autotask_ilert.testing.demo`` holds the demo (it ships in the wheel and
runs against a minimal host app); ``examples/demo.py``, which ``make demo`` runs,
plays the same story through the example portal.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from examples import demo as example_demo
from flask_autotask_ilert.testing import demo

ROOT = Path(__file__).parents[1]

ANSWERS = [
    ("202", "create"),  # A created as New
    ("202", "accept"),  # A -> In Progress
    ("200", "nothing"),  # the same callout again
    ("202", "resolve"),  # A -> Complete
    ("202", "create"),  # B created as New
    ("202", "resolve"),  # B -> Complete: no invented ACCEPT
    ("400", "reject"),  # C created as Waiting Customer
    ("202", "create"),  # D created as New: routed by its issue type
    ("202", "resolve"),  # D -> Complete
]


def run_in_process(
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    create_app: Callable[[dict[str, Any]], Flask] = example_demo.create_portal,
) -> tuple[int, str, dict[str, Any]]:
    """Run ``demo.main`` and return its exit code, its output and the config it built the app with."""
    seen: dict[str, Any] = {}

    def recording_create_app(config: dict[str, Any]) -> Flask:
        seen.update(config)
        return create_app(config)

    code = demo.main(argv, create_app=recording_create_app, app_name="example app")
    out, err = capsys.readouterr()
    return code, out + err, seen


@pytest.mark.parametrize(
    "create_app", [example_demo.create_portal, demo.create_host_app], ids=["portal", "minimal"]
)
def test_demo_tells_the_whole_story(
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    create_app: Callable[[dict[str, Any]], Flask],
) -> None:
    code, out, config = run_in_process(capsys, [], create_app)

    assert code == 0, out
    assert "Demo OK" in out
    assert re.findall(r"bridge answered (\d{3}) (\w+)", out) == ANSWERS

    received: dict[str, list[str]] = {}
    for event_type, key in re.findall(r"ilert received  (\w+) (autotask-\d+)", out):
        received.setdefault(key, []).append(event_type)
    assert received == {
        "autotask-10001": ["ALERT", "ACCEPT", "RESOLVE"],
        "autotask-10002": ["ALERT", "RESOLVE"],
        "autotask-10004": ["ALERT", "RESOLVE"],
    }
    assert out.count("ilert received  nothing") == 2
    assert re.search(r'autotask-10001 +RESOLVED +HIGH +"\[T\d{8}\.\d{4}\] Server DC01 unreachable"', out)
    assert re.search(r'autotask-10002 +RESOLVED +LOW +"\[T\d{8}\.\d{4}\] Printer on floor 2 offline"', out)
    assert re.search(r"Autotask API calls made: \d+ ", out)
    assert ('Routing: ticket D\'s events went to the network team\'s key (rule 0); summary from the '
            'rule\'s template: "Network (Monitoring Alert): VPN concentrator down"') in out
    assert re.search(r'autotask-10004 +RESOLVED +HIGH +"Network \(Monitoring Alert\): VPN concentrator down"',
                     out)
    assert "README.md" in out

    token = config["AUTOTASK_ILERT_CALLOUT_TOKEN"]
    key = config["AUTOTASK_ILERT_ILERT_INTEGRATION_KEY"]
    network_key = config["AUTOTASK_ILERT_ROUTES"][0]["integration_key"]
    assert len(token) >= 16 and key and network_key
    for secret in (token, key, network_key):
        assert secret not in out
        assert secret not in caplog.text
    assert "/autotask-ilert/callout/<token>" in out
    assert config["AUTOTASK_ILERT_REDIS_URL"] == "memory://"

    # Shut down for real: no delivery thread left behind.
    assert not [t for t in threading.enumerate() if t.name.startswith("autotask-ilert")]


def test_demo_fails_when_a_step_does_not_happen(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Claim the duplicate callout should page: the bridge (rightly) does not, so the demo must fail.
    steps = list(demo.STEPS)
    steps[2] = dataclasses.replace(steps[2], code=202, action="accept", event="ACCEPT")
    monkeypatch.setattr(demo, "STEPS", tuple(steps))
    monkeypatch.setattr(demo, "EVENT_TIMEOUT", 0.5)

    code, out, _ = run_in_process(capsys, [])

    assert code == 1
    assert "Demo FAILED" in out
    assert "expected 202 accept" in out


@pytest.mark.parametrize(
    ("module", "host"),
    [("examples.demo", "example app"), ("flask_autotask_ilert.testing.demo", "minimal host app")],
)
def test_demo_runs_as_a_module(module: str, host: str) -> None:
    # A real Redis URL in the environment must not be picked up: the demo uses its own store.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOTASK_ILERT_")}
    env["AUTOTASK_ILERT_REDIS_URL"] = "redis://127.0.0.1:1/0"
    proc = subprocess.run(
        [sys.executable, "-m", module],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Demo OK" in proc.stdout
    assert f"bridge ({host})" in proc.stdout
    assert proc.stderr == ""
