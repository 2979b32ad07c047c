"""Autotask webhooks in the real deployment: gunicorn (2 workers), a separate worker process,
redis-server and the simulators; the webhook is installed with the CLI, as an operator would."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest

from tests.conftest import ROOT
from tests.deployment import Deployment, wait_until

pytestmark = pytest.mark.realprocess  # slow; deselect with -m "not realprocess"

SECRET = "e2e-hook-secret-0123456789abcdef"


@pytest.fixture
def deployment(deploy: Callable[..., Deployment]) -> Deployment:
    return deploy(extra_env={"AUTOTASK_ILERT_AUTOTASK_WEBHOOK_SECRET": SECRET})


def test_signed_webhooks_page_once_and_resolve(deployment: Deployment) -> None:
    deployment.start(workers=1)
    at = deployment.autotask
    at.callout_url = None  # webhooks are the only way in
    at.webhooks.configure({"retry_delay": 0.2, "max_attempts": 5, "timeout": 5})
    url = f"{deployment.base_url}/autotask-ilert/autotask-webhook/{deployment.token}"
    install = subprocess.run(
        [sys.executable, "-m", "flask", "--app", deployment.flask_app, "autotask-ilert", "webhook",
         "install", "--url", url],
        cwd=ROOT, env=deployment.env(), capture_output=True, text=True, timeout=60, check=False,
    )
    assert install.returncode == 0, install.stdout + install.stderr

    ticket = at.add_ticket("VPN <down> & 'branch' Zürich", status_label="New")
    at.set_status(ticket["id"], "Complete")
    deliveries = at.webhooks.wait_for_deliveries(2, timeout=30)
    assert [d.attempts[-1] for d in deliveries] == [202, 202], deliveries
    # Autotask delivering the same event again (a late answer) changes nothing.
    assert at.webhooks.redeliver(deliveries[0].sequence) == 200

    key = f"autotask-{ticket['id']}"

    def sent() -> list[str]:
        return [e.body["eventType"] for e in deployment.ilert.events()
                if e.body.get("alertKey") == key and e.status_code is not None and e.status_code < 300]

    wait_until(lambda: len(sent()) >= 2, 30, what="ALERT and RESOLVE at ilert")
    alert = deployment.ilert.alert_for(key)
    assert alert is not None and alert.status == "RESOLVED"
    assert alert.summary.endswith(ticket["title"])
    assert sent() == ["ALERT", "RESOLVE"]
    logs = deployment.logs()
    assert SECRET not in logs and deployment.token not in logs
