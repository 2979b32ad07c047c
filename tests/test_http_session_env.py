"""The outbound sessions read the environment once a minute per origin, with requests' result."""

from __future__ import annotations

import pytest
import requests

from flask_autotask_ilert.http import make_session


@pytest.mark.parametrize("url", ["https://api.ilert.com/api/events", "http://127.0.0.1:8080/x"])
def test_environment_settings_are_what_requests_computes(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    plain, session = requests.Session(), make_session()
    for _ in range(2):  # the second answer comes from the cache
        assert session.merge_environment_settings(url, {}, None, None, None) == (
            plain.merge_environment_settings(url, {}, None, None, None)
        )


def test_a_changed_environment_takes_effect_after_the_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    session = make_session()
    url = "https://api.ilert.com/api/events"
    assert "https" not in session.merge_environment_settings(url, {}, None, None, None)["proxies"]
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setattr(type(session), "ENV_TTL", 0.0)
    proxies = session.merge_environment_settings(url, {}, None, None, None)["proxies"]
    assert proxies["https"] == "http://proxy.example:3128"


def test_proxies_given_by_the_caller_bypass_the_cache() -> None:
    session = make_session()
    given = {"https": "http://other.example:8080"}
    settings = session.merge_environment_settings("https://api.ilert.com/", given, None, None, None)
    assert settings["proxies"]["https"] == "http://other.example:8080"
