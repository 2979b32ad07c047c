"""What a person sees when the bridge cannot work: one line that says what to fix, exit 1.

Run as an operator runs it: the real ``flask`` command in a subprocess, with the
example portal as the app and its configuration in the environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import free_port

pytestmark = pytest.mark.realprocess

ROOT = Path(__file__).parents[1]
TOKEN = "cli-errors-callout-token-0123456789"
KEY = "il-cli-errors-integration-key-0123"
REDIS_PASSWORD = "redis-password-never-printed"
AT_SECRET = "at-cli-errors-secret-0123456789"
SECRETS = (TOKEN, KEY, REDIS_PASSWORD, AT_SECRET)

#: Every command, with arguments it would run with.
COMMANDS = (
    ("queue",), ("status", "5"), ("dead-letters",), ("replay", "--all"), ("forget", "5", "--yes"),
    ("worker", "--burst"), ("worker",), ("check",),
)


def flask(*args: str, **config: str) -> subprocess.CompletedProcess[str]:
    """``flask autotask-ilert ARGS`` against the example portal, configured by ``config``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOTASK_ILERT_")}
    env.update({"FLASK_APP": "examples.msp_portal", "PYTHONPATH": str(ROOT), "LOG_LEVEL": "WARNING"})
    env.update({f"AUTOTASK_ILERT_{name.upper()}": value for name, value in config.items()})
    return subprocess.run([sys.executable, "-m", "flask", "autotask-ilert", *args], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    output = done.stdout + done.stderr
    for secret in SECRETS:
        assert secret not in output
    assert "Traceback" not in output
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    return lines[0]


@pytest.mark.parametrize("args", [("--help",), *COMMANDS], ids=" ".join)
def test_a_broken_configuration_is_one_line(args: tuple[str, ...]) -> None:
    done = flask(*args, callout_token="too-short", ilert_integration_key=KEY)
    line = one_line(done)
    assert done.returncode == 1
    assert line.startswith("Error: ") and "CALLOUT_TOKEN must be at least 16" in line


def test_no_source_at_all_says_which_options_to_set() -> None:
    done = flask("--help")
    line = one_line(done)
    assert done.returncode == 1
    assert "AUTOTASK_ILERT_CALLOUT_TOKEN" in line and "AUTOTASK_ILERT_ILERT_INTEGRATION_KEY" in line


@pytest.mark.parametrize("args", [c for c in COMMANDS if c not in (("worker",), ("check",))],
                         ids=" ".join)
def test_redis_out_of_reach_is_one_line(args: tuple[str, ...]) -> None:
    """A running worker waits Redis out instead (it may start before Redis does); check
    reports Redis as one of its checks."""
    url = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{free_port()}/0"
    done = flask(*args, callout_token=TOKEN, ilert_integration_key=KEY, redis_url=url)
    line = one_line(done)
    assert done.returncode == 1
    assert line.startswith("Error: Redis does not answer")
    assert "AUTOTASK_ILERT_REDIS_URL" in line


def test_check_gives_one_line_per_failure_when_redis_ilert_and_autotask_are_out_of_reach() -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    done = flask("check", callout_token=TOKEN, ilert_integration_key=KEY,
                 redis_url=f"redis://:{REDIS_PASSWORD}@127.0.0.1:{free_port()}/0",
                 ilert_api_url=f"{closed}/api", autotask_username="api@example.com",
                 autotask_secret=AT_SECRET, autotask_integration_code="CLI-ERRORS-CODE",
                 autotask_api_url=f"{closed}/atservicesrest")
    output = done.stdout + done.stderr
    assert done.returncode == 1
    assert "Traceback" not in output
    for secret in (*SECRETS, "CLI-ERRORS-CODE"):
        assert secret not in output
    failures = [line.strip() for line in output.splitlines() if line.strip().startswith("FAIL ")]
    assert any(f.split()[1] == "redis" for f in failures), output
    assert any(f.split()[1] == "ilert" and "unreachable" in f for f in failures), output
    assert any(f.split()[1] == "autotask" and "network" in f for f in failures), output
