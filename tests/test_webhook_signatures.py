"""The webhook signature check (signatures.py) against the simulator's independent .NET escaping."""

from __future__ import annotations

import hmac
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flask_autotask_ilert.signatures as signatures
from flask_autotask_ilert.testing.autotask_sim import dotnet_json, hook_signature

SECRET = "hook-secret-Zq8w1e9r7t6y5u4i"
PAYLOAD = {"Action": "Update", "Guid": "a1da62a4", "EntityType": "Ticket", "Id": 7865,
           "Fields": {"status": 8, "title": "A <b> & 'c' \"d\" +e `f` é 😀 \\ \n"},
           "EventTime": "2019-10-30T19:06:38Z", "SequenceNumber": 12, "PersonID": 30691780}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def test_the_escaping_is_what_dotnet_writes() -> None:
    assert signatures.net_string("<&>'\"+`é😀\\\n\x01\x7f") == (
        '"\\u003C\\u0026\\u003E\\u0027\\u0022\\u002B\\u0060\\u00E9\\uD83D\\uDE00\\\\\\n\\u0001\\u007F"'
    )


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_both_escapings_agree_on_any_json(value: Any) -> None:
    """The bridge's escaping and the simulator's were written apart; they must agree."""
    assert signatures.net_json(value) == dotnet_json(value)
    for separators in ((",", ":"), (", ", ": ")):
        for ascii_only in (True, False):
            raw = json.dumps(value, ensure_ascii=ascii_only, separators=separators)
            assert signatures.net_escape_text(raw) == dotnet_json(value, separators)


@pytest.mark.parametrize("form", ["raw", "escaped-raw", "escaped-compact"])
def test_each_form_verifies_and_a_wrong_one_does_not(form: str) -> None:
    body = json.dumps(PAYLOAD, ensure_ascii=False, indent=1).encode()
    # The escaped raw text keeps the body's newlines and indentation; only the strings change.
    escaped_raw = body.decode()
    for value in ("Action", "Update", "Guid", "a1da62a4", "EntityType", "Ticket", "Id", "Fields",
                  "status", "title", "EventTime", "2019-10-30T19:06:38Z", "SequenceNumber", "PersonID"):
        escaped_raw = escaped_raw.replace(f'"{value}"', dotnet_json(value))
    escaped_raw = escaped_raw.replace(json.dumps(PAYLOAD["Fields"]["title"], ensure_ascii=False),
                                      dotnet_json(PAYLOAD["Fields"]["title"]))
    texts = {"raw": body, "escaped-raw": escaped_raw.encode(),
             "escaped-compact": dotnet_json(PAYLOAD).encode()}
    text = texts[form]
    assert len(set(texts.values())) == 3
    header = hook_signature(SECRET, text)
    assert signatures.verify(SECRET, header, body, json.loads(body))
    assert signatures.verify(SECRET, "SHA1=" + header[5:], body, json.loads(body))
    assert not signatures.verify(SECRET + "x", header, body, json.loads(body))
    assert not signatures.verify(SECRET, header.replace("sha1=", "sha256="), body, json.loads(body))
    changed = body.replace(b"7865", b"7866")
    assert not signatures.verify(SECRET, header, changed, json.loads(changed))
    assert not signatures.verify(SECRET, None, body, json.loads(body))
    assert not signatures.verify(SECRET, "", body, json.loads(body))


def test_only_the_raw_form_is_tried_for_a_body_that_is_not_json() -> None:
    body = b"not json at all"
    assert signatures.verify(SECRET, hook_signature(SECRET, body), body, None)
    assert signatures.candidates(body, None) == [body]


def test_every_form_is_compared_in_constant_time_whatever_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(signatures.hmac, "compare_digest", counting)
    body = json.dumps(PAYLOAD).encode()
    for header in (hook_signature(SECRET, body), "sha1=wrong", None):
        compared.clear()
        signatures.verify(SECRET, header, body, PAYLOAD)
        assert len(compared) == 3, header  # the raw body and both escaped forms, always


def test_a_body_of_very_many_strings_is_checked_in_its_raw_form_only() -> None:
    value = {"Action": "Update", "x": ["<"] * (signatures.MAX_ESCAPED_QUOTES // 2)}
    body = json.dumps(value).encode()
    assert body.count(b'"') > signatures.MAX_ESCAPED_QUOTES
    assert signatures.candidates(body, value) == [body]
    assert signatures.verify(SECRET, hook_signature(SECRET, body), body, value)
    assert not signatures.verify(SECRET, hook_signature(SECRET, dotnet_json(value).encode()), body, value)
