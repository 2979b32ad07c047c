"""The Autotask REST webhook body as the schema reads it: exact values, case folding, picklist ids.

In-process and direct (tests/test_autotask_webhooks.py plays the same bodies over a
real socket); each expected value is written out here.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, cast

import pytest
from marshmallow import ValidationError

from flask_autotask_ilert.schemas import AutotaskWebhook, load_autotask_webhook, load_callout

GUID = "7f0c1b2a-1111-4c0b-8f5e-2f1f7d6b0c11"


def delivery(**change: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Action": "Update", "Guid": GUID, "EntityType": "Ticket", "Id": 7865,
        "Fields": {"status": 8, "ticketNumber": "T20261130.0001"},
        "EventTime": "2026-11-30T10:00:00Z", "SequenceNumber": 3, "PersonID": 30691780,
    }
    body.update(change)
    return body


def errors(body: Any) -> dict[str, Any]:
    with pytest.raises(ValidationError) as refused:
        load_autotask_webhook(body)
    return cast(dict[str, Any], refused.value.messages)


def test_a_delivery_is_read_field_by_field() -> None:
    assert load_autotask_webhook(delivery()) == AutotaskWebhook(
        action="Update",
        guid=GUID,
        sequence=3,
        ticket_id=7865,
        entity_type="Ticket",
        fields={"status": 8, "ticketnumber": "T20261130.0001"},
        event_time=datetime(2026, 11, 30, 10, 0, tzinfo=timezone.utc),
        person_id=30691780,
    )


def test_keys_in_any_case_name_the_same_field() -> None:
    hook = load_autotask_webhook({
        "ACTION": "update", "guid": GUID, "id": 12, "sequencenumber": 4,
        "fields": {"STATUS": 5, "TicketNumber": "T1", "Title": "Disk full"},
    })
    assert (hook.action, hook.ticket_id, hook.sequence) == ("Update", 12, 4)
    assert hook.fields == {"status": 5, "ticketnumber": "T1", "title": "Disk full"}


def test_one_key_spelt_twice_with_one_value_is_read_once() -> None:
    hook = load_autotask_webhook(delivery(Fields={"status": 5, "Status": 5, "STATUS": 5}))
    assert hook.fields == {"status": 5}
    assert hook.status_value == 5


def test_a_field_spelt_twice_with_two_values_is_refused_naming_it() -> None:
    assert errors(delivery(Fields={"status": 1, "Status": 5})) == {
        "Fields": ["'Status' is given twice, in different case, with different values."]
    }


def test_a_top_level_key_spelt_twice_with_two_values_is_refused() -> None:
    assert errors({**delivery(), "ID": 7866}) == {
        "_schema": ["'ID' is given twice, in different case, with different values."]
    }


@pytest.mark.parametrize(
    ("given", "read"),
    [
        ("8", 8),
        (" 8 ", 8),
        (29683354, 29683354),
        ("1234567890123456", 1234567890123456),  # 16 digits: the longest read as a number
    ],
)
def test_a_status_picklist_id_is_read_as_a_number(given: Any, read: int) -> None:
    assert load_autotask_webhook(delivery(Fields={"status": given})).status_value == read


@pytest.mark.parametrize(
    "given",
    [
        "12345678901234567",  # 17 digits
        "In Progress",  # a label, not its id
        "abc",
        "\u0663",  # ARABIC-INDIC DIGIT THREE: a digit, but not the ASCII digits Autotask sends
        "",
        True,
        1.5,
    ],
)
def test_a_status_that_is_not_a_picklist_id_is_refused(given: Any) -> None:
    assert errors(delivery(Fields={"status": given})) == {"Fields": ["The status must be a picklist id."]}


def test_a_status_of_null_is_no_status() -> None:
    assert load_autotask_webhook(delivery(Fields={"status": None})).status_value is None


@pytest.mark.parametrize("body", [[("id", "5"), ("status", "New")], "id=5&status=New", None])
def test_a_callout_that_is_not_a_mapping_is_a_validation_error(body: Any) -> None:
    with pytest.raises(ValidationError) as refused:
        load_callout(body)
    assert refused.value.messages == {"_schema": ["Invalid input type."]}
