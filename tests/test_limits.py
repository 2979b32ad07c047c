"""Every documented limit, at the limit and one past it, with the numbers written out.

The limits are part of what Autotask and ilert may send (docs/security.md), so
they are stated here as numbers, not imported from the package: a limit moved
in the code fails these tests instead of moving the test with it.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis
from flask import Flask
from marshmallow import ValidationError

from flask_autotask_ilert.extension import get_bridge
from flask_autotask_ilert.schemas import load_alert_webhook, load_callout
from flask_autotask_ilert.sync import ticket_of

from .conftest import TOKEN, AppFactory

CALLOUT = f"/autotask-ilert/callout/{TOKEN}"
FORM = "application/x-www-form-urlencoded"

#: The largest ticket id: 2**53 - 1, the largest integer every JSON tool reads exactly.
LARGEST_ID = 9_007_199_254_740_991


def post_form(app: Flask, body: str) -> Any:
    return app.test_client().post(CALLOUT, data=body, content_type=FORM)


def post_json(app: Flask, body: dict[str, Any]) -> Any:
    return app.test_client().post(CALLOUT, json=body)


# -- the ticket id ----------------------------------------------------------------------------------


@pytest.mark.parametrize("ticket", [1, 9_007_199_254_740_991])
def test_ids_from_1_to_2_to_the_53_minus_1_are_tickets(make_app: AppFactory, ticket: int) -> None:
    app = make_app()
    form = post_form(app, f"id={ticket}&status=New")
    assert form.json == {"ticket": ticket, "action": "create", "state": "PENDING"}
    as_json = post_json(app, {"id": ticket, "status": "In Progress"})
    assert as_json.json == {"ticket": ticket, "action": "accept", "state": "ACCEPTED"}


@pytest.mark.parametrize("ticket", ["0", "-1", "9007199254740992", "18014398509481984", "99999999999999999"])
def test_ids_outside_are_refused_with_a_field_error(make_app: AppFactory, ticket: str) -> None:
    app = make_app()
    as_json = post_json(app, {"id": int(ticket), "status": "New"})
    for answer in (post_form(app, f"id={ticket}&status=New"), as_json):
        assert answer.status_code == 400 and list(answer.json["errors"]) == ["id"]
    assert get_bridge(app).store.queue_stats()["tickets"] == 0


def test_an_id_of_16_digits_is_read_and_one_of_17_is_refused(make_app: AppFactory) -> None:
    app = make_app()
    assert post_form(app, "id=0000000000000042&status=New").json["ticket"] == 42
    assert post_form(app, "id=00000000000000042&status=New").status_code == 400
    # With another field wrong, the id of 16 digits is still not among the errors.
    blank_status = post_form(app, "id=0000000000000042&status=%20")
    assert blank_status.json["errors"] == {"status": ["Must not be blank."]}


@pytest.mark.parametrize(
    ("key", "ticket"),
    [
        ("autotask-9007199254740991", 9_007_199_254_740_991),
        ("autotask-1234567890123456", 1_234_567_890_123_456),
        (" AUTOTASK-5 ", 5),
        ("autotask-12345678901234567", None),  # 17 digits: not a key the bridge made
        ("autotask-", None),
        ("autotask-x", None),
        ("other-5", None),
        (None, None),
    ],
)
def test_an_alert_key_names_the_ticket_the_bridge_made_it_for(key: str | None, ticket: int | None) -> None:
    assert ticket_of(key) == ticket


# -- text fields ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "longest"), [("status", 128), ("number", 64), ("domain", 255)])
def test_text_fields_up_to_their_limit_are_kept_whole_and_one_more_is_refused(
    make_app: AppFactory, field: str, longest: int
) -> None:
    app = make_app()
    kept = post_json(app, {"id": 5, "status": "New", field: "N" * longest})
    assert kept.status_code == 202
    [event] = get_bridge(app).store.queued("default", 5)
    if field != "status":  # a status of 128 N is not "New": the class is OTHER, which still pages
        assert event["callout"][field] == "N" * longest
    refused = post_json(app, {"id": 6, "status": "New", field: "N" * (longest + 1)})
    assert refused.status_code == 400 and list(refused.json["errors"]) == [field]


@pytest.mark.parametrize("status", ["", "   ", "\t\n"])
def test_a_blank_status_is_refused(make_app: AppFactory, status: str) -> None:
    answer = post_json(make_app(), {"id": 5, "status": status})
    assert answer.status_code == 400 and list(answer.json["errors"]) == ["status"]


def test_a_status_is_kept_with_its_spaces_folded() -> None:
    assert load_callout({"id": 5, "status": "  In \t Progress "}).status == "In Progress"


# -- unknown callout keys ----------------------------------------------------------------------------


def test_sixteen_unknown_keys_are_kept_in_the_order_sent_and_the_rest_dropped() -> None:
    body = {"id": 5, "status": "New", **{f"udf{n:02}": f"v{n}" for n in range(20)}}
    extra = load_callout(body).extra
    assert extra == {f"udf{n:02}": f"v{n}" for n in range(16)}


def test_unknown_keys_are_cut_to_64_characters_and_values_to_256() -> None:
    body = {"id": 5, "status": "New", "k" * 64: "v" * 256, "K" * 65: "V" * 257}
    assert load_callout(body).extra == {"k" * 64: "v" * 256, "K" * 64: "V" * 256}


def test_unknown_keys_ride_along_in_the_queued_event(make_app: AppFactory) -> None:
    app = make_app()
    post_json(app, {"id": 5, "status": "New", "priority": "Low", "queue": 7})
    [event] = get_bridge(app).store.queued("default", 5)
    assert event["callout"]["extra"] == {"priority": "Low", "queue": "7"}


def test_no_unknown_key_no_extra_in_the_event(make_app: AppFactory) -> None:
    app = make_app()
    post_json(app, {"id": 5, "status": "New"})
    [event] = get_bridge(app).store.queued("default", 5)
    assert "extra" not in event["callout"]


# -- the ilert webhook --------------------------------------------------------------------------------


@pytest.mark.parametrize("alert_id", ["a" * 64, 10**63, "2983781", 0])
def test_an_alert_id_of_up_to_64_characters_is_kept(alert_id: str | int) -> None:
    webhook = load_alert_webhook({"status": "ACCEPTED", "alertKey": "autotask-5", "id": alert_id})
    assert webhook.alert_id == str(alert_id)


@pytest.mark.parametrize("alert_id", ["a" * 65, 10**64])
def test_a_longer_alert_id_is_refused(alert_id: str | int) -> None:
    with pytest.raises(ValidationError) as refused:
        load_alert_webhook({"status": "ACCEPTED", "alertKey": "autotask-5", "id": alert_id})
    assert refused.value.messages == {"id": ["Longer than 64 characters."]}


@pytest.mark.parametrize("alert_id", [True, 1.5, [], {}])
def test_an_alert_id_that_is_not_text_or_a_number_is_refused(alert_id: object) -> None:
    with pytest.raises(ValidationError) as refused:
        load_alert_webhook({"status": "ACCEPTED", "alertKey": "autotask-5", "id": alert_id})
    assert refused.value.messages == {"id": ["Must be a string or a number."]}


@pytest.mark.parametrize(
    ("person", "who"),
    [
        ({"username": "jdoe", "email": "jdoe@example.com", "firstName": "Jane", "lastName": "Doe"},
         "Jane Doe (jdoe)"),
        ({"email": "jdoe@example.com", "firstName": "Jane", "lastName": "Doe"},
         "Jane Doe (jdoe@example.com)"),
        ({"firstName": "Jane", "lastName": "Doe"}, "Jane Doe"),
        ({"firstName": "Jane", "username": "jdoe"}, "Jane (jdoe)"),
        ({"lastName": "Doe"}, "Doe"),
        ({"username": "jdoe"}, "jdoe"),
        ({"email": "jdoe@example.com"}, "jdoe@example.com"),
        ({"firstName": "", "lastName": None, "username": ""}, "someone in ilert"),
        ({}, "someone in ilert"),
    ],
)
def test_the_ticket_note_names_who_acted_in_ilert(person: dict[str, str | None], who: str) -> None:
    webhook = load_alert_webhook({"status": "ACCEPTED", "alertKey": "autotask-5", "assignedTo": person})
    assert webhook.who == who


def test_a_webhook_without_assignee_names_someone_in_ilert() -> None:
    assert load_alert_webhook({"status": "RESOLVED", "alertKey": "autotask-5"}).who == "someone in ilert"


# -- how long a rejected ticket's audit trail is kept --------------------------------------------------


def _ttl_of_ticket(app: Flask, ticket: int) -> int:
    """The ticket record's remaining life in ms, as Redis reports it (PTTL)."""
    url, prefix = app.config["AUTOTASK_ILERT_REDIS_URL"], app.config["AUTOTASK_ILERT_REDIS_PREFIX"]
    client = redis.Redis.from_url(url)
    try:
        return int(client.pttl(f"{prefix}map:default:{ticket}"))
    finally:
        client.close()


@pytest.mark.parametrize(("hours", "ms"), [(None, 86_400_000), (2.0, 7_200_000), (0.5, 1_800_000)])
def test_a_rejected_tickets_audit_is_kept_for_audit_reject_hours(
    make_app: AppFactory, hours: float | None, ms: int
) -> None:
    options: dict[str, Any] = {} if hours is None else {"audit_reject_hours": hours}
    app = make_app(real_redis=True, **options)
    answer = post_form(app, "id=4242&status=Complete")
    assert answer.status_code == 400 and answer.json["action"] == "reject"
    assert [text for _, text in get_bridge(app).store.audit("default", 4242)] == [
        'callout CLOSED: reject NONE>NONE; status "Complete"']
    assert ms - 60_000 < _ttl_of_ticket(app, 4242) <= ms


def test_a_ticket_tracked_after_a_reject_no_longer_expires(make_app: AppFactory) -> None:
    app = make_app(real_redis=True, audit_reject_hours=2.0)
    post_form(app, "id=4243&status=Complete")
    assert post_form(app, "id=4243&status=New").json["action"] == "create"
    assert _ttl_of_ticket(app, 4243) == -1  # Redis: the key exists and has no expiry
