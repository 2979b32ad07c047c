"""The outbound sessions still send what requests would: server cookies, netrc and URL credentials.

requests prepares every request itself (``http._Session`` overrides only the
environment lookup); these pin the behaviours a user relies on, so that a
future shortcut in preparation cannot drop them unnoticed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from flask_autotask_ilert.http import USER_AGENT, make_session

ILERT = "https://api.ilert.com/api/events"
AUTOTASK = "https://webservices5.autotask.net/atservicesrest/v1.0/Tickets/12345"


def test_cookies_the_server_set_are_sent_back() -> None:
    session = make_session()
    session.prepare_request(requests.Request("GET", AUTOTASK))
    session.cookies.set("ARRAffinity", "abc", domain="webservices5.autotask.net", path="/")
    prepared = session.prepare_request(requests.Request("GET", AUTOTASK))
    assert prepared.headers["Cookie"] == "ARRAffinity=abc"


def test_netrc_credentials_are_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.ilert.com login someone password secret\n")
    monkeypatch.setenv("NETRC", str(netrc))
    session = make_session()
    assert "Authorization" in session.prepare_request(requests.Request("POST", ILERT, json={})).headers
    session.trust_env = False
    assert "Authorization" not in session.prepare_request(requests.Request("POST", ILERT, json={})).headers


def test_credentials_in_the_url_are_used() -> None:
    session = make_session()
    prepared = session.prepare_request(requests.Request("GET", "https://user:pw@api.ilert.com/api/events"))
    assert prepared.headers["Authorization"].startswith("Basic ")


def test_the_session_headers_and_the_requests_own_are_both_sent() -> None:
    session = make_session()
    prepared = session.prepare_request(
        requests.Request("POST", ILERT, headers={"Accept": "application/json"}, json={"a": 1})
    )
    assert prepared.headers["User-Agent"] == USER_AGENT
    assert prepared.headers["Accept"] == "application/json"
    assert prepared.body == b'{"a": 1}'
