"""The example portal: its pages, its signal-fed activity log, and the SQLite ticket mirror."""

from __future__ import annotations

from pathlib import Path

import responses

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
            "AUTOTASK_ILERT_REDIS_URL": "memory://",
            **{f"AUTOTASK_ILERT_{k.upper()}": v for k, v in extra.items()},
        }
    )


def test_pages_render(tmp_path: Path) -> None:
    app = portal(tmp_path)
    client = app.test_client()
    assert "Example MSP portal" in client.get("/").get_data(as_text=True)
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
    assert "ticket updated" in client.get("/activity").get_data(as_text=True)
