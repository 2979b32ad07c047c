"""Each option's constraint rejects a bad value at load time, naming the option and never the value."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from flask_autotask_ilert import ConfigurationError
from flask_autotask_ilert.config import OPTIONS, OPTIONS_BY_NAME, PREFIX, Settings, load_settings
from flask_autotask_ilert.constraints import (
    AtLeast,
    Between,
    IsCallable,
    OneOf,
    Positive,
    RateLimit,
    StartsWith,
    Template,
    Token,
)

TOKEN = "callout-token-0123456789"
NOC = "source 'noc': "
BASE = {f"{PREFIX}CALLOUT_TOKEN": TOKEN, f"{PREFIX}ILERT_INTEGRATION_KEY": "key"}


def load(**config: Any) -> Settings:
    return load_settings({**BASE, **{PREFIX + k: v for k, v in config.items()}}, {})


def problem(**config: Any) -> str:
    with pytest.raises(ConfigurationError) as raised:
        load(**config)
    return str(raised.value)


# -- one bad value per kind of constraint, each named by its key ------------------------------------


@pytest.mark.parametrize(
    ("name", "bad", "expected"),
    [
        ("MAX_BODY_BYTES", 0, "must be > 0"),  # Positive
        ("WORKER_LEASE_SECONDS", -1.5, "must be > 0"),
        ("ENRICH_ATTEMPTS", 0, "must be >= 1"),  # AtLeast
        ("AUDIT_ENTRIES", 101, "must be from 0 to 100"),  # Between
        ("AUDIT_ENTRIES", -1, "must be from 0 to 100"),
        ("AUTOTASK_THRESHOLD_SHARE", 0, "must be > 0 and <= 1"),  # Between, open below
        ("AUTOTASK_THRESHOLD_SHARE", 1.01, "must be > 0 and <= 1"),
        ("LOG_FORMAT", "yaml", "must be 'text' or 'json'"),  # OneOf
        ("URL_PREFIX", "autotask-ilert", "must start with '/'"),  # StartsWith
        ("METRICS_TOKEN", "short", "must be at least 16 printable characters"),  # Token
    ],
)
def test_an_application_option_out_of_bounds_is_named_by_its_key(name: str, bad: Any, expected: str) -> None:
    message = problem(**{name: bad})
    assert message.startswith(f"{PREFIX}{name} {expected}")


@pytest.mark.parametrize(
    ("name", "good"),
    [
        ("MAX_BODY_BYTES", 1),
        ("ENRICH_ATTEMPTS", 1),
        ("AUDIT_ENTRIES", 0),
        ("AUDIT_ENTRIES", 100),
        ("AUTOTASK_THRESHOLD_SHARE", 1),
        ("LOG_FORMAT", " JSON "),
        ("URL_PREFIX", "/"),
        ("METRICS_TOKEN", "m" * 16),
    ],
)
def test_the_bounds_themselves_are_allowed(name: str, good: Any) -> None:
    load(**{name: good})


def test_values_reach_the_settings_converted() -> None:
    settings = load(URL_PREFIX="/bridge/", LOG_FORMAT=" JSON ", WORKER_LEASE_SECONDS=1.5,
                    RESOLVED_RETENTION_DAYS=0.5, AUDIT_REJECT_HOURS=2, METRICS_TOKEN="",
                    HTTP_CONNECT_TIMEOUT=1.25, HTTP_READ_TIMEOUT=7)
    assert settings.url_prefix == "/bridge"
    assert settings.log_format == "json"
    assert settings.worker_lease_ms == 1500
    assert settings.resolved_retention_ms == 43_200_000
    assert settings.audit_reject_ms == 7_200_000
    assert settings.metrics_token is None
    assert settings.http_timeout == (1.25, 7)


def test_an_unset_optional_option_is_not_checked_but_a_required_value_is() -> None:
    assert load(METRICS_TOKEN=None).metrics_token is None
    assert "must be > 0" in problem(WORKER_THREADS=None)


# -- per-source options: named by source and option ------------------------------------------------


def sources(**entry: Any) -> str:
    with pytest.raises(ConfigurationError) as raised:
        load_settings({f"{PREFIX}SOURCES": {"noc": {"callout_token": TOKEN, "ilert_integration_key": "k",
                                                   **entry}}}, {})
    return str(raised.value)


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"ilert_rate_limit": -1}, "source 'noc': ILERT_RATE_LIMIT must be >= 0"),
        ({"ilert_rate_window_seconds": 0}, "source 'noc': ILERT_RATE_WINDOW_SECONDS must be > 0"),
        ({"rate_limit": "lots"}, "source 'noc': RATE_LIMIT is not a rate limit"),
        ({"rate_limit": "0/second"}, "source 'noc': RATE_LIMIT is not a rate limit"),
        ({"callout_token": [TOKEN, "has/a/slash-0123456789"]}, f"{NOC}CALLOUT_TOKEN must be at least 16"),
        ({"callout_token": "tab\tin-the-token-0123"}, f"{NOC}CALLOUT_TOKEN must be at least 16"),
    ],
)
def test_a_source_option_out_of_bounds_names_the_source_and_option(
    entry: dict[str, Any], expected: str
) -> None:
    assert sources(**entry).startswith(expected)


SYNC = {"bidirectional": True, "webhook_token": "webhook-token-0123456789", "ticket_updater": print}


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"webhook_token": "short"}, "source 'noc': WEBHOOK_TOKEN must be at least 16"),
        ({"note_title": "{ticket}"}, NOC + "NOTE_TITLE may use only {who} {when} {alert_id} {alert_url}"),
        ({"resolve_note": "{who"}, "source 'noc': RESOLVE_NOTE may use only"),
        ({"accept_note": "{0}"}, "source 'noc': ACCEPT_NOTE may use only"),
        ({"ticket_updater": 42}, "source 'noc': TICKET_UPDATER must be a callable or a class"),
    ],
)
def test_sync_options_are_checked_in_a_bidirectional_source(entry: dict[str, Any], expected: str) -> None:
    assert sources(**{**SYNC, **entry}).startswith(expected)


def test_sync_options_are_not_checked_without_bidirectional() -> None:
    """As before constraints were data: a source that does not sync ignores its sync options."""
    settings = load_settings({f"{PREFIX}SOURCES": {"noc": {
        "callout_token": TOKEN, "ilert_integration_key": "k",
        "webhook_token": "short", "accept_note": "{whom}", "ticket_updater": 42,
    }}}, {})
    assert settings.sources["noc"].sync is None


def test_token_errors_never_show_the_token() -> None:
    for message in (sources(callout_token="hunter2/part-0123456789"), problem(METRICS_TOKEN="hunter2-short")):
        assert "hunter2" not in message


# -- the constraints themselves ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("constraint", "good", "bad"),
    [
        (Positive(), [0.001, 1], [0, -1, None, "1", True]),
        (AtLeast(1), [1, 2.5], [0.99, None]),
        (Between(0, 100), [0, 100, 50.5], [-0.1, 100.1, None]),
        (Between(0, 1, low_exclusive=True), [0.01, 1], [0, 1.5]),
        (OneOf(("text", "json")), ["text", "JSON"], ["xml", "", None]),
        (StartsWith("/"), ["/", "/x"], ["x/", "", None]),
        (Token(), ["t" * 16, ("t" * 16, "u" * 20)],
         ["t" * 15, "t" * 15 + "/", ("t" * 16, "short"), 1234567890123456]),
        (RateLimit(), ["10/second", "10/second;3000/minute"], ["ten", "0/minute", ""]),
        (Template(("who",)), ["by {who}", "plain", "{{literal}}"], ["{whom}", "{", "{0}"]),
        (IsCallable(), [print, dict], ["print", None]),
    ],
)
def test_each_kind_accepts_and_rejects(constraint: Any, good: list[Any], bad: list[Any]) -> None:
    assert [constraint.check(v) for v in good] == [None] * len(good)
    assert all(constraint.check(v) for v in bad)
    assert constraint.describe()


def test_every_application_option_fills_a_settings_field_or_is_read_by_a_rule() -> None:
    fields = {f.name for f in dataclasses.fields(Settings)}
    filled = {o.setting for o in OPTIONS if not o.per_source and o.setting is not None}
    assert filled <= fields
    assert fields - filled == {"sources"}
    assert {o.name for o in OPTIONS if not o.per_source and o.setting is None} == {"SOURCES", "SOURCES_FILE"}


def test_only_with_names_a_boolean_option() -> None:
    for option in OPTIONS:
        if option.only_with:
            assert option.per_source
            assert OPTIONS_BY_NAME[option.only_with].kind is bool
