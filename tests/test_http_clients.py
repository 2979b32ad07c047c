"""Outbound clients: ilert Events API and Autotask REST, against adapter-level fakes."""

from __future__ import annotations

import email.utils
import json
import pickle
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
import responses
from responses import matchers

from flask_autotask_ilert import __version__
from flask_autotask_ilert.autotask import AutotaskClient, AutotaskError, Zone, derive_web_url
from flask_autotask_ilert.http import (
    DEFAULT_TIMEOUT,
    backoff,
    make_session,
    parse_retry_after,
    redact,
    scrub,
    truncate,
)
from flask_autotask_ilert.ilert import IlertClient, SendResult, Verdict

DATA = Path(__file__).parent / "data"

LOOKUP = "https://webservices.autotask.net/atservicesrest/v1.0/zoneInformation"
ZONE5 = "https://webservices5.autotask.net/atservicesrest"
ZONE6 = "https://webservices6.autotask.net/atservicesrest"
EVENTS = "https://api.ilert.com/api/events"

USER = "api-user-QX7@example.com"
SECRET = "s3cr3t-Zq9!Kp#2 w/&+"
CODE = "INTCODE-7Y3KQ2M4ZR"


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_client(**kwargs: Any) -> AutotaskClient:
    params: dict[str, Any] = {"username": USER, "secret": SECRET, "integration_code": CODE}
    params.update(kwargs)
    return AutotaskClient(**params)


def add_zone(rsps: responses.RequestsMock, url: str = ZONE5, **kwargs: Any) -> None:
    body = dict(load("autotask-zone.json"), url=url)
    body["webUrl"] = url.replace("webservices", "ww").replace("/atservicesrest", "")
    rsps.get(LOOKUP, json=body, match=[matchers.query_param_matcher({"user": USER})], **kwargs)


# --------------------------------------------------------------------- http.py


def test_make_session_pools_without_retries() -> None:
    session = make_session(pool_maxsize=7)
    adapter = session.get_adapter("https://api.ilert.com")
    assert isinstance(adapter, requests.adapters.HTTPAdapter)
    assert adapter.max_retries.total == 0
    assert adapter._pool_maxsize == 7  # type: ignore[attr-defined]
    assert session.headers["User-Agent"] == f"flask-autotask-ilert/{__version__}"
    assert DEFAULT_TIMEOUT == (3.05, 10.0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 1.5 ", 1.5),
        ("0", 0.0),
        ("-5", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_parse_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date() -> None:
    now = 1_700_000_000.0
    future = email.utils.formatdate(now + 90, usegmt=True)
    past = email.utils.formatdate(now - 90, usegmt=True)
    assert parse_retry_after(future, now=now) == pytest.approx(90.0)
    assert parse_retry_after(past, now=now) == 0.0
    # "-0000" yields a naive datetime: still read as UTC.
    assert parse_retry_after(email.utils.formatdate(now + 30), now=now) == pytest.approx(30.0)
    assert parse_retry_after("Wed, 99 Foo 2024 99:99:99 GMT", now=now) is None


def test_redact_covers_escaped_spellings_and_nested_secrets() -> None:
    text = f"a {SECRET} b {quote(SECRET, safe='')} c {json.dumps(SECRET)}"
    out = redact(text, [SECRET, "", None])
    assert "Zq9" not in out
    assert out.count("***") == 3
    # The longer secret wins, so no fragment of it survives.
    assert redact("key=abcdef", ["abc", "abcdef"]) == "key=***"
    assert redact("nothing here", []) == "nothing here"


def test_truncate_and_scrub() -> None:
    assert truncate("x" * 200) == "x" * 200
    long = truncate("x" * 500)
    assert len(long) == 200 and long.endswith("…")
    # A secret straddling the cut is redacted whole before truncating.
    text = "y" * 190 + SECRET + "z" * 50
    cleaned = scrub(text, [SECRET])
    assert len(cleaned) <= 200
    assert SECRET[:5] not in cleaned
    assert scrub("line1\r\nline2\n\tend", []) == "line1 line2 end"


def test_backoff_bounds_and_growth() -> None:
    rng = random.Random(42)
    for attempt in range(12):
        ceiling = min(300.0, 2.0**attempt)
        for _ in range(50):
            delay = backoff(attempt, rng=rng)
            assert min(0.5, ceiling) <= delay <= ceiling
    assert backoff(10_000, rng=rng) <= 300.0  # no overflow on absurd attempt numbers
    assert 0.5 <= backoff(-3, rng=rng) <= 1.0


def test_backoff_formula_extremes() -> None:
    class Edge:
        def __init__(self, pick_high: bool) -> None:
            self.pick_high = pick_high

        def uniform(self, a: float, b: float) -> float:
            return b if self.pick_high else a

    assert backoff(0, base=2.0, rng=Edge(False)) == 1.0
    assert backoff(3, base=2.0, rng=Edge(True)) == 16.0
    assert backoff(20, base=2.0, cap=60.0, rng=Edge(True)) == 60.0
    assert backoff(20, base=2.0, cap=60.0, rng=Edge(False)) == 1.0
    assert backoff(5, base=0.0) == 0.0


# -------------------------------------------------------------------- ilert.py


def test_ilert_delivers_event(rsps: responses.RequestsMock) -> None:
    event = load("ilert-event-alert.json")
    rsps.post(
        EVENTS,
        status=202,
        json={"alertKey": "autotask-7865", "responseCode": "NEW_INCIDENT_CREATED"},
        match=[
            matchers.json_params_matcher(event),
            matchers.header_matcher(
                {"Accept": "application/json", "Content-Type": "application/json"}
            ),
        ],
    )
    result = IlertClient(api_url="https://api.ilert.com/").send_event(event)
    assert result == SendResult(Verdict.DELIVERED, 202, "http 202", None)
    assert result.done
    assert rsps.calls[0].request.headers["User-Agent"].startswith("flask-autotask-ilert/")


def test_ilert_accepts_200(rsps: responses.RequestsMock) -> None:
    rsps.post("https://ilert.example/api/events", status=200, json={})
    result = IlertClient(api_url="https://ilert.example").send_event({"integrationKey": "k"})
    assert result.verdict is Verdict.DELIVERED


def test_ilert_no_open_alert_is_already_done(rsps: responses.RequestsMock) -> None:
    rsps.post(
        EVENTS,
        status=400,
        json={"status": 400, "code": "NO_OPEN_ALERT_WITH_KEY", "message": "No open alert"},
    )
    result = IlertClient().send_event({"integrationKey": "k", "eventType": "RESOLVE"})
    assert result.verdict is Verdict.ALREADY_DONE
    assert result.status == 400
    assert result.done
    assert result.reason.startswith("http 400: NO_OPEN_ALERT_WITH_KEY")


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (400, {"code": "INVALID_INPUT"}, "http 400: INVALID_INPUT"),
        (401, {}, "http 401"),
        (403, None, "http 403"),
        (404, {"code": "NO_ALERT_SOURCE_FOUND"}, "http 404: NO_ALERT_SOURCE_FOUND"),
        (409, {"message": "conflict"}, "http 409: conflict"),
        (422, "plain text problem", "http 422: plain text problem"),
    ],
)
def test_ilert_client_errors_are_permanent(
    rsps: responses.RequestsMock, status: int, body: Any, reason: str
) -> None:
    if isinstance(body, str):
        rsps.post(EVENTS, status=status, body=body)
    else:
        rsps.post(EVENTS, status=status, json=body)
    result = IlertClient().send_event({"integrationKey": "k"})
    assert result == SendResult(Verdict.PERMANENT, status, reason, None)
    assert not result.done


def test_ilert_429_retry_after_seconds(rsps: responses.RequestsMock) -> None:
    rsps.post(EVENTS, status=429, headers={"Retry-After": "17"}, json={"code": "RATE_LIMITED"})
    result = IlertClient().send_event({"integrationKey": "k"})
    assert result.verdict is Verdict.RETRY
    assert result.status == 429
    assert result.retry_after == 17.0
    assert len(rsps.calls) == 1  # no internal retry


def test_ilert_429_retry_after_http_date(rsps: responses.RequestsMock) -> None:
    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    rsps.post(EVENTS, status=429, headers={"Retry-After": when})
    result = IlertClient().send_event({"integrationKey": "k"})
    assert result.verdict is Verdict.RETRY
    assert result.retry_after is not None and 100 < result.retry_after <= 120


def test_ilert_429_without_header(rsps: responses.RequestsMock) -> None:
    rsps.post(EVENTS, status=429)
    result = IlertClient().send_event({"integrationKey": "k"})
    assert (result.verdict, result.retry_after, result.reason) == (Verdict.RETRY, None, "http 429")


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_ilert_server_errors_retry_once(rsps: responses.RequestsMock, status: int) -> None:
    rsps.post(EVENTS, status=status, body="<html><body>Bad gateway</body></html>")
    result = IlertClient().send_event({"integrationKey": "k"})
    assert result == SendResult(Verdict.RETRY, status, f"http {status}", None)
    assert len(rsps.calls) == 1


@pytest.mark.parametrize(
    "exc",
    [
        requests.exceptions.ConnectTimeout(),
        requests.exceptions.ReadTimeout(),
        requests.exceptions.ConnectionError(),
        requests.exceptions.SSLError(),
        requests.exceptions.ChunkedEncodingError(),
    ],
)
def test_ilert_network_errors_retry(
    rsps: responses.RequestsMock, exc: requests.exceptions.RequestException
) -> None:
    rsps.post(EVENTS, body=exc)
    result = IlertClient().send_event({"integrationKey": "k"})
    assert result == SendResult(Verdict.RETRY, None, f"network: {type(exc).__name__}", None)


def test_ilert_redirect_is_permanent_and_not_followed(rsps: responses.RequestsMock) -> None:
    rsps.post(EVENTS, status=301, headers={"Location": "https://elsewhere.example/api/events"})
    result = IlertClient().send_event({"integrationKey": "k"})
    assert result.verdict is Verdict.PERMANENT
    assert len(rsps.calls) == 1


def test_ilert_request_errors_are_permanent(rsps: responses.RequestsMock) -> None:
    rsps.post(EVENTS, body=requests.exceptions.InvalidHeader())
    result = IlertClient().send_event({"integrationKey": "k"})
    assert result == SendResult(Verdict.PERMANENT, None, "request: InvalidHeader", None)


def test_ilert_reason_is_redacted_and_bounded(rsps: responses.RequestsMock) -> None:
    key = "il1api-DISTINCTIVE-KEY-0042"
    rsps.post(
        EVENTS,
        status=404,
        json={"code": "NO_ALERT_SOURCE_FOUND", "message": f"no source for {key} " + "x" * 500},
    )
    rsps.post(EVENTS, status=400, body=f"bad key\n{key}")
    rsps.post(EVENTS, status=503, json={"message": f"legacy {key}"})
    client = IlertClient()
    for event in ({"integrationKey": key}, {"apiKey": key}, {"integrationKey": key}):
        result = client.send_event(event)
        assert key not in result.reason and key not in repr(result)
        assert len(result.reason) <= 200
        assert "\n" not in result.reason
    assert key not in repr(client)


# ----------------------------------------------------------------- autotask.py


def test_zone_discovery_is_cached_and_unauthenticated(rsps: responses.RequestsMock) -> None:
    add_zone(rsps)
    ticket = load("autotask-ticket.json")
    rsps.get(f"{ZONE5}/v1.0/Tickets/7865", json=ticket)
    client = make_client()
    assert client.zone() == Zone(ZONE5, "https://ww5.autotask.net")
    for _ in range(5):
        assert client.get_ticket(7865) == ticket["item"]
    lookup = rsps.calls[0].request
    assert "Secret" not in lookup.headers and "ApiIntegrationCode" not in lookup.headers
    assert sum(1 for c in rsps.calls if str(c.request.url).startswith(LOOKUP)) == 1
    assert client.calls == 6
    assert client.ticket_url(7865) == (
        "https://ww5.autotask.net/Mvc/ServiceDesk/TicketDetail.mvc?ticketId=7865"
    )


def test_authenticated_headers(rsps: responses.RequestsMock) -> None:
    rsps.get(
        f"{ZONE5}/v1.0/Tickets/1",
        json={"item": None},
        match=[
            matchers.header_matcher(
                {
                    "ApiIntegrationCode": CODE,
                    "UserName": USER,
                    "Secret": SECRET,
                    "Content-Type": "application/json",
                    "ImpersonationResourceId": "29682885",
                }
            )
        ],
    )
    client = make_client(api_url=ZONE5 + "/", impersonation_resource_id=29682885)
    assert client.get_ticket(1) is None
    assert client.calls == 1  # explicit api_url: no discovery


@pytest.mark.parametrize(
    ("api_url", "web_url", "expected"),
    [
        (ZONE5, None, "https://ww5.autotask.net"),
        ("https://webservices14.autotask.net/atservicesrest/", None, "https://ww14.autotask.net"),
        ("http://127.0.0.1:8055/atservicesrest", None, "http://127.0.0.1:8055"),
        ("https://sim.example.org/atservicesrest", None, "https://sim.example.org"),
        (ZONE5, "https://custom.example/", "https://custom.example"),
    ],
)
def test_web_url_derivation(api_url: str, web_url: str | None, expected: str) -> None:
    client = make_client(api_url=api_url, web_url=web_url)
    assert client.zone() == Zone(api_url.rstrip("/"), expected)
    assert client.ticket_url(9).startswith(expected + "/Mvc/ServiceDesk/")
    assert client.calls == 0
    assert derive_web_url("https://webservices2.autotask.net/x") == "https://ww2.autotask.net"


def test_discovered_zone_without_web_url_is_derived(rsps: responses.RequestsMock) -> None:
    rsps.get(LOOKUP, json={"zoneName": "x", "url": ZONE6 + "/"})
    assert make_client().zone() == Zone(ZONE6, "https://ww6.autotask.net")


def test_discovered_zone_honours_explicit_web_url(rsps: responses.RequestsMock) -> None:
    add_zone(rsps)
    zone = make_client(web_url="https://portal.example").zone()
    assert zone == Zone(ZONE5, "https://portal.example")


def test_zone_lookup_unknown_user(rsps: responses.RequestsMock) -> None:
    rsps.get(LOOKUP, status=500, json={"errors": [f"user {USER} not found"]})
    with pytest.raises(AutotaskError) as info:
        make_client().get_ticket(1)
    assert info.value.retryable is False
    assert str(info.value) == "zone lookup failed for the configured API user"


def test_zone_lookup_transient_failure_is_retried_by_caller(rsps: responses.RequestsMock) -> None:
    rsps.get(LOOKUP, status=503)
    add_zone(rsps)
    client = make_client()
    with pytest.raises(AutotaskError) as info:
        client.zone()
    assert info.value.retryable is True and info.value.status == 503
    assert client.zone().api_url == ZONE5  # a failed lookup is not cached


def test_401_rediscovers_zone_once_then_succeeds(rsps: responses.RequestsMock) -> None:
    add_zone(rsps, ZONE5)
    rsps.get(f"{ZONE5}/v1.0/Tickets/7865", status=401)
    add_zone(rsps, ZONE6)
    rsps.get(f"{ZONE6}/v1.0/Tickets/7865", json={"item": {"id": 7865}})
    client = make_client()
    assert client.get_ticket(7865) == {"id": 7865}
    assert client.zone() == Zone(ZONE6, "https://ww6.autotask.net")
    assert client.calls == 4


def test_second_401_is_unauthorized(rsps: responses.RequestsMock) -> None:
    add_zone(rsps)
    rsps.get(f"{ZONE5}/v1.0/Tickets/1", status=401)
    add_zone(rsps)
    rsps.get(f"{ZONE5}/v1.0/Tickets/1", status=401)
    client = make_client()
    with pytest.raises(AutotaskError) as info:
        client.get_ticket(1)
    err = info.value
    assert (err.retryable, err.status) == (False, 401)
    assert str(err) == "unauthorized: check the API user, secret and integration code"
    assert client.calls == 4  # exactly one rediscovery and one repeat


def test_401_with_explicit_api_url_does_not_rediscover(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{ZONE5}/v1.0/Tickets/1", status=401)
    client = make_client(api_url=ZONE5)
    with pytest.raises(AutotaskError) as info:
        client.get_ticket(1)
    assert info.value.retryable is False and info.value.status == 401
    assert client.calls == 1


def test_thread_threshold_exceeded_is_retryable(rsps: responses.RequestsMock) -> None:
    rsps.patch(
        f"{ZONE5}/v1.0/Tickets",
        status=500,
        json={"errors": ["Thread Threshold Exceeded for integration code"]},
    )
    with pytest.raises(AutotaskError) as info:
        make_client(api_url=ZONE5).update_ticket(1, {"status": 8})
    assert info.value.retryable is True and info.value.status == 500
    assert "thread threshold exceeded" in str(info.value)


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(500, True), (502, True), (503, True), (400, False), (403, False), (404, False)],
)
def test_status_classification(rsps: responses.RequestsMock, status: int, retryable: bool) -> None:
    rsps.get(f"{ZONE5}/v1.0/Tickets/5", status=status, json={"errors": ["Something broke"]})
    client = make_client(api_url=ZONE5)
    with pytest.raises(AutotaskError) as info:
        client.get_ticket(5)
    assert info.value.retryable is retryable
    assert info.value.status == status
    assert f"http {status}: Something broke" in str(info.value)
    assert client.calls == 1


def test_429_carries_retry_after(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{ZONE5}/v1.0/ThresholdInformation", status=429, headers={"Retry-After": "42"})
    with pytest.raises(AutotaskError) as info:
        make_client(api_url=ZONE5).threshold_usage()
    assert (info.value.retryable, info.value.status, info.value.retry_after) == (True, 429, 42.0)


@pytest.mark.parametrize(
    "exc", [requests.exceptions.ConnectTimeout(), requests.exceptions.ChunkedEncodingError()]
)
def test_network_errors_are_retryable(
    rsps: responses.RequestsMock, exc: requests.exceptions.RequestException
) -> None:
    rsps.get(f"{ZONE5}/v1.0/Tickets/5", body=exc)
    client = make_client(api_url=ZONE5)
    with pytest.raises(AutotaskError) as info:
        client.get_ticket(5)
    assert info.value.retryable is True and info.value.status is None
    assert str(info.value) == f"get ticket 5: network: {type(exc).__name__}"
    assert info.value.__suppress_context__
    assert client.calls == 1


def test_update_ticket_patches_only_given_fields(rsps: responses.RequestsMock) -> None:
    rsps.patch(
        f"{ZONE5}/v1.0/Tickets",
        json={"itemId": 7865},
        match=[matchers.json_params_matcher({"id": 7865, "status": 8, "priority": 1})],
    )
    client = make_client(api_url=ZONE5)
    client.update_ticket(7865, {"status": 8, "priority": 1})
    assert [c.request.method for c in rsps.calls] == ["PATCH"]
    assert json.loads(rsps.calls[0].request.body or b"") == {"id": 7865, "status": 8, "priority": 1}
    with pytest.raises(ValueError, match="id"):
        client.update_ticket(7865, {"ID": 1})


def test_add_note(rsps: responses.RequestsMock) -> None:
    rsps.post(
        f"{ZONE5}/v1.0/Tickets/7865/Notes",
        json={"itemId": 31},
        match=[
            matchers.json_params_matcher(
                {"title": "t", "description": "d", "noteType": 1, "publish": 1}
            )
        ],
    )
    assert make_client(api_url=ZONE5).add_note(7865, "t", "d", 1, 1) == 31


def test_add_note_malformed_success_is_not_retryable(rsps: responses.RequestsMock) -> None:
    rsps.post(f"{ZONE5}/v1.0/Tickets/7865/Notes", json={"oops": True})
    with pytest.raises(AutotaskError) as info:
        make_client(api_url=ZONE5).add_note(7865, "t", "d", 1, 1)
    assert info.value.retryable is False


def test_threshold_usage(rsps: responses.RequestsMock) -> None:
    rsps.get(
        f"{ZONE5}/v1.0/ThresholdInformation",
        json={
            "externalRequestThreshold": 10000,
            "requestThresholdTimeframe": 60,
            "currentTimeframeRequestCount": 2500,
        },
    )
    assert make_client(api_url=ZONE5).threshold_usage() == pytest.approx(0.25)


def test_picklist_cached_per_entity_and_refreshed_after_ttl(
    rsps: responses.RequestsMock,
) -> None:
    fields = load("autotask-ticket-fields.json")
    url = f"{ZONE5}/v1.0/Tickets/entityInformation/fields"
    rsps.get(url, json=fields)
    clock = FakeClock()
    client = make_client(api_url=ZONE5, picklist_ttl=600.0, clock=clock)

    status = client.picklist("Tickets", "status")
    assert status["1"] == "New" and status["8"] == "In Progress"
    assert client.label_to_value("Tickets", "status", "  in progress ") == 8
    assert client.label_to_value("Tickets", "STATUS", "COMPLETE") == 5
    assert client.label_to_value("Tickets", "priority", "critical") is not None
    assert client.label_to_value("Tickets", "status", "No Such Status") is None
    assert client.picklist("Tickets", "title") == {}
    assert client.label_to_value("Tickets", "nonexistent", "New") is None
    assert client.calls == 1  # every field of the entity from one call

    clock.now += 599.0
    client.picklist("tickets", "priority")
    assert client.calls == 1

    renamed = json.loads(json.dumps(fields))
    renamed["fields"][0]["picklistValues"][3]["label"] = "Working On It"
    rsps.get(url, json=renamed)
    clock.now += 2.0
    assert client.label_to_value("Tickets", "status", "working on it") == 8
    assert client.calls == 2


def test_picklist_prefers_active_values_and_keeps_inactive_labels(
    rsps: responses.RequestsMock,
) -> None:
    rsps.get(
        f"{ZONE5}/v1.0/TicketNotes/entityInformation/fields",
        json={
            "fields": [
                {
                    "name": "noteType",
                    "isPickList": True,
                    "picklistValues": [
                        {"value": "2", "label": "Task Detail", "isActive": False},
                        {"value": "3", "label": "Task  Detail", "isActive": True},
                        {"value": "1", "label": "Old Only", "isActive": False},
                    ],
                }
            ]
        },
    )
    client = make_client(api_url=ZONE5)
    assert client.label_to_value("TicketNotes", "noteType", "task detail") == 3
    assert client.label_to_value("TicketNotes", "notetype", "old only") == 1
    assert client.picklist("TicketNotes", "noteType") == {
        "2": "Task Detail",
        "3": "Task  Detail",
        "1": "Old Only",
    }
    with pytest.raises(ValueError):
        client.picklist("Tickets/../Companies", "x")


def test_picklist_serves_stale_copy_when_refresh_fails(rsps: responses.RequestsMock) -> None:
    url = f"{ZONE5}/v1.0/Tickets/entityInformation/fields"
    rsps.get(url, json=load("autotask-ticket-fields.json"))
    rsps.get(url, status=503)
    clock = FakeClock()
    client = make_client(api_url=ZONE5, picklist_ttl=600.0, clock=clock)
    assert client.label_to_value("Tickets", "status", "New") == 1
    clock.now += 601.0
    assert client.label_to_value("Tickets", "status", "New") == 1
    assert client.label_to_value("Tickets", "status", "Complete") == 5
    assert client.calls == 2  # the failed refresh is not repeated on every lookup


def test_picklist_fetch_failure_without_cache_raises(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{ZONE5}/v1.0/Tickets/entityInformation/fields", status=503)
    with pytest.raises(AutotaskError) as info:
        make_client(api_url=ZONE5).picklist("Tickets", "status")
    assert info.value.retryable is True


def test_concurrent_picklist_lookups_share_one_fetch(rsps: responses.RequestsMock) -> None:
    def slow(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        time.sleep(0.05)
        return 200, {}, (DATA / "autotask-ticket-fields.json").read_text()

    rsps.add_callback(
        responses.GET, f"{ZONE5}/v1.0/Tickets/entityInformation/fields", callback=slow
    )
    client = make_client(api_url=ZONE5)
    results: list[int | None] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(client.label_to_value("Tickets", "status", "New"))
        )
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [1] * 8
    assert client.calls == 1


def test_autotask_error_pickles() -> None:
    err = AutotaskError("x: http 503", retryable=True, status=503, retry_after=2.0)
    copy = pickle.loads(pickle.dumps(err))  # noqa: S301 - our own bytes
    assert (str(copy), copy.retryable, copy.status, copy.retry_after) == (
        "x: http 503",
        True,
        503,
        2.0,
    )


# ------------------------------------------------------------------- secrecy


def test_no_secret_leaks_from_any_error_path(rsps: responses.RequestsMock) -> None:
    """Every failure, with servers echoing the credentials back, stays secret-free."""
    echo = {"errors": [f"bad {SECRET} / {CODE} for {USER}" + " pad" * 100]}
    t = f"{ZONE5}/v1.0/Tickets"
    failures: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", LOOKUP, {"status": 500, "json": echo}),
        ("GET", LOOKUP, {"status": 503, "body": f"down {SECRET} {CODE} {USER}"}),
        ("GET", LOOKUP, {"status": 404, "json": echo}),
        ("GET", LOOKUP, {"body": requests.exceptions.ConnectTimeout(f"{USER}")}),
        ("GET", LOOKUP, {"json": {"url": None, "echo": SECRET}}),
    ]
    for method, url, kwargs in failures:
        rsps.add(method, url, **kwargs)

    messages: list[str] = []

    def collect(call: Any) -> None:
        with pytest.raises(AutotaskError) as info:
            call()
        messages.extend([str(info.value), repr(info.value), info.value.message])

    discovering = make_client()
    for _ in failures:
        collect(discovering.zone)

    fixed = make_client(api_url=ZONE5)
    rsps.get(f"{t}/1", status=500, json=echo)
    rsps.get(f"{t}/1", status=500, json={"errors": [f"Thread Threshold Exceeded {SECRET}"]})
    rsps.get(f"{t}/1", status=400, body=f"plain {SECRET} {CODE} {USER}")
    rsps.get(f"{t}/1", status=404, json={"message": f"{CODE}"})
    rsps.get(f"{t}/1", status=429, json=echo)
    rsps.get(f"{t}/1", status=401, json=echo)
    rsps.get(f"{t}/1", body=requests.exceptions.ReadTimeout(f"{SECRET}"))
    rsps.get(f"{t}/1", body=requests.exceptions.InvalidURL(f"{SECRET}"))
    rsps.get(f"{t}/1", json={"item": f"{SECRET}"})
    for _ in range(9):
        collect(lambda: fixed.get_ticket(1))
    rsps.patch(t, status=500, json=echo)
    collect(lambda: fixed.update_ticket(1, {"status": 5}))
    rsps.post(f"{t}/1/Notes", status=500, json=echo)
    collect(lambda: fixed.add_note(1, "t", "d", 1, 1))
    rsps.get(f"{ZONE5}/v1.0/ThresholdInformation", status=500, json=echo)
    collect(fixed.threshold_usage)
    rsps.get(f"{ZONE5}/v1.0/Tickets/entityInformation/fields", status=500, json=echo)
    collect(lambda: fixed.picklist("Tickets", "status"))

    reasons: list[str] = []
    ilert = IlertClient()
    key_event = {"integrationKey": SECRET}
    for kwargs in (
        {"status": 404, "json": {"code": "NO_ALERT_SOURCE_FOUND", "message": f"key {SECRET}"}},
        {"status": 400, "json": {"code": "NO_OPEN_ALERT_WITH_KEY", "message": SECRET}},
        {"status": 429, "body": SECRET},
        {"status": 500, "json": {"message": quote(SECRET, safe="")}},
        {"body": requests.exceptions.ConnectionError(SECRET)},
    ):
        rsps.add("POST", EVENTS, **kwargs)
        result = ilert.send_event(key_event)
        reasons.extend([result.reason, repr(result)])

    texts = [*messages, *reasons, repr(discovering), repr(fixed), repr(ilert)]
    assert len(messages) == 3 * (len(failures) + 13)
    for text in texts:
        for secret in (SECRET, CODE, USER, quote(SECRET, safe="")):
            assert secret not in text, text
    # Echoed bodies are kept (redacted), so operators still see what went wrong.
    assert any("bad *** / *** for ***" in m for m in messages)
    assert any("key ***" in r for r in reasons)
    assert all(len(m) <= 300 for m in messages)
