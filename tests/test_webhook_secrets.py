"""The ilert webhook's header value and Basic password are as strong as a token (16 characters)."""

from __future__ import annotations

import pytest

from flask_autotask_ilert import ConfigurationError

from .conftest import AppFactory

SYNC = {"bidirectional": True, "ticket_updater": lambda update: None}
STRONG = "x7Kq-2mWz_9PvLr4"  # exactly 16


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"webhook_header_name": "X-Secret", "webhook_header_value": STRONG[:-1]}, "WEBHOOK_HEADER_VALUE"),
        ({"webhook_header_name": "X-Secret", "webhook_header_value": "tab\tin-the-value-x"},
         "WEBHOOK_HEADER_VALUE"),
        ({"webhook_username": "ilert", "webhook_password": STRONG[:-1]}, "WEBHOOK_PASSWORD"),
        ({"webhook_username": "ilert", "webhook_password": "hunter2"}, "WEBHOOK_PASSWORD"),
    ],
)
def test_a_weak_webhook_secret_is_refused(make_app: AppFactory, config: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigurationError, match=f"{named} must be at least 16 printable") as raised:
        make_app(**SYNC, **config)
    assert next(iter(v for k, v in config.items() if k.endswith(("value", "password")))) not in str(
        raised.value
    )


def test_a_weak_secret_in_a_source_entry_is_refused(make_app: AppFactory) -> None:
    sources = {"team-b": {"callout_token": "team-b-token-0123456789abcdef", "ilert_integration_key": "k",
                          **SYNC, "webhook_username": "ilert", "webhook_password": "short"}}
    with pytest.raises(ConfigurationError, match="source 'team-b': WEBHOOK_PASSWORD"):
        make_app(sources=sources)


@pytest.mark.parametrize(
    "config",
    [
        {"webhook_header_name": "X-Secret", "webhook_header_value": STRONG},
        {"webhook_username": "ilert", "webhook_password": STRONG},
    ],
)
def test_sixteen_characters_are_enough(make_app: AppFactory, config: dict[str, str]) -> None:
    app = make_app(**SYNC, **config)
    assert app.extensions["autotask_ilert"].settings.sources["default"].sync is not None
