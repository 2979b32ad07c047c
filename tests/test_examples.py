"""The example portal: its pages, its signal-fed activity log, and the SQLite ticket mirror."""

from __future__ import annotations

import re
from pathlib import Path

import responses
from flask.testing import FlaskClient
from markupsafe import escape

from examples.msp_portal import create_app
from examples.msp_portal.mirror import SqliteTicketMirror
from flask_autotask_ilert.extension import get_bridge
from flask_autotask_ilert.worker import Worker

TOKEN = "portal-callout-token-0123456789"
HOOK = "portal-webhook-token-0123456789"


def portal(tmp_path: Path, **extra: object):  # type: ignore[no-untyped-def]
    return create_app(
        {
            "TESTING": True,
            "AUTOTASK_ILERT_CALLOUT_TOKEN": TOKEN,
            "AUTOTASK_ILERT_ILERT_INTEGRATION_KEY": "portal-key",
            "AUTOTASK_ILERT_ILERT_API_URL": "http://ilert.invalid",
            "PORTAL_USER": USER,
            "PORTAL_PASSWORD": PASSWORD,
            "AUTOTASK_ILERT_REDIS_URL": "memory://",
            **{f"AUTOTASK_ILERT_{k.upper()}": v for k, v in extra.items()},
        }
    )


USER, PASSWORD = "oncall", "portal-password-for-tests"


def csrf(client: FlaskClient, path: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True))
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def login(client: FlaskClient, password: str = PASSWORD) -> int:
    answer = client.post("/login", data={"username": USER, "password": password,
                                         "csrf_token": csrf(client, "/login")})
    return answer.status_code


def test_pages_render(tmp_path: Path) -> None:
    app = portal(tmp_path)
    client = app.test_client()
    assert "Example MSP portal" in client.get("/").get_data(as_text=True)
    assert login(client) == 302
    on_call = client.get("/on-call")
    assert on_call.status_code == 200
    page = on_call.get_data(as_text=True)
    assert "/autotask-ilert/callout/&lt;token&gt;" in page and TOKEN not in page


def test_activity_page_shows_what_the_signals_reported(tmp_path: Path) -> None:
    app = portal(tmp_path)
    client = app.test_client()
    client.post(f"/autotask-ilert/callout/{TOKEN}", data="id=5&status=New",
                content_type="application/x-www-form-urlencoded")
    client.post(f"/autotask-ilert/callout/{TOKEN}", data="id=6&status=Complete",
                content_type="application/x-www-form-urlencoded")
    login(client)
    page = client.get("/activity").get_data(as_text=True)
    assert "alert scheduled" in page and "callout rejected" in page
    assert "status=Complete" in page


def test_sqlite_mirror_replaces_the_autotask_write(tmp_path: Path) -> None:
    db = tmp_path / "mirror.sqlite3"
    mirror = SqliteTicketMirror(str(db))
    app = portal(tmp_path, bidirectional=True, webhook_token=HOOK, ticket_updater=mirror)
    client = app.test_client()
    with responses.RequestsMock() as rsps:
        rsps.post("http://ilert.invalid/api/events", status=202)
        client.post(f"/autotask-ilert/callout/{TOKEN}", data="id=7&status=New",
                    content_type="application/x-www-form-urlencoded")
        answer = client.post(f"/autotask-ilert/ilert/{HOOK}",
                             json={"id": 1, "status": "ACCEPTED", "alertKey": "autotask-7"})
        assert answer.status_code == 202
        Worker(get_bridge(app), threads=1).drain()
    assert mirror.status("default", 7) == ("In Progress", "accept-ticket")
    login(client)
    assert "ticket updated" in client.get("/activity").get_data(as_text=True)


def test_on_call_and_activity_need_the_portal_login(tmp_path: Path) -> None:
    client = portal(tmp_path).test_client()
    for page in ("/on-call", "/activity"):
        answer = client.get(page)
        assert answer.status_code == 302 and answer.location.startswith("/login?next=")
    assert login(client, password="not-the-password") == 401
    assert client.get("/on-call").status_code == 302
    assert login(client) == 302
    assert client.get("/on-call").status_code == 200


def test_login_post_without_the_csrf_token_is_refused(tmp_path: Path) -> None:
    client = portal(tmp_path).test_client()
    answer = client.post("/login", data={"username": USER, "password": PASSWORD})
    assert answer.status_code == 400
    assert client.get("/on-call").status_code == 302


def test_without_a_password_nobody_logs_in(tmp_path: Path) -> None:
    app = portal(tmp_path)
    app.config["PORTAL_PASSWORD"] = ""
    client = app.test_client()
    assert "set <code>PORTAL_USER</code>" in client.get("/login").get_data(as_text=True)
    assert login(client, password="") == 401


def test_login_sends_back_only_to_this_site(tmp_path: Path) -> None:
    client = portal(tmp_path).test_client()
    token = csrf(client, "/login")
    answer = client.post("/login?next=//evil.example/x",
                         data={"username": USER, "password": PASSWORD, "csrf_token": token})
    assert answer.status_code == 302 and answer.location == "/"


def _dead_letter(app, ticket: int) -> None:  # type: ignore[no-untyped-def]
    """A create for ``ticket`` that ilert refused for good (the path of the worker, with 400)."""
    client = app.test_client()
    client.post(f"/autotask-ilert/callout/{TOKEN}", data=f"id={ticket}&status=New",
                content_type="application/x-www-form-urlencoded")
    with responses.RequestsMock() as rsps:
        rsps.post("http://ilert.invalid/api/events", status=400, json={"message": "bad key"})
        Worker(get_bridge(app), threads=1).drain()


def test_replay_button_queues_the_dead_letter_and_refuses_a_post_without_the_token(tmp_path: Path) -> None:
    app = portal(tmp_path)
    _dead_letter(app, 41)
    store = get_bridge(app).store
    assert len(store.dead_records()) == 1
    client = app.test_client()
    login(client)
    page = client.get("/on-call").get_data(as_text=True)
    digest = re.search(r'name="dead" value="([^"]+)"', page)
    assert digest and "ilert create" in page
    refused = client.post("/on-call/replay", data={"dead": digest.group(1)})
    assert refused.status_code == 400
    wrong = client.post("/on-call/replay", data={"dead": digest.group(1), "csrf_token": "x" * 43})
    assert wrong.status_code == 400
    assert len(store.dead_records()) == 1 and store.queued("default", 41) == []
    token = csrf(client, "/on-call")
    done = client.post("/on-call/replay", data={"dead": digest.group(1), "csrf_token": token},
                       follow_redirects=True)
    assert done.status_code == 200 and "Replayed ticket 41 ilert create" in done.get_data(as_text=True)
    assert store.dead_records() == []
    assert [e["action"] for e in store.queued("default", 41)] == ["create"]
    again = client.post("/on-call/replay", data={"dead": digest.group(1), "csrf_token": token})
    assert again.status_code == 404


def test_ticket_lookup_shows_state_and_the_audit_trail_in_words(tmp_path: Path) -> None:
    app = portal(tmp_path)
    _dead_letter(app, 42)
    client = app.test_client()
    login(client)
    page = client.get("/on-call?ticket=42").get_data(as_text=True)
    assert "Ticket 42 (source default)" in page and "PENDING" in page
    trail = [what for _, what in get_bridge(app).store.audit("default", 42)]
    assert any(what.startswith("callout") for what in trail)
    assert any("dead" in what for what in trail)
    assert all(str(escape(what)) in page for what in trail)
    assert "no record, queued event or audit trail" in client.get("/on-call?ticket=43").get_data(as_text=True)


def test_the_demo_says_how_to_log_in_and_that_works(capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from examples import demo

    monkeypatch.setattr(demo.demo, "main", lambda *args, **kwargs: 0)
    assert demo.main([]) == 0
    out = capsys.readouterr().out
    settings = dict(re.findall(r"\b([A-Z_]+)=(\S+)", out))
    assert settings["PORTAL_USER"] == "oncall" and "/on-call" in out
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    assert settings["AUTOTASK_ILERT_REDIS_URL"] == "memory://"  # nothing of a deployment's Redis
    client = create_app({"TESTING": True}).test_client()
    token = csrf(client, "/login")
    answer = client.post("/login?next=/on-call", data={
        "username": settings["PORTAL_USER"], "password": settings["PORTAL_PASSWORD"], "csrf_token": token})
    assert answer.status_code == 302 and answer.location == "/on-call"
    assert client.get("/on-call").status_code == 200
