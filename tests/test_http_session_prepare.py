"""The outbound sessions prepare requests exactly as requests does, remembering what repeats."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from flask_autotask_ilert.http import make_session

URLS = [
    "https://api.ilert.com/api/events",
    "https://webservices5.autotask.net/atservicesrest/v1.0/Tickets/12345",
    "http://127.0.0.1:8080/atservicesrest/v1.0/Tickets/entityInformation/fields",
    "HTTPS://API.iLert.com/api/../api/events",
    "https://api.ilert.com/a path/with spaces?x=1&y=%41",
    "https://api.ilert.com",
]
HEADERS: list[dict[str, Any]] = [
    {},
    {"Accept": "application/json"},
    {"ApiIntegrationCode": "CODE", "UserName": "user@example.com", "Secret": "s3cret",
     "Content-Type": "application/json", "Accept": "application/json"},
    {"Accept-Encoding": None, "X-Bytes": b"raw"},
]


def _both(session: requests.Session, **request: Any) -> tuple[requests.PreparedRequest, ...]:
    plain = requests.Session()
    plain.headers.update(session.headers)
    return (
        session.prepare_request(requests.Request(**request)),
        plain.prepare_request(requests.Request(**request)),
    )


def _same(ours: requests.PreparedRequest, theirs: requests.PreparedRequest) -> None:
    assert ours.method == theirs.method
    assert ours.url == theirs.url
    assert list(ours.headers.items()) == list(theirs.headers.items())
    assert ours.body == theirs.body
    assert ours.hooks == theirs.hooks
    assert dict(ours._cookies) == dict(theirs._cookies)  # type: ignore[attr-defined]


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("headers", HEADERS)
@pytest.mark.parametrize(("method", "body"), [("GET", None), ("POST", {"a": [1, "ü"]}), ("PATCH", {})])
def test_prepared_like_requests(
    monkeypatch: pytest.MonkeyPatch, url: str, headers: dict[str, Any], method: str, body: Any
) -> None:
    monkeypatch.setenv("NETRC", "/nonexistent/netrc")
    session = make_session()
    for _ in range(2):  # the second time from what was remembered
        _same(*_both(session, method=method, url=url, headers=headers, json=body))


def test_each_request_gets_its_own_headers() -> None:
    session = make_session()
    first = session.prepare_request(requests.Request("POST", URLS[0], json={"a": 1}))
    first.headers["X-Changed"] = "yes"
    second = session.prepare_request(requests.Request("POST", URLS[0], json={"a": 1}))
    assert "X-Changed" not in second.headers


@pytest.mark.parametrize("extra", [
    {"params": {"user": "someone@example.com"}},
    {"auth": ("user", "password")},
    {"cookies": {"affinity": "1"}},
    {"data": {"form": "field"}},
    {"hooks": {"response": [lambda response, **kwargs: response]}},
])
def test_anything_else_is_prepared_by_requests(extra: dict[str, Any]) -> None:
    session = make_session()
    ours, theirs = _both(session, method="POST", url=URLS[0], **extra)
    assert ours.url == theirs.url
    assert dict(ours.headers) == dict(theirs.headers)
    assert ours.body == theirs.body


def test_cookies_the_server_set_are_sent_back() -> None:
    session = make_session()
    session.prepare_request(requests.Request("GET", URLS[1]))
    session.cookies.set("ARRAffinity", "abc", domain="webservices5.autotask.net", path="/")
    prepared = session.prepare_request(requests.Request("GET", URLS[1]))
    assert prepared.headers["Cookie"] == "ARRAffinity=abc"


def test_netrc_credentials_are_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.ilert.com login someone password secret\n")
    monkeypatch.setenv("NETRC", str(netrc))
    session = make_session()
    assert "Authorization" in session.prepare_request(requests.Request("POST", URLS[0], json={})).headers
    session.trust_env = False
    assert "Authorization" not in session.prepare_request(requests.Request("POST", URLS[0], json={})).headers


def test_credentials_in_the_url_are_used() -> None:
    session = make_session()
    prepared = session.prepare_request(requests.Request("GET", "https://user:pw@api.ilert.com/api/events"))
    assert prepared.headers["Authorization"].startswith("Basic ")

