"""Which dead events a replay brings back (lifecycle.REPLAY_STATES), as the operator sees it."""

from __future__ import annotations

import json

import responses

from flask_autotask_ilert.extension import get_bridge

from .conftest import TOKEN, AppFactory, drain

ILERT = "http://ilert.invalid/api/events"
CALLOUT = f"/autotask-ilert/callout/{TOKEN}"
FORM = "application/x-www-form-urlencoded"


def test_a_replay_keeps_an_alert_create_dead_once_the_ticket_is_resolved_but_not_its_resolve(
    make_app: AppFactory, rsps: responses.RequestsMock
) -> None:
    app = make_app()
    rsps.post(ILERT, status=404, json={"code": "NO_ALERT_SOURCE_FOUND", "message": "unknown key"})
    for status in ("New", "Complete"):
        answer = app.test_client().post(CALLOUT, data=f"id=501&status={status}", content_type=FORM)
        assert answer.status_code == 202
    drain(app)
    store = get_bridge(app).store
    assert [r["event"]["action"] for r in store.dead_letters()] == ["create", "resolve"]
    rsps.remove(responses.POST, ILERT)

    result = app.test_cli_runner().invoke(args=["autotask-ilert", "replay", "501"])
    assert result.exit_code == 0, result.output
    assert "replayed 1 event(s)" in result.output
    assert "kept dead: ticket 501 ilert create" in result.output
    assert [r["event"]["action"] for r in store.dead_letters()] == ["create"]
    assert [e["action"] for e in store.queued("default", 501)] == ["resolve"]

    rsps.post(ILERT, status=202, json={})
    assert drain(app) == 1
    [sent] = [json.loads(c.request.body) for c in rsps.calls if c.request.url == ILERT][-1:]
    assert sent["eventType"] == "RESOLVE" and sent["alertKey"] == "autotask-501"
