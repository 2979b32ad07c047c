"""The bridge inside a portal that is not a Flask app: ``flask_autotask_ilert.wsgi``
and the plain WSGI example that mounts it under ``/alerts`` with DispatcherMiddleware."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.test import Client

from examples.other_wsgi import HOME, MOUNT, create_portal
from examples.other_wsgi import portal as portal_pages
from flask_autotask_ilert import ConfigurationError, get_bridge
from flask_autotask_ilert.testing.ilert_sim import IlertState, create_ilert_simulator
from flask_autotask_ilert.testing.servers import ServerThread
from flask_autotask_ilert.wsgi import create_app
from tests.deployment import Deployment, wait_until

from .conftest import INTEGRATION_KEY, TOKEN, data_text

ROOT = Path(__file__).resolve().parents[1]
FORM = "application/x-www-form-urlencoded"
NEW = data_text("callout-new.txt")  # ticket 7865
CALLOUT = f"{MOUNT}/autotask-ilert/callout/{TOKEN}"
FACTORY = "flask_autotask_ilert.wsgi:create_app()"


@pytest.fixture
def bridge_config(redis_server: str, redis_prefix: str) -> dict[str, Any]:
    """The bridge's keys, as a host would keep them: the test Redis, under the test's prefix."""
    return {
        "AUTOTASK_ILERT_CALLOUT_TOKEN": TOKEN,
        "AUTOTASK_ILERT_ILERT_INTEGRATION_KEY": INTEGRATION_KEY,
        "AUTOTASK_ILERT_ILERT_API_URL": "http://ilert.invalid",
        "AUTOTASK_ILERT_REDIS_URL": redis_server,
        "AUTOTASK_ILERT_REDIS_PREFIX": redis_prefix,
    }


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No AUTOTASK_ILERT_* variable from the machine running the tests."""
    for name in list(os.environ):
        if name.startswith("AUTOTASK_ILERT_"):
            monkeypatch.delenv(name)
    return monkeypatch


def mounted_bridge(portal: DispatcherMiddleware) -> Flask:
    app = portal.mounts[MOUNT]
    assert isinstance(app, Flask)
    return app


def post(client: Client, body: str, url: str = CALLOUT) -> Any:
    return client.post(url, data=body, content_type=FORM)


# -- in one process ---------------------------------------------------------------------------


def test_importing_the_module_builds_no_app_and_reads_no_environment() -> None:
    env = {**os.environ, "AUTOTASK_ILERT_WORKER_THREADS": "not-a-number",
           "AUTOTASK_ILERT_NOT_AN_OPTION": "1"}
    probe = ("import flask_autotask_ilert.wsgi as m; "
             "print(sorted(n for n in ('app', 'application') if hasattr(m, n)))")
    done = subprocess.run([sys.executable, "-c", probe], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_mounted_bridge_answers_callouts_under_the_prefix_with_the_lifecycle(
    bridge_config: dict[str, Any],
) -> None:
    portal = create_portal(bridge_config)
    client = Client(portal)
    walk = [(NEW, 202, "create", "PENDING"),
            (NEW, 200, "nothing", "PENDING"),
            (NEW.replace("New", "In+Progress"), 202, "accept", "ACCEPTED")]
    for body, code, action, state in walk:
        response = post(client, body)
        assert (response.status_code, response.json) == (
            code, {"ticket": 7865, "action": action, "state": state})
    store = get_bridge(mounted_bridge(portal)).store
    assert [e["action"] for e in store.queued("default", 7865)] == ["create", "accept"]
    assert store.mapping("default", 7865) is not None


def test_the_portal_keeps_its_own_paths_and_the_bridge_is_only_under_the_mount(
    bridge_config: dict[str, Any],
) -> None:
    portal = create_portal(bridge_config)
    client = Client(portal)
    home = client.get("/")
    assert (home.status_code, home.data) == (200, HOME)
    assert client.get("/billing").status_code == 404

    # The bridge's own path at the portal's root is the portal's, which knows no callouts.
    unmounted = post(client, NEW, url=f"/autotask-ilert/callout/{TOKEN}")
    assert (unmounted.status_code, unmounted.data) == (404, b"Not found.\n")
    assert get_bridge(mounted_bridge(portal)).store.queued("default", 7865) == []

    health = client.get(f"{MOUNT}/autotask-ilert/healthz")
    assert health.status_code == 200 and health.json is not None
    spec = client.get(f"{MOUNT}/autotask-ilert/openapi.json").json
    assert "/autotask-ilert/callout/{token}" in spec["paths"]
    assert client.get(f"{MOUNT}/").status_code == 404  # the bridge app serves nothing else


def test_url_prefix_slash_puts_the_endpoints_right_under_the_mount(
    bridge_config: dict[str, Any],
) -> None:
    portal = create_portal({**bridge_config, "AUTOTASK_ILERT_URL_PREFIX": "/"})
    client = Client(portal)
    response = post(client, NEW, url=f"{MOUNT}/callout/{TOKEN}")
    assert response.status_code == 202 and response.json["action"] == "create"
    assert client.get(f"{MOUNT}/healthz").status_code == 200
    assert post(client, NEW, url=CALLOUT).status_code == 404


def test_a_mapping_is_the_whole_configuration(
    bridge_config: dict[str, Any], clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("AUTOTASK_ILERT_WORKER_THREADS", "3")
    clean_env.setenv("AUTOTASK_ILERT_NOT_AN_OPTION", "ignored with a mapping")
    app = create_app({**bridge_config, "AUTOTASK_ILERT_WORKER_THREADS": "7", "TESTING": True})
    settings = get_bridge(app).settings
    assert settings.worker_threads == 7  # text, converted as from the environment
    assert settings.redis_prefix == bridge_config["AUTOTASK_ILERT_REDIS_PREFIX"]
    assert settings.sources["default"].callout_tokens == (TOKEN,)
    assert app.config["TESTING"] is True  # Flask's own keys pass through


def test_none_reads_the_environment(
    bridge_config: dict[str, Any], clean_env: pytest.MonkeyPatch
) -> None:
    for key, value in bridge_config.items():
        clean_env.setenv(key, value)
    clean_env.setenv("AUTOTASK_ILERT_WORKER_THREADS", "5")
    app = create_app()
    settings = get_bridge(app).settings
    assert settings.worker_threads == 5
    assert settings.redis_url == bridge_config["AUTOTASK_ILERT_REDIS_URL"]
    response = post(Client(DispatcherMiddleware(portal_pages, {MOUNT: app})), NEW)
    assert response.status_code == 202


def test_no_configuration_at_all_is_an_error(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="no alert source configured"):
        create_app()
    with pytest.raises(ConfigurationError, match="no alert source configured"):
        create_app({})


def test_an_unknown_key_is_refused_from_a_mapping_and_from_the_environment(
    bridge_config: dict[str, Any], clean_env: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigurationError, match="AUTOTASK_ILERT_REDIS_URI"):
        create_app({**bridge_config, "AUTOTASK_ILERT_REDIS_URI": "redis://elsewhere:6379/0"})
    for key, value in bridge_config.items():
        clean_env.setenv(key, value)
    clean_env.setenv("AUTOTASK_ILERT_ILERT_INTEGRATON_KEY", "misspelt")
    with pytest.raises(ConfigurationError, match="AUTOTASK_ILERT_ILERT_INTEGRATON_KEY"):
        create_app()


def test_an_option_without_its_prefix_is_refused_and_named(bridge_config: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError) as refused:
        create_app({**bridge_config, "REDIS_URL": "redis://elsewhere:6379/0",
                    "worker_threads": 2})
    message = str(refused.value)
    assert "REDIS_URL" in message and "AUTOTASK_ILERT_REDIS_URL" in message
    assert "AUTOTASK_ILERT_WORKER_THREADS" in message
    assert "elsewhere" not in message  # values are never echoed (a URL may hold a password)


def test_an_invalid_value_is_refused_without_showing_a_secret(bridge_config: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="WORKER_THREADS") as refused:
        create_app({**bridge_config, "AUTOTASK_ILERT_WORKER_THREADS": "many"})
    assert TOKEN not in str(refused.value) and INTEGRATION_KEY not in str(refused.value)


@pytest.fixture
def ilert() -> Iterator[tuple[IlertState, str]]:
    state = IlertState(integration_keys=[INTEGRATION_KEY])
    with ServerThread(create_ilert_simulator(state)) as server:
        yield state, server.url


def test_the_embedded_worker_delivers_from_the_mounted_bridge(
    bridge_config: dict[str, Any], ilert: tuple[IlertState, str]
) -> None:
    state, url = ilert
    portal = create_portal({**bridge_config, "AUTOTASK_ILERT_ILERT_API_URL": url,
                            "AUTOTASK_ILERT_EMBEDDED_WORKER": "1",
                            "AUTOTASK_ILERT_WORKER_POLL_SECONDS": "0.05"})
    bridge = get_bridge(mounted_bridge(portal))
    try:
        assert post(Client(portal), NEW).status_code == 202
        wait_until(lambda: state.alert_for("autotask-7865") is not None, 20,
                   what="the alert at the ilert simulator")
    finally:
        bridge.stop_embedded_worker()
    assert [e.body["eventType"] for e in state.events()] == ["ALERT"]


# -- the CLI against the factory, in processes of its own ---------------------------------------


def flask_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flask", "autotask-ilert", *args], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def test_the_cli_works_against_the_factory(
    bridge_config: dict[str, Any], ilert: tuple[IlertState, str]
) -> None:
    state, url = ilert
    config = {**bridge_config, "AUTOTASK_ILERT_ILERT_API_URL": url}
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOTASK_ILERT_")}
    env.update(config, FLASK_APP=FACTORY, PYTHONPATH=str(ROOT))
    portal = create_portal(config)
    assert post(Client(portal), NEW).status_code == 202

    queue = flask_cli(env, "queue")
    assert queue.returncode == 0, queue.stderr
    assert [(t["ticket"], t["head"]) for t in json.loads(queue.stdout)["oldest"]] == [
        (7865, "ilert create")]

    check = flask_cli(env, "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "PASS  ilert" in check.stdout

    burst = flask_cli(env, "worker", "--burst")
    assert burst.returncode == 0, burst.stderr
    assert "delivered or settled 1 queued item(s)" in burst.stdout
    assert state.alert_for("autotask-7865") is not None

    with ServerThread(portal) as server:
        simulate = flask_cli(env, "simulate", "--url", f"{server.url}{MOUNT}")
    assert simulate.returncode == 0, simulate.stdout + simulate.stderr
    assert f"POST {server.url}{MOUNT}/autotask-ilert/callout/***" in simulate.stdout
    assert "the bridge decided: reject" in simulate.stdout
    for done in (queue, check, burst, simulate):
        assert TOKEN not in done.stdout + done.stderr
        assert INTEGRATION_KEY not in done.stdout + done.stderr


# -- the example under gunicorn, with a worker process next to it ---------------------------------


class MountedDeployment(Deployment):
    """The deployment with the example portal: the bridge's URLs sit under ``/alerts``."""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}{MOUNT}"

    @property
    def portal_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"


def alert_open(deployment: Deployment, key: str) -> bool:
    alert = deployment.ilert.alert_for(key)
    return alert is not None and alert.is_open


@pytest.mark.realprocess
def test_the_example_under_gunicorn_pages_through_a_separate_worker(
    redis_server: str, redis_prefix: str, tmp_path: Path
) -> None:
    with MountedDeployment(
        redis_url=redis_server,
        redis_prefix=redis_prefix,
        workdir=tmp_path,
        root=ROOT,
        app_spec="examples.other_wsgi:create_portal()",
        flask_app=FACTORY,
    ) as deployment:
        deployment.start(workers=1)
        assert deployment.callout_url.startswith(f"{deployment.portal_url}/alerts/autotask-ilert/")
        home = requests.get(f"{deployment.portal_url}/", timeout=5)
        assert (home.status_code, home.content) == (200, HOME)

        # The simulated Autotask sends the callout over a socket to the URL under /alerts.
        ticket, answer = deployment.autotask.create_ticket("Backup failed", priority_label="High")
        assert answer is not None and answer.status_code == 202
        key = f"autotask-{ticket['id']}"
        wait_until(lambda: deployment.ilert.alert_for(key) is not None, 30,
                   what=f"the alert at ilert; logs:\n{deployment.logs()[-2000:]}")
        alert = deployment.ilert.alert_for(key)
        assert alert is not None and "Backup failed" in alert.summary

        closed = deployment.autotask.set_status(ticket["id"], "Complete")
        assert closed is not None and closed.status_code == 202
        wait_until(lambda: not alert_open(deployment, key), 30, what="the alert resolved at ilert")
        assert all(w.poll() is None for w in deployment.workers)
        assert deployment.token not in deployment.logs()
