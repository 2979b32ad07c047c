"""The Autotask credentials go to Autotask only (``AUTOTASK_ALLOWED_HOSTS``).

Configured URLs are checked at ``init_app``; what the zone lookup answers is checked
before anything is sent there, and a refused zone gets no request at all.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import responses
from flask import Flask

from flask_autotask_ilert import ConfigurationError
from flask_autotask_ilert.autotask import AutotaskClient, AutotaskError, Zone

from .conftest import TOKEN, AppFactory, drain

LOOKUP = "https://webservices.autotask.net/atservicesrest/v1.0/zoneInformation"
ZONE5 = "https://webservices5.autotask.net/atservicesrest"
ILERT = "http://ilert.invalid/api/events"
USER, SECRET, CODE = "api-user@example.com", "at-SECRET-value-trusted", "AT-CODE-trusted"
CREDENTIALS = {"autotask_username": USER, "autotask_secret": SECRET, "autotask_integration_code": CODE}


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def client(**kwargs: Any) -> AutotaskClient:
    return AutotaskClient(USER, SECRET, CODE, **kwargs)


def hosts_asked(rsps: responses.RequestsMock) -> list[str]:
    return [str(call.request.url).split("/")[2] for call in rsps.calls]


def no_credentials_sent(rsps: responses.RequestsMock) -> bool:
    return all(
        name not in call.request.headers for call in rsps.calls
        for name in ("Secret", "ApiIntegrationCode", "UserName")
    )


@pytest.mark.parametrize(
    ("url", "web_url"),
    [
        ("https://evil.example/", "https://ww5.autotask.net"),
        ("https://evilautotask.net/atservicesrest", "https://ww5.autotask.net"),
        ("https://webservices5.autotask.net.evil.com/atservicesrest", "https://ww5.autotask.net"),
        ("http://webservices5.autotask.net/atservicesrest", "https://ww5.autotask.net"),
        ("https://user@evil.example/atservicesrest", "https://ww5.autotask.net"),
        (ZONE5, "https://evil.example"),
        (ZONE5, "http://ww5.autotask.net"),
    ],
)
def test_a_zone_outside_the_allowed_hosts_gets_no_credentials(
    rsps: responses.RequestsMock, url: str, web_url: str
) -> None:
    rsps.get(LOOKUP, json={"zoneName": "x", "url": url, "webUrl": web_url})
    rsps.get("https://evil.example/v1.0/Tickets/7", json={"item": {"id": 7}})
    at = client()
    with pytest.raises(AutotaskError, match="AUTOTASK_ALLOWED_HOSTS") as raised:
        at.get_ticket(7)
    assert raised.value.retryable is False  # the same lookup would answer the same
    assert SECRET not in str(raised.value) and CODE not in str(raised.value)
    assert hosts_asked(rsps) == ["webservices.autotask.net"]  # the lookup only, nothing after it
    assert no_credentials_sent(rsps)
    with pytest.raises(AutotaskError):
        at.ticket_url(7)  # nor does the refused webUrl reach an alert link


def test_an_autotask_zone_is_used(rsps: responses.RequestsMock) -> None:
    rsps.get(LOOKUP, json={"zoneName": "x", "url": ZONE5 + "/", "webUrl": "https://ww5.autotask.net/"})
    rsps.get(f"{ZONE5}/v1.0/Tickets/7", json={"item": {"id": 7}})
    at = client()
    assert at.get_ticket(7) == {"id": 7}
    assert at.zone() == Zone(ZONE5, "https://ww5.autotask.net")
    assert rsps.calls[1].request.headers["Secret"] == SECRET


def test_a_loopback_zone_over_http_is_used(rsps: responses.RequestsMock) -> None:
    """The simulators of the demo and the tests."""
    sim = "http://127.0.0.1:8055/atservicesrest"
    rsps.get("http://127.0.0.1:8055/atservicesrest/v1.0/zoneInformation",
             json={"url": sim, "webUrl": "http://127.0.0.1:8055"})
    rsps.get(f"{sim}/v1.0/Tickets/7", json={"item": {"id": 7}})
    at = client(zone_lookup_url=sim)
    assert at.get_ticket(7) == {"id": 7}
    assert at.ticket_url(7).startswith("http://127.0.0.1:8055/")


def test_an_allowed_suffix_of_ones_own(rsps: responses.RequestsMock) -> None:
    rsps.get(LOOKUP, json={"url": "https://at.proxy.example.org/atservicesrest"})
    rsps.get("https://at.proxy.example.org/atservicesrest/v1.0/Tickets/7", json={"item": {"id": 7}})
    assert client(allowed_hosts=["autotask.net", ".Example.org"]).get_ticket(7) == {"id": 7}
    assert client(allowed_hosts="example.org").get_ticket(7) == {"id": 7}  # one text, not its letters


def test_a_fixed_url_outside_the_allowed_hosts_gets_no_credentials(rsps: responses.RequestsMock) -> None:
    """A client built without the configuration's check still refuses before sending."""
    rsps.get("https://evil.example/atservicesrest/v1.0/Tickets/7", json={"item": {"id": 7}})
    with pytest.raises(AutotaskError, match="AUTOTASK_ALLOWED_HOSTS"):
        client(api_url="https://evil.example/atservicesrest").get_ticket(7)
    assert list(rsps.calls) == []


# -- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "url"),
    [
        ("autotask_api_url", "https://evil.example/atservicesrest"),
        ("autotask_api_url", "https://evilautotask.net/atservicesrest"),
        ("autotask_api_url", "https://autotask.net.evil.com/atservicesrest"),
        ("autotask_api_url", "http://webservices5.autotask.net/atservicesrest"),
        ("autotask_web_url", "https://evil.example"),
        ("autotask_web_url", "http://ww5.autotask.net"),
        ("autotask_zone_lookup_url", "https://zones.evil.example/atservicesrest"),
    ],
)
def test_a_configured_url_outside_the_allowed_hosts_is_refused(
    make_app: AppFactory, option: str, url: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        make_app(**CREDENTIALS, **{option: url})
    message = str(raised.value)
    assert f"AUTOTASK_ILERT_{option.upper()}" in message
    assert "AUTOTASK_ALLOWED_HOSTS (autotask.net)" in message
    assert SECRET not in message and CODE not in message


def test_every_source_is_checked(make_app: AppFactory) -> None:
    sources = {"team-b": {"callout_token": "team-b-token-0123456789abcdef", "ilert_integration_key": "k",
                          **CREDENTIALS, "autotask_api_url": "https://evil.example/x"}}
    with pytest.raises(ConfigurationError, match="source 'team-b': AUTOTASK_ILERT_AUTOTASK_API_URL"):
        make_app(sources=sources)


@pytest.mark.parametrize(
    "config",
    [
        {"autotask_api_url": "https://webservices5.autotask.net/atservicesrest",
         "autotask_web_url": "https://ww5.autotask.net"},
        {"autotask_api_url": "http://127.0.0.1:8055/atservicesrest", "autotask_web_url": "http://localhost:8055"},
        {"autotask_api_url": "http://[::1]:8055/atservicesrest"},
        {"autotask_zone_lookup_url": "http://127.0.0.1:8055/atservicesrest"},
        {"autotask_api_url": "https://at.proxy.example.org/x",
         "autotask_allowed_hosts": "autotask.net, example.org"},
        {"autotask_api_url": "https://at.proxy.example.org/x", "autotask_allowed_hosts": ["example.org"]},
    ],
)
def test_allowed_urls_are_accepted(make_app: AppFactory, config: dict[str, Any]) -> None:
    app = make_app(**CREDENTIALS, **config)
    assert app.extensions["autotask_ilert"].settings.sources["default"].autotask is not None


def test_the_default_allows_autotask_only(make_app: AppFactory) -> None:
    settings = make_app(**CREDENTIALS).extensions["autotask_ilert"].settings
    assert settings.autotask_allowed_hosts == ("autotask.net",)


def test_a_refused_zone_pages_with_the_callout_and_sends_autotask_nothing(
    make_app: AppFactory, rsps: responses.RequestsMock
) -> None:
    """Through the worker: the alert goes out without Autotask's data or a link to evil.example."""
    app: Flask = make_app(**CREDENTIALS)
    rsps.get(LOOKUP, json={"url": "https://evil.example/atservicesrest", "webUrl": "https://evil.example"})
    rsps.post(ILERT, status=202, json={})
    answer = app.test_client().post(
        f"/autotask-ilert/callout/{TOKEN}", data="id=7865&number=T1&status=New",
        content_type="application/x-www-form-urlencoded",
    )
    assert answer.status_code == 202
    assert drain(app) == 1
    assert hosts_asked(rsps) == ["webservices.autotask.net", "ilert.invalid"]
    assert no_credentials_sent(rsps)
    event = json.loads(rsps.calls[1].request.body)
    assert "evil.example" not in json.dumps(event)
