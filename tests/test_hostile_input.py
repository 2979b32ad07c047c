"""Hostile input against every endpoint, in-process: property tests (hypothesis) on every
schema, on the lifecycle and on the endpoints; the OpenAPI description checked by
schemathesis; authentication; size, length and nesting limits; the flood limit.

Every app here is configured with distinctive secrets, and every log line captured
while the attacks ran is searched for them at the end of each test.
"""

from __future__ import annotations

import ast
import base64
import io
import itertools
import json
import logging
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import flask_autotask_ilert
from flask_autotask_ilert import AutotaskIlert, ConfigurationError, config, views
from flask_autotask_ilert.lifecycle import (
    Action,
    IlertStatus,
    State,
    StatusClass,
    StatusClassifier,
    SyncAction,
    column,
    fold,
    sync_transition,
    transition,
)
from flask_autotask_ilert.ratelimit import RECOMMENDED_RATE_LIMIT
from flask_autotask_ilert.schemas import load_alert_webhook, load_callout
from flask_autotask_ilert.worker import Worker

from .reliability.model import LABELS, Model
from .reliability.report import Figure, Stopwatch, record

TOKEN = f"HOSTILE-TOKEN-{secrets.token_hex(8)}"
TOKEN_OLD = f"HOSTILE-OLDTOKEN-{secrets.token_hex(8)}"
TOKEN_B = f"HOSTILE-TOKEN-B-{secrets.token_hex(8)}"
WEBHOOK_TOKEN = f"HOSTILE-WEBHOOK-{secrets.token_hex(8)}"
WEBHOOK_TOKEN_OLD = f"HOSTILE-OLDWEBHOOK-{secrets.token_hex(8)}"
KEY = f"HOSTILE-KEY-{secrets.token_hex(8)}"
KEY_B = f"HOSTILE-KEY-B-{secrets.token_hex(8)}"
USER, PASSWORD = "autotask", f"HOSTILE-PASSWORD-{secrets.token_hex(8)}"
HEADER_VALUE = f"HOSTILE-HEADER-{secrets.token_hex(8)}"
SECRET_VALUES = (
    TOKEN,
    TOKEN_OLD,
    TOKEN_B,
    WEBHOOK_TOKEN,
    WEBHOOK_TOKEN_OLD,
    KEY,
    KEY_B,
    PASSWORD,
    HEADER_VALUE,
)

PREFIX = "/autotask-ilert"
#: The largest ticket id, 2**53 - 1, written out (tests/test_limits.py).
LARGEST_ID = 9_007_199_254_740_991
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
ERROR_CODES = {400, 401, 404, 413, 415, 429}


def build_app(**options: Any) -> Flask:
    """An app with two sources (rotated tokens), sync on, distinctive secrets, the in-process store."""
    app = Flask(f"hostile-{uuid.uuid4().hex[:6]}")
    app.config.update(
        {
            "TESTING": True,
            "AUTOTASK_ILERT_CALLOUT_TOKEN": [TOKEN, TOKEN_OLD],
            "AUTOTASK_ILERT_ILERT_INTEGRATION_KEY": KEY,
            "AUTOTASK_ILERT_ILERT_API_URL": "http://ilert.invalid",
            "AUTOTASK_ILERT_REDIS_URL": "memory://",
            "AUTOTASK_ILERT_BIDIRECTIONAL": True,
            "AUTOTASK_ILERT_WEBHOOK_TOKEN": [WEBHOOK_TOKEN, WEBHOOK_TOKEN_OLD],
            "AUTOTASK_ILERT_TICKET_UPDATER": lambda update: None,
            "AUTOTASK_ILERT_RATE_LIMIT": "off",  # these tests flood on purpose; a test sets its own
            "AUTOTASK_ILERT_SOURCES": {
                "team-b": {"callout_token": TOKEN_B, "ilert_integration_key": KEY_B, "bidirectional": False}
            },
        }
    )
    app.config.update({f"AUTOTASK_ILERT_{k.upper()}": v for k, v in options.items()})
    AutotaskIlert(app)
    return app


def store_size(app: Flask) -> int:
    return int(app.extensions["autotask_ilert"].store.client.dbsize())


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def no_secret_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Everything the package logs during the test, searched for every secret afterwards."""
    caplog.set_level(logging.DEBUG)
    yield
    text = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    leaked = [s for s in SECRET_VALUES if s in text or quote(s, safe="") in text]
    assert leaked == []


# -- strategies ---------------------------------------------------------------------------------

# Any text: unicode of every category, lone surrogates (JSON can carry them) and controls.
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
HUGE_INTS = st.integers(min_value=-(10**30), max_value=10**30) | st.sampled_from(
    [0, -1, 1, LARGEST_ID, LARGEST_ID + 1, 2**63, 10**4300 - 1]
)
LEAVES = st.none() | st.booleans() | HUGE_INTS | st.floats(allow_nan=False) | ANY_TEXT
JSON_VALUES = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=8,
)
LABELS_AND_JUNK = st.sampled_from([*LABELS, "New", " in  PROGRESS ", "", "   "]) | ANY_TEXT
TIMESTAMPS = (
    st.sampled_from(
        [
            "2019-10-30T15:06:38.58300000-04:00:00",
            "2019-10-30T15:06:38Z",
            "9999-12-31T23:59:59-23:59",
            "0001-01-01T00:00:00+23:59",
            "yesterday",
            "",
            "2019-13-45T99:99:99",
        ]
    )
    | ANY_TEXT
    | HUGE_INTS
)

CALLOUT_BODIES = st.fixed_dictionaries(
    {},
    optional={
        "id": HUGE_INTS | st.from_regex(r"\A\s*-?[0-9]{0,20}\s*\Z") | JSON_VALUES,
        "status": LABELS_AND_JUNK | JSON_VALUES,
        "number": ANY_TEXT | st.text(max_size=80) | JSON_VALUES,
        "domain": ANY_TEXT | st.text(min_size=250, max_size=260) | JSON_VALUES,
        "created_datetime": TIMESTAMPS | JSON_VALUES,
        "last_activity_datetime": TIMESTAMPS | JSON_VALUES,
    },
).flatmap(
    lambda known: st.dictionaries(ANY_TEXT, JSON_VALUES, max_size=20).map(lambda extra: {**extra, **known})
)

WEBHOOK_BODIES = st.fixed_dictionaries(
    {},
    optional={
        "id": JSON_VALUES,
        "alertId": JSON_VALUES,
        "status": st.sampled_from(["PENDING", "accepted", " Resolved ", "closed"]) | JSON_VALUES,
        "alertStatus": st.sampled_from(["ACCEPTED", "RESOLVED"]) | JSON_VALUES,
        "alertKey": st.sampled_from(["autotask-1", "AUTOTASK-2 ", "autotask-x", "other-3"])
        | st.from_regex(r"\Aautotask-[0-9]{1,20}\Z")
        | JSON_VALUES,
        "eventType": ANY_TEXT | JSON_VALUES,
        "url": ANY_TEXT | JSON_VALUES,
        "reportTime": TIMESTAMPS | JSON_VALUES,
        "assignedTo": st.dictionaries(
            st.sampled_from(["username", "email", "firstName", "lastName", "x"]), JSON_VALUES, max_size=5
        )
        | JSON_VALUES,
    },
)
# Bodies that are mostly valid, so the accepting paths get their share of the cases.
PLAUSIBLE_CALLOUTS = st.fixed_dictionaries(
    {
        "id": st.integers(1, LARGEST_ID) | st.integers(1, 10**6).map(str),
        "status": st.sampled_from(["New", "In Progress", "Complete", "Waiting Customer", "Other"]),
    },
    optional={
        "number": st.text(max_size=64),
        "domain": st.text(max_size=255),
        "last_activity_datetime": TIMESTAMPS,
        "extra": JSON_VALUES,
    },
)
PLAUSIBLE_WEBHOOKS = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["PENDING", "ACCEPTED", "RESOLVED", "accepted"]),
        "alertKey": st.integers(1, 10**6).map(lambda n: f"autotask-{n}") | st.text(max_size=30),
    },
    optional={
        "id": st.integers(0, 10**9) | st.text(max_size=64),
        "assignedTo": JSON_VALUES,
        "reportTime": TIMESTAMPS,
    },
)
CONTENT_TYPES = st.sampled_from(
    [
        FORM,
        JSON,
        f"{JSON}; charset=utf-8",
        f"{FORM}; charset=latin-1",
        "text/xml",
        "application/xml",
        "multipart/form-data; boundary=x",
        "text/plain",
        "application/x-www-form-urlencoded;;",
        "",
        "*/*",
    ]
)


def encode_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=True)


# -- schemas ------------------------------------------------------------------------------------


def test_callout_schema_accepts_only_what_it_documents() -> None:
    watch, seen = Stopwatch(), Counter[str]()

    @settings(max_examples=300, deadline=None)
    @given(CALLOUT_BODIES | PLAUSIBLE_CALLOUTS)
    def check(body: dict[str, Any]) -> None:
        try:
            callout = load_callout(body)
        except ValidationError as exc:
            assert isinstance(exc.messages, dict)
            seen["invalid"] += 1
            return
        seen["valid"] += 1
        assert 1 <= callout.ticket_id <= LARGEST_ID and isinstance(callout.ticket_id, int)
        assert (
            callout.status.strip()
            and len(callout.status) <= 128
            and callout.status == " ".join(callout.status.split())
        )
        assert callout.number is None or len(callout.number) <= 64
        assert callout.domain is None or len(callout.domain) <= 255
        assert len(callout.extra) <= 16 and all(
            len(k) <= 64 and len(v) <= 256 for k, v in callout.extra.items()
        )
        json.dumps(callout.record())  # what the queue keeps is always JSON
        assert callout.last_activity is None or callout.last_activity.tzinfo is not None

    check()
    assert seen["valid"] and seen["invalid"]
    record(
        Figure(
            "attack-1",
            "callout schema: arbitrary unicode, lone surrogates, huge numbers, wrong types, "
            "missing and extra fields (hypothesis)",
            sum(seen.values()),
            0,
            seconds=watch.seconds,
            outcome=f"{seen['valid']} valid, {seen['invalid']} refused with field errors; no other outcome",
        )
    )


def test_webhook_schema_accepts_only_what_it_documents() -> None:
    watch, seen = Stopwatch(), Counter[str]()

    @settings(max_examples=300, deadline=None)
    @given(WEBHOOK_BODIES | PLAUSIBLE_WEBHOOKS)
    def check(body: dict[str, Any]) -> None:
        try:
            webhook = load_alert_webhook(body)
        except ValidationError:
            seen["invalid"] += 1
            return
        seen["valid"] += 1
        assert webhook.status in ("PENDING", "ACCEPTED", "RESOLVED")
        assert webhook.alert_id is None or len(webhook.alert_id) <= 64
        assert webhook.alert_key is None or len(webhook.alert_key) <= 255
        assert isinstance(webhook.who, str) and webhook.who

    check()
    assert seen["valid"] and seen["invalid"]
    record(
        Figure(
            "attack-2",
            "ilert webhook schema: arbitrary values, template names, nested junk (hypothesis)",
            sum(seen.values()),
            0,
            seconds=watch.seconds,
            outcome=f"{seen['valid']} valid, {seen['invalid']} refused; no other outcome",
        )
    )


# -- the lifecycle ---------------------------------------------------------------------------------

_ORDER = {State.NONE: 0, State.PENDING: 1, State.ACCEPTED: 2, State.RESOLVED: 3}


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(list(State)), st.sampled_from(list(StatusClass)), st.booleans())
def test_every_cell_of_the_table_is_sane(state: State, cls: StatusClass, realert: bool) -> None:
    cell = transition(state, cls, realert_on_reopen=realert)
    assert column(cls, realert_on_reopen=realert)[state] == cell
    # Only these three reach ilert (lifecycle.md); nothing, reject and stale never do.
    assert cell.schedules_event == (cell.action.value in ("create", "accept", "resolve"))
    if cell.action is Action.REJECT:
        assert state is State.NONE and cell.new_state is State.NONE
    if cell.action is Action.NOTHING:
        assert cell.new_state is state
    if not (realert and state is State.RESOLVED):
        assert _ORDER[cell.new_state] >= _ORDER[state]  # never backwards, except a reopen
    # Repeats converge: a first In Progress creates then (repeated) accepts; a third does nothing.
    again = transition(cell.new_state, cls, realert_on_reopen=realert)
    third = transition(again.new_state, cls, realert_on_reopen=realert)
    assert third.action in (Action.NOTHING, Action.REJECT) and third.new_state is again.new_state


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(list(State)), st.sampled_from([*StatusClass, None]), st.sampled_from(list(IlertStatus))
)
def test_sync_never_moves_back_and_writes_only_on_change(
    state: State, cls: StatusClass | None, status: IlertStatus
) -> None:
    change = sync_transition(state, cls, status)
    assert change.writes_ticket == (change.new_state is not state)
    assert _ORDER[change.new_state] >= _ORDER[state]
    if state in (State.NONE, State.RESOLVED):
        assert change.action is SyncAction.NOTHING


@settings(max_examples=300, deadline=None)
@given(ANY_TEXT)
def test_any_status_label_has_a_class(label: str) -> None:
    classify = StatusClassifier()
    assert classify(label) in StatusClass
    assert fold(fold(label)) == fold(label)
    assert classify(f"  {label.upper()}  ") == classify(label.upper())


def test_the_bridge_answers_every_callout_as_the_independent_model(no_secret_in_logs: None) -> None:
    """Random callout streams (duplicates, reordering, missing timestamps) through the endpoint."""
    watch, total = Stopwatch(), Counter[str]()
    # Weighted like real walks: mostly New and In Progress, some closing and waiting labels.
    labels = ["New"] * 3 + ["In Progress"] * 2 + ["Complete", "Scheduled", "Customer Note Added"]

    app = build_app()
    client = app.test_client()
    runs = itertools.count()

    @settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.lists(
            st.tuples(st.integers(1, 3), st.sampled_from(labels), st.none() | st.integers(1, 6)),
            min_size=1,
            max_size=15,
        )
    )
    def check(stream: list[tuple[int, str, int | None]]) -> None:
        model, base = Model(), 10 * next(runs)  # fresh tickets for every example
        for small, label, minute in stream:
            ticket = base + small
            body = {"id": ticket, "status": label}
            if minute is not None:
                body["last_activity_datetime"] = f"2026-01-01T10:{minute:02d}:00Z"
            got = client.post(f"{PREFIX}/callout/{TOKEN}", json=body)
            want = model.callout("default", ticket, label, None if minute is None else minute * 60_000_000)
            assert (got.status_code, got.json["action"], got.json["state"]) == (
                want.code,
                want.action,
                want.state,
            )
            total[want.action] += 1
        queued = app.extensions["autotask_ilert"].store
        for (_, ticket), t in model.tickets.items():
            assert [e["action"] for e in queued.queued("default", ticket)] == [
                {"ALERT": "create", "ACCEPT": "accept", "RESOLVE": "resolve"}[e] for e in t.events
            ]

    check()
    record(
        Figure(
            "attack-3",
            "lifecycle: random callout streams per ticket (repeats, reordering, stale and "
            "missing timestamps) against the independent model",
            sum(total.values()),
            0,
            seconds=watch.seconds,
            outcome=", ".join(f"{n} {a}" for a, n in sorted(total.items()))
            + "; every answer and every queued event as the model",
        )
    )


# -- the endpoints ---------------------------------------------------------------------------------


def test_no_body_makes_a_5xx_or_an_event(no_secret_in_logs: None) -> None:
    watch, codes = Stopwatch(), Counter[int]()
    app = build_app()
    client = app.test_client()
    urls = [f"{PREFIX}/callout/{TOKEN}", f"{PREFIX}/callout/{TOKEN_B}", f"{PREFIX}/ilert/{WEBHOOK_TOKEN}"]

    def post(url: str, data: bytes, content_type: str) -> None:
        before = store_size(app)
        answer = client.post(url, data=data, headers={"Content-Type": content_type} if content_type else {})
        codes[answer.status_code] += 1
        assert answer.status_code < 500
        if answer.status_code in ERROR_CODES and (answer.json or {}).get("action") != "reject":
            assert store_size(app) == before, (url, data[:100], answer.json)

    @settings(max_examples=350, deadline=None)
    @given(
        st.sampled_from(urls),
        CONTENT_TYPES,
        st.binary(max_size=300)
        | (CALLOUT_BODIES | PLAUSIBLE_CALLOUTS).map(lambda b: encode_json(b).encode())
        | (WEBHOOK_BODIES | PLAUSIBLE_WEBHOOKS).map(lambda b: encode_json(b).encode()),
    )
    def raw(url: str, content_type: str, data: bytes) -> None:
        post(url, data, content_type)

    @settings(max_examples=250, deadline=None)
    @given(
        st.sampled_from(urls[:2]),
        st.lists(
            st.tuples(
                st.sampled_from(["id", "status", "number", "domain", "last_activity_datetime"]) | ANY_TEXT,
                st.from_regex(r"\A[0-9]{1,20}\Z") | LABELS_AND_JUNK,
            ),
            max_size=8,
        ),
    )
    def form(url: str, pairs: list[tuple[str, str]]) -> None:
        text = urlencode(
            [(k.encode("utf-8", "surrogatepass"), v.encode("utf-8", "surrogatepass")) for k, v in pairs]
        )
        post(url, text.encode(), FORM)

    # Known answers first, so the tally below never depends on what was drawn.
    post(urls[0], b'{"id": 1, "status": "New"}', JSON)
    post(urls[1], b"id=1&status=New", FORM)
    post(urls[0], b"id=1&status=New", "text/xml")
    post(urls[0], b"id=x&status=New", FORM)
    raw()
    form()
    assert codes[202] and codes[400] and codes[415]
    record(
        Figure(
            "attack-4",
            "arbitrary bodies (bytes, JSON, form; any content type) at the callout and webhook "
            "endpoints of two sources (hypothesis)",
            sum(codes.values()),
            0,
            seconds=watch.seconds,
            outcome=", ".join(f"{n}x {c}" for c, n in sorted(codes.items()))
            + "; no 5xx, nothing recorded from a refused body",
        )
    )


def test_the_description_is_served_and_names_no_secret() -> None:
    app = build_app()
    answer = app.test_client().get(f"{PREFIX}/openapi.json")
    assert answer.status_code == 200 and answer.json["openapi"].startswith("3.")
    text = answer.get_data(as_text=True)
    assert not [s for s in SECRET_VALUES if s in text]
    paths = answer.json["paths"]
    assert {"post"} == set(paths[f"{PREFIX}/callout/{{token}}"])
    documented = set(paths[f"{PREFIX}/callout/{{token}}"]["post"]["responses"])
    assert documented == {"200", "202", "400", "401", "404", "413", "415", "429", "503"}


SCHEMATHESIS_APP = build_app(callout_username=USER, callout_password=PASSWORD)
SCHEMA = schemathesis.openapi.from_wsgi(f"{PREFIX}/openapi.json", SCHEMATHESIS_APP)
WORKER = Worker(SCHEMATHESIS_APP.extensions["autotask_ilert"])
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _contract_check(
    label: str, strategies: list[Any], examples: int, cases: Counter[str], codes: Counter[str]
) -> Callable[[], None]:
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(strategies))
    def check(case: Any) -> None:
        WORKER.beat()  # a live worker, so that readyz is ready (its 503 means "no worker")
        response = case.call()
        cases[label] += 1
        codes[f"{response.status_code}"] += 1
        case.validate_response(response, checks=CHECKS)

    return check


def test_schemathesis_finds_no_5xx_and_no_answer_off_the_description(no_secret_in_logs: None) -> None:
    """Positive and negative cases for every operation; with and without the real token and Basic."""
    watch, codes, cases = Stopwatch(), Counter[str](), Counter[str]()
    for result in SCHEMA.get_all_operations():
        operation = result.ok()
        strategies = []
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategies.append(operation.as_strategy(mode))
            if any(p.name == "token" for p in operation.path_parameters):
                token = WEBHOOK_TOKEN if "/ilert/" in operation.path else TOKEN
                strategies.append(
                    operation.as_strategy(
                        mode, path_parameters={"token": token}, headers=basic(USER, PASSWORD)
                    )
                )
        examples = 340 if operation.method.upper() == "POST" else 10
        _contract_check(operation.label, strategies, examples, cases, codes)()
    total = sum(cases.values())
    assert total >= 1000, cases
    assert {"200", "202", "400", "401", "404"} <= set(codes), codes
    record(
        Figure(
            "attack-5",
            f"schemathesis on the OpenAPI description ({len(cases)} operations, positive and "
            "negative cases, with and without the real token and Basic credentials)",
            total,
            0,
            seconds=watch.seconds,
            outcome=", ".join(f"{n}x {c}" for c, n in sorted(codes.items()))
            + "; no 5xx, every status, header, content type and body as described",
        )
    )


# -- authentication --------------------------------------------------------------------------------


def test_every_token_is_compared_in_constant_time_whatever_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    app = build_app()
    settings_ = app.extensions["autotask_ilert"].settings
    calls: list[tuple[bytes, bytes]] = []
    real = config.hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(config.hmac, "compare_digest", counting)
    per_lookup = []
    for given_ in (TOKEN, TOKEN_OLD, TOKEN_B, "x" * 40, TOKEN[:-1], ""):
        calls.clear()
        settings_.source_for_token(given_)
        per_lookup.append(len(calls))
        assert all(isinstance(a, bytes) and isinstance(b, bytes) for a, b in calls)
    assert per_lookup == [3] * len(per_lookup)  # all three callout tokens, every time


def test_basic_credentials_are_both_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    app = build_app(callout_username=USER, callout_password=PASSWORD)
    client = app.test_client()
    calls: list[int] = []
    real = config.hmac.compare_digest
    monkeypatch.setattr(config.hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    answers, counts = [], []
    for user, password in ((USER, PASSWORD), ("x", PASSWORD), (USER, "x"), ("", ""), ("x", "y")):
        calls.clear()
        answers.append(
            client.post(
                f"{PREFIX}/callout/{TOKEN}",
                data="id=1&status=New",
                content_type=FORM,
                headers=basic(user, password),
            )
        )
        counts.append(len(calls))
    # The same comparisons whatever is wrong: the three callout tokens, then user and password.
    assert counts == [3 + 2] * 5, counts
    assert [a.status_code for a in answers] == [202, 401, 401, 401, 401]
    assert len({(a.get_data(), a.headers["WWW-Authenticate"]) for a in answers[1:]}) == 1


def test_wrong_and_unknown_tokens_answer_like_any_unknown_url(no_secret_in_logs: None) -> None:
    watch = Stopwatch()
    app = build_app()
    client = app.test_client()

    def look(answer: Any) -> tuple[int, bytes, str, list[str]]:
        return (
            answer.status_code,
            answer.get_data(),
            answer.content_type,
            sorted(k for k, _ in answer.headers.items() if k.lower() != "date"),
        )

    unknown = look(client.post("/no/such/page", data="id=1&status=New", content_type=FORM))
    wrong = [
        TOKEN[:-1],
        TOKEN + "x",
        TOKEN.lower(),
        TOKEN.swapcase(),
        " " + TOKEN,
        WEBHOOK_TOKEN,
        KEY,
        "a" * 16,
        quote(TOKEN + "\u00e9"),
        TOKEN[:8],
    ]
    for token in wrong:
        assert (
            look(client.post(f"{PREFIX}/callout/{token}", data="id=1&status=New", content_type=FORM))
            == unknown
        )
    for token in (TOKEN, TOKEN_B, WEBHOOK_TOKEN[:-1]):  # a callout token never opens the webhook
        assert look(client.post(f"{PREFIX}/ilert/{token}", json={"status": "ACCEPTED"})) == unknown
    probes = len(wrong) + 3

    @settings(max_examples=200, deadline=None)
    @given(st.text(st.characters(codec="utf-8", exclude_characters="/?#%"), min_size=1, max_size=60))
    def random_tokens(token: str) -> None:
        if token in (TOKEN, TOKEN_OLD, TOKEN_B):
            return
        answer = client.post(
            f"{PREFIX}/callout/{quote(token, safe='')}", data="id=1&status=New", content_type=FORM
        )
        assert look(answer) == unknown

    random_tokens()
    assert store_size(app) == 0
    record(
        Figure(
            "attack-6",
            "wrong tokens (near misses, other sources' and webhook tokens, keys, random "
            "unicode) and wrong Basic credentials",
            probes + 200 + 5,
            0,
            seconds=watch.seconds,
            outcome="every wrong token answered exactly like an unknown URL (status, body, headers); "
            "every token and both Basic fields compared in constant time; nothing recorded",
        )
    )


def test_several_tokens_per_source_for_rotation() -> None:
    app = build_app()
    client = app.test_client()
    for n, token in enumerate((TOKEN, TOKEN_OLD), start=1):
        assert client.post(f"{PREFIX}/callout/{token}", json={"id": n, "status": "New"}).status_code == 202
    assert client.post(f"{PREFIX}/callout/{TOKEN_B}", json={"id": 1, "status": "New"}).status_code == 202
    for token in (WEBHOOK_TOKEN, WEBHOOK_TOKEN_OLD):
        answer = client.post(f"{PREFIX}/ilert/{token}", json={"status": "ACCEPTED", "alertKey": "autotask-1"})
        assert answer.status_code in (200, 202)
    # The old token retired: it is now as unknown as any other.
    retired = build_app(callout_token=TOKEN)
    assert (
        retired.test_client()
        .post(f"{PREFIX}/callout/{TOKEN_OLD}", json={"id": 9, "status": "New"})
        .status_code
        == 404
    )
    store = app.extensions["autotask_ilert"].store
    assert store.mapping("default", 1) and store.mapping("default", 2) and store.mapping("team-b", 1)


# -- limits ------------------------------------------------------------------------------------------


def test_body_size_is_enforced_with_or_without_a_length() -> None:
    app = build_app(max_body_bytes=200)
    client = app.test_client()
    url = f"{PREFIX}/callout/{TOKEN}"
    exact = "id=1&status=New&pad=" + "x" * (200 - len("id=1&status=New&pad="))
    assert client.post(url, data=exact, content_type=FORM).status_code == 202
    assert client.post(url, data=exact + "x", content_type=FORM).status_code == 413

    # A chunked upload: no Content-Length, the server (gunicorn) marks the input as terminated.
    chunked = io.BytesIO(b"id=2&status=New&pad=" + b"x" * 10_000)
    answer = client.post(
        url, input_stream=chunked, content_type=FORM, environ_overrides={"wsgi.input_terminated": True}
    )
    assert answer.status_code == 413 and answer.json["code"] == "request_entity_too_large"
    lying = client.post(
        url, data="id=3&status=New", content_type=FORM, environ_overrides={"CONTENT_LENGTH": "10000000"}
    )
    assert lying.status_code == 413
    assert app.extensions["autotask_ilert"].store.mapping("default", 2) is None


@pytest.mark.parametrize(
    ("field", "length", "ok"),
    [
        ("status", 128, True),
        ("status", 129, False),
        ("number", 64, True),
        ("number", 65, False),
        ("domain", 255, True),
        ("domain", 256, False),
    ],
)
def test_field_lengths(field: str, length: int, ok: bool) -> None:
    app = build_app()
    body = {"id": 5, "status": "New", field: "N" * length}
    answer = app.test_client().post(f"{PREFIX}/callout/{TOKEN}", json=body)
    assert answer.status_code == (202 if ok else 400)
    if not ok:
        assert list(answer.json["errors"]) == [field]


def test_unknown_keys_are_bounded_in_number_and_size() -> None:
    app = build_app()
    body = {"id": 5, "status": "New", **{f"k{n}" + "K" * 100: "V" * 1000 for n in range(40)}}
    assert app.test_client().post(f"{PREFIX}/callout/{TOKEN}", json=body).status_code == 202
    [event] = app.extensions["autotask_ilert"].store.queued("default", 5)
    extra = event["callout"]["extra"]
    assert len(extra) == 16 and all(len(k) <= 64 and len(v) <= 256 for k, v in extra.items())
    # Cut, not dropped: the first 16 keys as sent (the test client sends JSON keys sorted: k0, k1,
    # k10, ...), each cut to 64 characters, each value to 256.
    first = sorted(f"k{n}" + "K" * 100 for n in range(40))[:16]
    assert extra == {key[:64]: "V" * 256 for key in first}
    assert {len(k) for k in extra} == {64} and {len(v) for v in extra.values()} == {256}


@pytest.mark.parametrize("url", [f"{PREFIX}/callout/{TOKEN}", f"{PREFIX}/ilert/{WEBHOOK_TOKEN}"])
def test_json_nesting_has_an_explicit_limit(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    app = build_app()
    client = app.test_client()
    base = (
        {"id": 5, "status": "New"} if "callout" in url else {"status": "ACCEPTED", "alertKey": "autotask-5"}
    )

    def nested(depth: int) -> str:
        return json.dumps({**base, "x": "["}).replace('"["', "[" * (depth - 1) + "]" * (depth - 1))

    # 16 levels is the documented limit (docs/lifecycle.md): accepted; one more is refused.
    assert client.post(url, data=nested(16), content_type=JSON).status_code in (200, 202)
    too_deep = client.post(url, data=nested(17), content_type=JSON)
    assert too_deep.status_code == 400 and "deeper" in too_deep.json["message"]
    # Brackets inside strings do not count, and the parser is never asked to go deep.
    assert client.post(url, data=json.dumps({**base, "x": "[" * 5000}), content_type=JSON).status_code in (
        200,
        202,
    )
    monkeypatch.setattr(views.json, "loads", lambda *a, **k: pytest.fail("parsed a too deep body"))
    assert client.post(url, data="[" * 30000 + "]" * 30000, content_type=JSON).status_code == 400


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(constant: str) -> None:
    app = build_app()
    answer = app.test_client().post(
        f"{PREFIX}/callout/{TOKEN}", data=f'{{"id": 5, "status": "New", "x": {constant}}}', content_type=JSON
    )
    assert answer.status_code == 400 and answer.json["message"] == "The body is not valid JSON."


def test_too_many_form_fields() -> None:
    app = build_app()
    body = "id=5&status=New&" + "&".join(f"f{n}=1" for n in range(80))
    assert (
        app.test_client().post(f"{PREFIX}/callout/{TOKEN}", data=body, content_type=FORM).status_code == 400
    )


@pytest.mark.parametrize("content_type", ["application/xml", "text/xml", "application/soap+xml"])
def test_xml_is_never_parsed(content_type: str) -> None:
    app = build_app()
    bomb = '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">]><callout><id>5</id></callout>'
    for url in (f"{PREFIX}/callout/{TOKEN}", f"{PREFIX}/ilert/{WEBHOOK_TOKEN}"):
        assert app.test_client().post(url, data=bomb, content_type=content_type).status_code == 415


def test_no_module_of_the_package_imports_an_xml_parser() -> None:
    root = Path(flask_autotask_ilert.__file__).parent
    imported: set[str] = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
    assert not [m for m in imported if m.split(".")[0] in ("xml", "lxml", "defusedxml", "xmltodict")]


def test_limits_figure() -> None:
    """The report row's claims, each sent once more and checked, so the row cannot outlive them."""
    small, app = build_app(max_body_bytes=200), build_app()
    callout_url, webhook_url = f"{PREFIX}/callout/{TOKEN}", f"{PREFIX}/ilert/{WEBHOOK_TOKEN}"
    codes: list[int] = []

    def send(target: Flask, url: str, **kwargs: Any) -> int:
        codes.append(target.test_client().post(url, **kwargs).status_code)
        return codes[-1]

    big = "id=1&status=New&pad=" + "x" * 200
    assert send(small, callout_url, data=big, content_type=FORM) == 413
    assert send(small, callout_url, input_stream=io.BytesIO(big.encode()), content_type=FORM,
                environ_overrides={"wsgi.input_terminated": True}) == 413
    assert send(small, callout_url, data="id=1&status=New", content_type=FORM,
                environ_overrides={"CONTENT_LENGTH": "10000000"}) == 413
    assert store_size(small) == 0
    for field, longest in (("status", 128), ("number", 64), ("domain", 255)):
        assert send(app, callout_url, json={"id": 2, "status": "New", field: "N" * (longest + 1)}) == 400
    unknown = {f"k{n:02}" + "K" * 100: "V" * 1000 for n in range(40)}
    assert send(app, callout_url, json={"id": 3, "status": "New", **unknown}) == 202
    [event] = app.extensions["autotask_ilert"].store.queued("default", 3)
    assert event["callout"]["extra"] == {f"k{n:02}" + "K" * 61: "V" * 256 for n in range(16)}
    for depth in (17, 30_000):
        for url in (callout_url, webhook_url):
            assert send(app, url, data="[" * depth + "]" * depth, content_type=JSON) == 400
    for constant in ("NaN", "Infinity", "-Infinity"):
        body = f'{{"id": 4, "status": "New", "x": {constant}}}'
        assert send(app, callout_url, data=body, content_type=JSON) == 400
    many = "id=5&status=New&" + "&".join(f"f{n}=1" for n in range(80))
    assert send(app, callout_url, data=many, content_type=FORM) == 400
    bomb = '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">]><callout><id>5</id></callout>'
    for url in (callout_url, webhook_url):
        assert send(app, url, data=bomb, content_type="application/xml") == 415
    # Nothing refused left a trace: ticket 3, the one accepted, is the only one stored.
    assert [t for t in (2, 3, 4, 5) if app.extensions["autotask_ilert"].store.mapping("default", t)] == [3]
    assert Counter(codes) == {413: 3, 400: 3 + 4 + 3 + 1, 202: 1, 415: 2}
    record(
        Figure(
            "attack-7",
            "limits: body over MAX_BODY_BYTES (with, without and with a false Content-Length), "
            "overlong fields, 40 unknown keys, JSON nested 17 to 30,000 deep, NaN, 80 form fields, "
            "XML with an entity",
            len(codes),
            0,
            outcome="413 / 400 / 415 as documented; unknown keys cut to 16 of 256 characters; nesting "
            "refused before parsing; no XML parser in the package",
        )
    )


# -- the flood limit ------------------------------------------------------------------------------------


def test_rate_limit_is_off_by_default() -> None:
    app = build_app()
    client = app.test_client()
    codes = Counter(
        client.post(f"{PREFIX}/callout/{TOKEN}", json={"id": n, "status": "New"}).status_code
        for n in range(1, 401)
    )
    assert codes == {202: 400}


def test_rate_limit_is_validated() -> None:
    for bad in ("lots", "0/second", "-5/minute", ""):
        if not bad:
            continue
        with pytest.raises(ConfigurationError, match="RATE_LIMIT"):
            build_app(rate_limit=bad)


def test_the_recommended_limit_never_drops_a_burst(redis_server: str, redis_prefix: str) -> None:
    """A mass outage: 1,000 tickets from 8 senders at once, on the shared Redis."""
    watch = Stopwatch()
    app = build_app(rate_limit=RECOMMENDED_RATE_LIMIT, redis_url=redis_server, redis_prefix=redis_prefix)
    codes: Counter[int] = Counter()
    lock = threading.Lock()
    tickets = iter(range(1, 1001))

    def sender() -> None:
        client = app.test_client()
        while True:
            with lock:
                ticket = next(tickets, None)
            if ticket is None:
                return
            code = client.post(f"{PREFIX}/callout/{TOKEN}", json={"id": ticket, "status": "New"}).status_code
            with lock:
                codes[code] += 1

    threads = [threading.Thread(target=sender) for _ in range(8)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rate = 1000 / (time.monotonic() - started)
    assert codes == {202: 1000}
    record(
        Figure(
            "attack-8",
            f"burst of 1,000 new tickets from 8 senders with RATE_LIMIT at the recommended "
            f"{RECOMMENDED_RATE_LIMIT}",
            1000,
            1000,
            seconds=watch.seconds,
            outcome=f"{rate:.0f} callouts/s in-process, none refused",
        )
    )


def test_a_flood_is_refused_with_429_and_retry_after(
    redis_server: str, redis_prefix: str, no_secret_in_logs: None
) -> None:
    watch = Stopwatch()
    app = build_app(rate_limit="20/minute;1000/hour", redis_url=redis_server, redis_prefix=redis_prefix)
    client = app.test_client()
    answers = [
        client.post(f"{PREFIX}/callout/{TOKEN}", json={"id": n, "status": "New"}) for n in range(1, 301)
    ]
    codes = Counter(a.status_code for a in answers)
    assert codes[202] == 20 and codes[429] == 280, codes
    refused = [a for a in answers if a.status_code == 429]
    assert all(1 <= int(a.headers["Retry-After"]) <= 60 for a in refused)
    assert refused[0].json["code"] == "too_many_requests"
    store = app.extensions["autotask_ilert"].store
    assert store.mapping("default", 21) is None  # nothing of a refused callout was recorded
    # The flood of one source leaves the other alone, and webhooks are counted apart.
    assert client.post(f"{PREFIX}/callout/{TOKEN_B}", json={"id": 1, "status": "New"}).status_code == 202
    webhook = client.post(
        f"{PREFIX}/ilert/{WEBHOOK_TOKEN}", json={"status": "ACCEPTED", "alertKey": "autotask-1"}
    )
    assert webhook.status_code == 202
    # The counters live on the same Redis, under the bridge's prefix, and none under the
    # limits package's own default prefix (other tests' apps count under their own prefixes).
    assert list(store.client.scan_iter(match=f"{redis_prefix}limits*", count=1000))
    assert not list(store.client.scan_iter(match="LIMITS*", count=1000))
    record(
        Figure(
            "attack-9",
            "flood: 300 callouts at once against RATE_LIMIT 20/minute;1000/hour",
            300,
            0,
            seconds=watch.seconds,
            outcome=f"{codes[202]} recorded, {codes[429]} answered 429 with Retry-After and nothing "
            "recorded; the other source and the webhook endpoint unaffected",
        )
    )


# -- unexpected errors --------------------------------------------------------------------------------


def test_an_unexpected_error_is_a_500_logged_without_the_token(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    app = build_app()
    caplog.set_level(logging.DEBUG)

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(views, "handle_callout", boom)
    answer = app.test_client().post(f"{PREFIX}/callout/{TOKEN}", json={"id": 5, "status": "New"})
    assert answer.status_code == 500
    assert TOKEN not in answer.get_data(as_text=True)
    text = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "a bug" in text and TOKEN not in text
