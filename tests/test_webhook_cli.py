"""``flask autotask-ilert webhook install|remove`` in a real process, against the Autotask simulator."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from flask_autotask_ilert.autotask import AutotaskClient
from flask_autotask_ilert.testing.autotask_sim import (
    API_RESOURCE_ID,
    DEFAULT_CODE,
    DEFAULT_SECRET,
    DEFAULT_USER,
    WEBHOOK_FIELD_IDS,
    AutotaskState,
    create_autotask_simulator,
)
from flask_autotask_ilert.testing.servers import ServerThread

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "cli-callout-token-0123456789abcdef"
SECRET = "cli-hook-secret-0123456789"
URL = f"https://bridge.example.com/autotask-ilert/autotask-webhook/{TOKEN}"


@pytest.fixture
def tenant() -> Iterator[tuple[AutotaskState, str]]:
    state = AutotaskState()
    state.webhooks.configure({"retry_delay": 0, "max_attempts": 1, "timeout": 1})
    server = ServerThread(create_autotask_simulator(state)).start()
    yield state, f"{server.url}/atservicesrest"
    server.stop()


def flask(api_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "AUTOTASK_ILERT_CALLOUT_TOKEN": TOKEN,
        "AUTOTASK_ILERT_ILERT_INTEGRATION_KEY": "il1api-cli-integration-key",
        "AUTOTASK_ILERT_AUTOTASK_USERNAME": DEFAULT_USER,
        "AUTOTASK_ILERT_AUTOTASK_SECRET": DEFAULT_SECRET,
        "AUTOTASK_ILERT_AUTOTASK_INTEGRATION_CODE": DEFAULT_CODE,
        "AUTOTASK_ILERT_AUTOTASK_API_URL": api_url,
        "AUTOTASK_ILERT_AUTOTASK_WEBHOOK_SECRET": SECRET,
        "LOG_LEVEL": "WARNING",
    }
    env.pop("FLASK_APP", None)
    env["AUTOTASK_ILERT_REDIS_URL"] = "memory://"  # nothing here needs a shared store
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "examples.msp_portal", "autotask-ilert", "webhook", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    for secret in (TOKEN, SECRET, DEFAULT_SECRET, DEFAULT_CODE):
        assert secret not in done.stdout + done.stderr, f"{secret!r} printed by {args}"
    return done


def test_install_creates_the_webhook_and_remove_deletes_it(tenant: tuple[AutotaskState, str]) -> None:
    state, api_url = tenant
    done = flask(api_url, "install", "--url", URL)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "created TicketWebhook" in done.stdout and "/autotask-webhook/***" in done.stdout
    assert f"excluded resource: {API_RESOURCE_ID}" in done.stdout
    (hook,) = state.webhooks.webhooks()
    assert hook["webhookUrl"] == URL and hook["deactivationUrl"] == URL and hook["isActive"]
    assert hook["isSubscribedToCreateEvents"] and hook["isSubscribedToUpdateEvents"]
    assert not hook["isSubscribedToDeleteEvents"]
    assert state.webhooks.secret_of(hook["id"]) == SECRET
    names = {i: n for n, i in WEBHOOK_FIELD_IDS.items()}
    fields = {names[f["fieldID"]]: (f["isSubscribedField"], f["isDisplayAlwaysField"])
              for f in hook["fields"]}
    assert fields == {"status": (True, True), "priority": (True, False), "ticketNumber": (False, True)}
    assert [r["resourceID"] for r in hook["excludedResources"]] == [API_RESOURCE_ID]

    # The exclusion at work: a person's change is delivered, the API user's own PATCH is not.
    ticket = state.add_ticket("Disk full", status_label="New")
    state.webhooks.wait_for_deliveries(1)
    client = AutotaskClient(DEFAULT_USER, DEFAULT_SECRET, DEFAULT_CODE, api_url=api_url)
    client.update_ticket(ticket["id"], {"status": 8, "priority": 4})
    state.set_status(ticket["id"], "Complete")
    deliveries = state.webhooks.wait_for_deliveries(2)
    assert [d.action for d in deliveries] == ["Create", "Update"] and b'"status":5' in deliveries[1].body

    again = flask(api_url, "install", "--url", URL)
    assert again.returncode == 1 and "already delivers to this URL" in again.stderr
    assert len(state.webhooks.webhooks()) == 1

    removed = flask(api_url, "remove", "--url", URL)
    assert removed.returncode == 0 and f"deleted TicketWebhook {hook['id']}" in removed.stdout
    assert state.webhooks.webhooks() == []
    gone = flask(api_url, "remove", "--url", URL)
    assert gone.returncode == 1 and "no TicketWebhook delivers to this URL" in gone.stderr


def test_install_refuses_a_url_that_names_no_source(tenant: tuple[AutotaskState, str]) -> None:
    state, api_url = tenant
    done = flask(api_url, "install", "--url", "https://bridge.example.com/autotask-ilert/autotask-webhook/"
                 "not-the-token-000000000")
    assert done.returncode == 2 and "callout token of a configured source" in done.stderr
    callout_url = URL.replace("/autotask-webhook/", "/callout/")
    assert flask(api_url, "install", "--url", callout_url).returncode == 2
    assert state.webhooks.webhooks() == []
