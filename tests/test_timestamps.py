"""Every timestamp form Autotask and ilert send, read to the microsecond.

Stale callouts are spotted by comparing instants (integer microseconds since
the epoch), so a timestamp read an hour or a few seconds off reorders a
ticket's callouts. The expected instants are written out as numbers, worked
out by hand (``date -u -d '2019-10-29 18:14:47' +%s`` = 1572372887), never by
the code under test.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from flask_autotask_ilert.extension import get_bridge
from flask_autotask_ilert.schemas import load_alert_webhook, load_callout, parse_timestamp, to_micros

from .conftest import TOKEN, AppFactory

CALLOUT = f"/autotask-ilert/callout/{TOKEN}"
FORM = "application/x-www-form-urlencoded"


def micros(text: object) -> int | None:
    return to_micros(parse_timestamp(text))


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        # The callout of autotask.md, as Autotask sends it: 8 fraction digits, an offset with seconds.
        ("2019-10-29T14:14:47.64300000-04:00:00", 1_572_372_887_643_000),
        ("2019-10-30T15:06:38.58300000-04:00:00", 1_572_462_398_583_000),
        # ilert's reportTime (ilert.md, samples/ilert-webhook-accepted.json).
        ("2019-10-29T18:15:02.551Z", 1_572_372_902_551_000),
        ("2019-10-29T18:14:47Z", 1_572_372_887_000_000),
        ("2019-10-29T18:14:47z", 1_572_372_887_000_000),
        ("2019-10-29t18:14:47.643z", 1_572_372_887_643_000),
        ("2019-10-29 18:14:47.643Z", 1_572_372_887_643_000),
        # A "+" offset sent without form encoding arrives as a space: still +04:00:00.
        ("2019-10-29T22:14:47.64300000 04:00:00", 1_572_372_887_643_000),
        ("2019-10-29T18:14:47.643 00:00", 1_572_372_887_643_000),
        # No offset at all is UTC.
        ("2019-10-29T18:14:47.643", 1_572_372_887_643_000),
        ("  2019-10-29T18:14:47.643Z  ", 1_572_372_887_643_000),
        # Offsets: east and west, with and without seconds, with and without colons.
        ("2019-10-29T14:14:47-04:00", 1_572_372_887_000_000),
        ("2019-10-29T14:14:47-04", 1_572_372_887_000_000),
        ("2019-10-29T14:14:47-0400", 1_572_372_887_000_000),
        ("2019-10-29T14:14:47-04:00:30", 1_572_372_917_000_000),  # 18:15:17Z
        ("2019-10-29T14:14:47-040030", 1_572_372_917_000_000),
        ("2019-10-29T14:14:47+05:30:15", 1_572_338_672_000_000),  # 08:44:32Z
        ("2019-10-29T14:14:47+053015", 1_572_338_672_000_000),
        ("2019-10-29T14:14:47+05:30", 1_572_338_687_000_000),  # 08:44:47Z
        ("2019-10-29T14:14:47+05", 1_572_340_487_000_000),  # 09:14:47Z
        ("2019-10-29T18:14:47+00:00", 1_572_372_887_000_000),
        ("2019-10-29T18:14:47-00:00", 1_572_372_887_000_000),
        # Fractions of 1 to 8 digits: read as a decimal fraction, cut (not rounded) to microseconds.
        ("2019-10-29T18:14:47.6Z", 1_572_372_887_600_000),
        ("2019-10-29T18:14:47.05Z", 1_572_372_887_050_000),
        ("2019-10-29T18:14:47.643Z", 1_572_372_887_643_000),
        ("2019-10-29T18:14:47.0643Z", 1_572_372_887_064_300),
        ("2019-10-29T18:14:47.64301Z", 1_572_372_887_643_010),
        ("2019-10-29T18:14:47.643012Z", 1_572_372_887_643_012),
        ("2019-10-29T18:14:47.6430129Z", 1_572_372_887_643_012),
        ("2019-10-29T18:14:47.64301299Z", 1_572_372_887_643_012),
        ("2019-10-29T18:14:47.00000001Z", 1_572_372_887_000_000),
        ("2019-10-29T18:14:47,5Z", 1_572_372_887_500_000),
        # Around the epoch: one microsecond either side.
        ("1970-01-01T00:00:00Z", 0),
        ("1970-01-01T00:00:00.000001Z", 1),
        ("1969-12-31T23:59:59.999999Z", -1),
        ("1970-01-01T01:00:00.000001+01:00", 1),
        # Past 2**53 microseconds: a float would round these; the instant is an exact integer.
        ("9999-12-31T23:59:59.999999Z", 253_402_300_799_999_999),
        ("9999-12-31T23:59:59.999997Z", 253_402_300_799_999_997),
    ],
)
def test_each_form_is_read_as_the_instant_it_names(text: str, instant: int) -> None:
    value = micros(text)
    assert value == instant and type(value) is int


def test_the_queued_time_is_utc_whatever_the_servers_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        callout = load_callout({"id": "7865", "status": "New",
                                "last_activity_datetime": "2019-10-30T15:06:38.58300000-04:00:00"})
    finally:
        monkeypatch.undo()
        time.tzset()
    assert callout.record()["last_activity"] == "2019-10-30T19:06:38.583000+00:00"


@pytest.mark.parametrize(
    "text",
    [
        None, 1572372887, 1572372887.5, ["2019-10-29T18:14:47Z"], "", "yesterday",
        "2019-10-29", "18:14:47Z", "2019-13-01T00:00:00Z", "2019-02-30T00:00:00Z",
        "2019-10-29T24:00:00Z", "2019-10-29T18:14:47.Z", "2019-10-29T18:14:47+1", "2019-10-29T18:14:47 Z x",
        "2019-10-29T18:14:47 04",
    ],
)
def test_what_is_not_a_timestamp_is_none_and_never_an_error(text: Any) -> None:
    assert parse_timestamp(text) is None and micros(text) is None


def test_a_callout_keeps_its_instant_in_utc_for_the_queued_event() -> None:
    callout = load_callout({
        "id": "7865", "status": "New",
        "created_datetime": "2019-10-29T14:14:47.64300000-04:00:00",
        "last_activity_datetime": "2019-10-30T15:06:38.58300000-04:00:00",
    })
    assert callout.last_activity_us == 1_572_462_398_583_000
    assert to_micros(callout.created) == 1_572_372_887_643_000
    assert callout.record()["last_activity"] == "2019-10-30T19:06:38.583000+00:00"


def test_a_callout_without_last_activity_has_no_instant() -> None:
    callout = load_callout({"id": "7865", "status": "New"})
    assert callout.last_activity is None and callout.last_activity_us is None
    assert callout.record()["last_activity"] is None


def test_ilerts_report_time_is_read_the_same_way() -> None:
    webhook = load_alert_webhook(
        {"status": "ACCEPTED", "alertKey": "autotask-7865", "reportTime": "2019-10-29T18:15:02.551Z"}
    )
    assert to_micros(webhook.reported_at) == 1_572_372_902_551_000


# -- ordering across a daylight-saving change --------------------------------------------------
#
# On 2019-11-03 US Eastern time fell back from EDT (-04:00) to EST (-05:00) at 02:00 local.
# 01:30 EDT is 05:30Z; 01:10 EST, forty minutes later, is 06:10Z: later although its clock
# reads earlier. A tenant in that zone sends both forms within the hour.

EDT_0130 = "2019-11-03T01:30:00.00000000-04:00:00"  # 05:30Z
EST_0110 = "2019-11-03T01:10:00.00000000-05:00:00"  # 06:10Z


def test_the_two_sides_of_the_change_are_forty_minutes_apart() -> None:
    assert micros(EDT_0130) == 1_572_759_000_000_000
    assert micros(EST_0110) == 1_572_761_400_000_000


@pytest.fixture(params=["fakeredis", "redis"])
def app_on(request: pytest.FixtureRequest, make_app: AppFactory) -> Any:
    """The comparison is made in the store's Lua script: on both Redis implementations."""
    return make_app(real_redis=request.param == "redis")


def callout(app: Any, status: str, last_activity: str) -> Any:
    body = f"id=7865&status={status}&last_activity_datetime={last_activity.replace('+', '%2B')}"
    return app.test_client().post(CALLOUT, data=body, content_type=FORM)


def test_a_later_callout_with_the_winter_offset_is_applied(app_on: Any) -> None:
    assert callout(app_on, "New", EDT_0130).json == {"ticket": 7865, "action": "create", "state": "PENDING"}
    answer = callout(app_on, "Complete", EST_0110)
    assert answer.status_code == 202
    assert answer.json == {"ticket": 7865, "action": "resolve", "state": "RESOLVED"}
    resolve = get_bridge(app_on).store.queued("default", 7865)[-1]
    assert resolve["action"] == "resolve"
    assert resolve["callout"]["last_activity"] == "2019-11-03T06:10:00+00:00"


def test_an_earlier_callout_with_the_summer_offset_is_stale(app_on: Any) -> None:
    assert callout(app_on, "New", EST_0110).json == {"ticket": 7865, "action": "create", "state": "PENDING"}
    answer = callout(app_on, "Complete", EDT_0130)
    assert answer.status_code == 200
    assert answer.json == {"ticket": 7865, "action": "stale", "state": "PENDING"}
    assert [e["action"] for e in get_bridge(app_on).store.queued("default", 7865)] == ["create"]


def test_a_callout_without_a_time_keeps_the_last_known_one_for_later_comparisons(app_on: Any) -> None:
    assert callout(app_on, "New", EST_0110).json["action"] == "create"
    untimed = app_on.test_client().post(CALLOUT, data="id=7865&status=In+Progress", content_type=FORM)
    assert untimed.json == {"ticket": 7865, "action": "accept", "state": "ACCEPTED"}
    # Still older than the first callout's 06:10Z, although a callout without a time came between.
    older = callout(app_on, "Complete", EDT_0130)
    assert older.json == {"ticket": 7865, "action": "stale", "state": "ACCEPTED"}
