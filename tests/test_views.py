"""The callout endpoint and health, through Flask's test client, as Autotask would see them."""

from __future__ import annotations

import base64
import json
import logging

import pytest
from flask import Flask

from flask_autotask_ilert import AutotaskIlert, ConfigurationError
from flask_autotask_ilert.extension import get_bridge

from .conftest import INTEGRATION_KEY, TOKEN, AppFactory, data_text, free_port

FORM = "application/x-www-form-urlencoded"
URL = f"/autotask-ilert/callout/{TOKEN}"
NEW = data_text("callout-new.txt")
COMPLETE = data_text("callout-complete.txt")


def post(app: Flask, body: str | bytes, content_type: str | None = FORM, url: str = URL, **kw: object):
    headers = kw.pop("headers", {})
    return app.test_client().post(url, data=body, content_type=content_type, headers=headers)


def queued_tickets(app: Flask) -> int:
    return int(get_bridge(app).store.queue_stats()["tickets"])


def test_new_ticket_schedules_an_alert(make_app: AppFactory) -> None:
    app = make_app()
    response = post(app, NEW)
    assert response.status_code == 202
    assert response.json == {"ticket": 7865, "action": "create", "state": "PENDING"}
    [event] = get_bridge(app).store.queued("default", 7865)
    assert event["action"] == "create"
    assert event["callout"]["number"] == "T20191029.0002"
    assert event["callout"]["domain"] == "EXAMPLESANDBOX.COM"


def test_full_walk_answers(make_app: AppFactory) -> None:
    app = make_app()
    answers = [post(app, b) for b in (NEW, NEW, NEW.replace("New", "In+Progress"), COMPLETE, COMPLETE)]
    assert [(r.status_code, r.json["action"], r.json["state"]) for r in answers] == [
        (202, "create", "PENDING"),
        (200, "nothing", "PENDING"),
        (202, "accept", "ACCEPTED"),
        (202, "resolve", "RESOLVED"),
        (200, "nothing", "RESOLVED"),
    ]


def test_closed_ticket_without_alert_is_rejected_with_400(make_app: AppFactory) -> None:
    app = make_app()
    response = post(app, COMPLETE)
    assert response.status_code == 400
    assert response.json == {"ticket": 7865, "action": "reject", "state": "NONE"}
    assert queued_tickets(app) == 0


def test_json_callout_is_accepted(make_app: AppFactory) -> None:
    app = make_app()
    body = json.dumps({"id": 12, "number": "T1", "status": "New", "domain": "X"})
    response = post(app, body, "application/json")
    assert response.status_code == 202 and response.json["ticket"] == 12


def test_status_labels_are_trimmed_and_case_folded(make_app: AppFactory) -> None:
    app = make_app()
    assert post(app, "id=5&status=%20nEw%20").status_code == 202
    assert post(app, "id=5&status=COMPLETE").json["action"] == "resolve"


def test_odd_timestamps_never_reject(make_app: AppFactory) -> None:
    app = make_app()
    body = "id=77&status=New&created_datetime=yesterday&last_activity_datetime=2019-13-45T99:99"
    assert post(app, body).status_code == 202


def test_unknown_keys_are_kept_but_do_not_change_behaviour(make_app: AppFactory) -> None:
    app = make_app()
    assert post(app, NEW + "&status_id=5&priority=Low").status_code == 202
    [event] = get_bridge(app).store.queued("default", 7865)
    assert event["callout"]["extra"] == {"status_id": "5", "priority": "Low"}
    assert event["callout"]["status"] == "New"


def test_stale_callout_changes_nothing(make_app: AppFactory) -> None:
    app = make_app()
    post(app, COMPLETE.replace("Complete", "New"))  # last activity 16:21
    response = post(app, NEW.replace("New", "Complete"))  # older: 15:06
    assert response.status_code == 200
    assert response.json == {"ticket": 7865, "action": "stale", "state": "PENDING"}


# -- bad input --------------------------------------------------------------------------------


def test_unknown_token_is_an_ordinary_404(make_app: AppFactory) -> None:
    app = make_app()
    wrong = post(app, NEW, url="/autotask-ilert/callout/not-the-token-0123456789")
    elsewhere = post(app, NEW, url="/no/such/page")
    assert wrong.status_code == elsewhere.status_code == 404
    assert wrong.data == elsewhere.data
    assert wrong.headers["Content-Type"] == elsewhere.headers["Content-Type"]
    assert queued_tickets(app) == 0


def test_wrong_method_is_405(make_app: AppFactory) -> None:
    app = make_app()
    assert app.test_client().get(URL).status_code == 405
    assert app.test_client().put(URL, data=NEW, content_type=FORM).status_code == 405


def test_body_over_the_limit_is_413(make_app: AppFactory) -> None:
    app = make_app()
    body = NEW + "&pad=" + "x" * 70_000
    response = post(app, body)
    assert response.status_code == 413
    assert response.json["code"] == "request_entity_too_large"
    assert queued_tickets(app) == 0


def test_limit_is_configurable(make_app: AppFactory) -> None:
    app = make_app(max_body_bytes=100)
    assert post(app, NEW + "&pad=" + "x" * 100).status_code == 413
    assert post(app, "id=1&status=New").status_code == 202


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "multipart/form-data", None])
def test_other_content_types_are_415(make_app: AppFactory, content_type: str | None) -> None:
    app = make_app()
    response = post(app, NEW, content_type)
    assert response.status_code == 415
    assert response.json["code"] == "unsupported_media_type"
    assert queued_tickets(app) == 0


@pytest.mark.parametrize(
    ("body", "content_type", "field"),
    [
        ("id=abc&status=New", FORM, "id"),
        ("id=0&status=New", FORM, "id"),
        ("id=-4&status=New", FORM, "id"),
        ("id=99999999999999999999&status=New", FORM, "id"),
        ("id=&status=New", FORM, "id"),
        ("status=New", FORM, "id"),
        ("id=5", FORM, "status"),
        ("id=5&status=", FORM, "status"),
        ("id=5&status=%20%20", FORM, "status"),
        ("id=5&status=" + "x" * 200, FORM, "status"),
        ("id=5&id=6&status=New", FORM, "id"),
        ('{"id": true, "status": "New"}', "application/json", "id"),
        ('{"id": 5.5, "status": "New"}', "application/json", "id"),
        ('{"id": 5, "status": 7}', "application/json", "status"),
        ('{"id": 5, "status": null}', "application/json", "status"),
    ],
)
def test_invalid_fields_are_400_with_errors(
    make_app: AppFactory, body: str, content_type: str, field: str
) -> None:
    app = make_app()
    response = post(app, body, content_type)
    assert response.status_code == 400
    assert set(response.json) == {"code", "message", "errors"}
    assert response.json["code"] == "invalid_payload"
    assert field in response.json["errors"]
    assert queued_tickets(app) == 0


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"id=5&status=\xff\xfe", FORM),
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b'"New"', "application/json"),
        (b"[" * 5000 + b"]" * 5000, "application/json"),
        ("&".join(f"k{i}=v" for i in range(100)).encode(), FORM),
    ],
)
def test_malformed_bodies_are_400(make_app: AppFactory, body: bytes, content_type: str) -> None:
    app = make_app()
    response = post(app, body, content_type)
    assert response.status_code == 400
    assert response.json["code"] == "invalid_payload"
    assert queued_tickets(app) == 0


def test_same_value_repeated_is_tolerated(make_app: AppFactory) -> None:
    assert post(make_app(), "id=5&id=5&status=New").status_code == 202


def test_unreachable_redis_is_503_with_retry_after_and_nothing_claimed(make_app: AppFactory) -> None:
    app = make_app(redis_url=f"redis://127.0.0.1:{free_port()}/0", retry_after_seconds=7)
    response = post(app, NEW)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "7"
    assert response.json["code"] == "store_unavailable"
    health = app.test_client().get("/autotask-ilert/healthz")
    assert health.status_code == 503 and health.json["redis"] == "unreachable"


def test_healthz_ok(make_app: AppFactory) -> None:
    response = make_app().test_client().get("/autotask-ilert/healthz")
    assert response.status_code == 200 and response.json == {"status": "ok", "redis": "ok"}


def test_url_prefix_is_configurable(make_app: AppFactory) -> None:
    app = make_app(url_prefix="/hooks/at")
    assert post(app, NEW, url=f"/hooks/at/callout/{TOKEN}").status_code == 202


# -- authentication ------------------------------------------------------------------------------


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_basic_credentials_when_configured(make_app: AppFactory) -> None:
    app = make_app(callout_username="autotask", callout_password="s3cret-basic-pw")
    missing = post(app, NEW)
    wrong = post(app, NEW, headers=basic("autotask", "nope"))
    assert missing.status_code == wrong.status_code == 401
    assert missing.headers["WWW-Authenticate"].lower().startswith("basic")
    assert queued_tickets(app) == 0
    assert post(app, NEW, headers=basic("autotask", "s3cret-basic-pw")).status_code == 202


def test_token_rotation_accepts_every_listed_token(make_app: AppFactory) -> None:
    old, new = "old-token-0123456789abcdef", "new-token-0123456789abcdef"
    app = make_app(callout_token=[old, new])
    assert post(app, "id=1&status=New", url=f"/autotask-ilert/callout/{old}").status_code == 202
    assert post(app, "id=2&status=New", url=f"/autotask-ilert/callout/{new}").status_code == 202


def test_token_selects_the_source(make_app: AppFactory) -> None:
    app = make_app(
        sources={
            "east": {"callout_token": "east-token-0123456789", "ilert_integration_key": "k-east"},
            "west": {"callout_token": "west-token-0123456789", "ilert_integration_key": "k-west"},
        }
    )
    post(app, "id=1&status=New", url="/autotask-ilert/callout/east-token-0123456789")
    store = get_bridge(app).store
    assert store.mapping("east", 1) is not None
    assert store.mapping("west", 1) is None
    again = post(app, "id=1&status=New", url="/autotask-ilert/callout/west-token-0123456789")
    assert again.json["action"] == "create"


def test_no_secret_in_answers_or_logs(make_app: AppFactory, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    app = make_app(callout_username="autotask", callout_password="pw-SECRET-basic-123")
    good = basic("autotask", "pw-SECRET-basic-123")
    bodies = [post(app, NEW, headers=good), post(app, NEW), post(app, "id=x", headers=good),
              post(app, NEW, "text/plain", headers=good), post(app, COMPLETE, headers=good)]
    text = caplog.text + "".join(r.get_data(as_text=True) for r in bodies)
    for secret in (TOKEN, INTEGRATION_KEY, "pw-SECRET-basic-123"):
        assert secret not in text


# -- extension lifecycle -------------------------------------------------------------------------


def test_init_app_twice_is_an_error(make_app: AppFactory) -> None:
    app = make_app()
    with pytest.raises(ConfigurationError, match="already initialised"):
        AutotaskIlert(app)


def test_use_before_init_app_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match="init_app"):
        get_bridge(Flask("bare"))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "no alert source configured"),
        ({"AUTOTASK_ILERT_CALLOUT_TOKEN": "short", "AUTOTASK_ILERT_ILERT_INTEGRATION_KEY": "k"},
         "at least 16"),
        ({"AUTOTASK_ILERT_CALLOUT_TOKEN": TOKEN}, "integration key"),
        ({"AUTOTASK_ILERT_CALLOUT_TOKEN": TOKEN, "AUTOTASK_ILERT_ILERT_INTEGRATION_KEY": "k",
          "AUTOTASK_ILERT_AUTOTASK_USERNAME": "u"}, "go together"),
        ({"AUTOTASK_ILERT_CALLOUT_TOKEN": TOKEN, "AUTOTASK_ILERT_ILERT_INTEGRATION_KEY": "k",
          "AUTOTASK_ILERT_PRIORITY_MAP": {"Low": "MEDIUM"}}, "not a valid Priority"),
        ({"AUTOTASK_ILERT_CALLOUT_TOKEN": TOKEN, "AUTOTASK_ILERT_ILERT_INTEGRATION_KEY": "k",
          "AUTOTASK_ILERT_NO_SUCH_THING": 1}, "unknown config key"),
        ({"AUTOTASK_ILERT_CALLOUT_TOKEN": TOKEN, "AUTOTASK_ILERT_ILERT_INTEGRATION_KEY": "k",
          "AUTOTASK_ILERT_ILERT_RATE_LIMIT": "many"}, "ILERT_RATE_LIMIT"),
    ],
)
def test_invalid_config_fails_at_init_app(config: dict[str, object], message: str) -> None:
    app = Flask("bad")
    app.config.update(config)
    with pytest.raises(ConfigurationError, match=message):
        AutotaskIlert(app)


def test_secret_config_values_are_not_echoed_in_errors() -> None:
    app = Flask("bad")
    app.config.update({"AUTOTASK_ILERT_CALLOUT_TOKEN": 12345, "AUTOTASK_ILERT_ILERT_INTEGRATION_KEY": "k"})
    with pytest.raises(ConfigurationError) as info:
        AutotaskIlert(app)
    assert "12345" not in str(info.value)


def test_constructor_options_win_over_app_config() -> None:
    app = Flask("opts")
    app.config.update({"AUTOTASK_ILERT_CALLOUT_TOKEN": TOKEN, "AUTOTASK_ILERT_ILERT_INTEGRATION_KEY": "k",
                       "AUTOTASK_ILERT_URL_PREFIX": "/from-config", "AUTOTASK_ILERT_REDIS_URL": "memory://"})
    AutotaskIlert(app, url_prefix="/from-ctor")
    assert app.test_client().get("/from-ctor/healthz").status_code == 200


def test_sources_file_toml(tmp_path, make_app: AppFactory) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "sources.toml"
    path.write_text('[noc]\ncallout_token = "noc-token-0123456789abc"\nilert_integration_key = "k"\n')
    app = make_app(sources_file=str(path))
    url = "/autotask-ilert/callout/noc-token-0123456789abc"
    assert post(app, "id=1&status=New", url=url).status_code == 202


def test_autotask_credentials_do_not_turn_on_callout_auth(make_app: AppFactory) -> None:
    app = make_app(autotask_username="api@example.com", autotask_secret="s", autotask_integration_code="c")
    assert post(app, NEW).status_code == 202


def test_from_env_types_values_and_keeps_misspellings_for_init_app() -> None:
    from flask_autotask_ilert.config import from_env

    env = {"AUTOTASK_ILERT_EMBEDDED_WORKER": "yes", "AUTOTASK_ILERT_ILERT_RATE_LIMIT": "10",
           "AUTOTASK_ILERT_CALLOUT_TOKENN": "typo", "PATH": "/bin"}
    values = from_env(env)
    assert values["AUTOTASK_ILERT_EMBEDDED_WORKER"] is True
    assert values["AUTOTASK_ILERT_ILERT_RATE_LIMIT"] == 10
    assert "PATH" not in values
    app = Flask("env")
    app.config.update({"AUTOTASK_ILERT_CALLOUT_TOKEN": TOKEN, "AUTOTASK_ILERT_ILERT_INTEGRATION_KEY": "k"})
    app.config.update(values)
    with pytest.raises(ConfigurationError, match="AUTOTASK_ILERT_CALLOUT_TOKENN"):
        AutotaskIlert(app)
