"""RATE_LIMIT is on by default: 600 callouts a minute per source, far above any tenant.

The 600 callouts are sent through the test client as fast as it goes (well inside
the minute: nothing waits); the limiter counts them in its own storage.
"""

from __future__ import annotations

import pytest
from flask import Flask

from flask_autotask_ilert import ConfigurationError
from flask_autotask_ilert.config import OPTIONS_BY_NAME

from .conftest import TOKEN, AppFactory

URL = f"/autotask-ilert/callout/{TOKEN}"
TOKEN_B = "second-source-token-0123456789"
DEFAULT = 600


def flood(app: Flask, count: int) -> list[int]:
    client = app.test_client()
    return [client.post(URL, json={"id": n, "status": "New"}).status_code for n in range(1, count + 1)]


def test_the_default_is_600_a_minute() -> None:
    assert OPTIONS_BY_NAME["RATE_LIMIT"].default == f"{DEFAULT}/minute"


def test_the_601st_callout_of_a_minute_is_refused_by_default(make_app: AppFactory) -> None:
    app = make_app(sources={"team-b": {"callout_token": TOKEN_B, "ilert_integration_key": "key-b"}})
    assert set(flood(app, DEFAULT)) == {202}
    refused = app.test_client().post(URL, json={"id": 601, "status": "New"})
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.json["code"] == "too_many_requests"
    assert app.extensions["autotask_ilert"].store.mapping("default", 601) is None  # nothing recorded
    # Per source: the other one is untouched.
    other = app.test_client().post(f"/autotask-ilert/callout/{TOKEN_B}", json={"id": 1, "status": "New"})
    assert other.status_code == 202


@pytest.mark.parametrize("off", ["Off", " off "])
def test_off_turns_it_off(make_app: AppFactory, off: str) -> None:
    app = make_app(rate_limit=off)
    assert app.extensions["autotask_ilert"].settings.sources["default"].rate_limit is None
    assert set(flood(app, DEFAULT + 1)) == {202}


def test_a_source_may_raise_it(make_app: AppFactory) -> None:
    app = make_app(rate_limit="3000/minute")
    assert set(flood(app, DEFAULT + 1)) == {202}


def test_a_bad_limit_is_still_refused(make_app: AppFactory) -> None:
    with pytest.raises(ConfigurationError, match="RATE_LIMIT"):
        make_app(rate_limit="offf")
