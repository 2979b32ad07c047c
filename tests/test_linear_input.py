"""Every check on request input is linear: hostile bodies at the size limit cost about
what an ordinary callout does.

Each shape below once made a regex rescan the rest of the body from every position
(seconds of CPU per request at 64 KiB). The bound is relative, as issue 12 asks: each
answer within 20 times the CPU time of an ordinary callout measured in the same run, so
a slow or busy machine moves both sides alike. CPU time of this thread is measured (the
test client runs the app in it), which waiting for other processes does not inflate.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_autotask_ilert.schemas import parse_timestamp
from flask_autotask_ilert.testing.servers import ServerThread

from .conftest import TOKEN, AppFactory

WEBHOOK_TOKEN = "linear-webhook-token-0123456789"
PREFIX = "/autotask-ilert"
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
LIMIT = 65536  # MAX_BODY_BYTES' default: every hostile body is exactly this long
#: How many times an ordinary callout's CPU time a hostile one may take.
BOUND = 20
STAMP = "2019-10-29T14:14:47"


def _fill(head: str, unit: str, tail: str = "") -> str:
    """``head`` + ``unit`` repeated + ``tail``, exactly LIMIT bytes long."""
    room = LIMIT - len(head.encode()) - len(tail.encode())
    body = head + unit * (room // len(unit)) + tail
    return body + " " * (LIMIT - len(body.encode()))


def _json_field(name: str, start: str, unit: str, tail: str = "x", **fields: Any) -> str:
    """A JSON object whose ``name`` is ``start`` and a long run: the string closes at the very end."""
    head = json.dumps({**fields, name: start})[:-2]  # up to the closing quote of the value
    return _fill(head, unit, tail + '"}')


#: (endpoint, content type, body) of every shape that was once quadratic.
SHAPES: dict[str, tuple[str, str, str]] = {
    # The depth check's string pattern, retried from every unterminated quote.
    "json: quote-backslash repeated": ("callout", JSON, _fill("", '"\\')),
    "json: quote-backslash-quote repeated": ("callout", JSON, _fill("", '"\\"')),
    "json: quote-bracket repeated": ("callout", JSON, _fill("", '"[')),
    "webhook: quote-backslash repeated": ("webhook", JSON, _fill("", '"\\')),
    # The timestamp pattern's two whitespace runs around an optional offset.
    "form: timestamp then a run of +": (
        "callout", FORM, _fill(f"id=7&status=New&last_activity_datetime={STAMP}", "+", "x")),
    "form: created then a run of +": (
        "callout", FORM, _fill(f"id=7&status=New&created_datetime={STAMP}.5", "+", "+05x")),
    "form: fraction digits then x": (
        "callout", FORM, _fill(f"id=7&status=New&last_activity_datetime={STAMP}.", "1", "x")),
    "json: timestamp then spaces": (
        "callout", JSON, _json_field("last_activity_datetime", STAMP, " ", "x", id=7, status="New")),
    "json: spaces before the timestamp": (
        "callout", JSON, _json_field("created_datetime", "", " ", STAMP + "x", id=7, status="New")),
    "webhook: reportTime then spaces": (
        "webhook", JSON,
        _json_field("reportTime", STAMP, " ", "x", status="ACCEPTED", alertKey="autotask-7")),
    # Brackets and quotes alone: the depth scan's token count at its largest.
    "json: brackets": ("callout", JSON, _fill("", "[]")),
    "json: empty strings": ("callout", JSON, _fill("", '""')),
}


@pytest.fixture
def app(make_app: AppFactory) -> Flask:
    return make_app(
        bidirectional=True, webhook_token=WEBHOOK_TOKEN, ticket_updater=lambda update: None
    )


def _post(client: Any, endpoint: str, content_type: str, body: str) -> Any:
    path = f"{PREFIX}/callout/{TOKEN}" if endpoint == "callout" else f"{PREFIX}/ilert/{WEBHOOK_TOKEN}"
    return client.post(path, data=body.encode(), content_type=content_type)


def _cpu(call: Callable[[], Any]) -> float:
    started = time.thread_time()
    call()
    return time.thread_time() - started


def _ordinary(app: Flask) -> float:
    """The median CPU time of a few ordinary callouts (fresh tickets, so each one is recorded)."""
    client = app.test_client()
    times = []
    for ticket in range(9000, 9007):
        body = f"id={ticket}&status=New&last_activity_datetime={STAMP}.643-04:00"

        def send(body: str = body) -> None:
            assert _post(client, "callout", FORM, body).status_code == 202

        times.append(_cpu(send))
    return statistics.median(times[1:])  # the first one warms caches up


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_each_hostile_shape_costs_about_an_ordinary_callout(app: Flask, name: str) -> None:
    endpoint, content_type, body = SHAPES[name]
    assert len(body.encode()) == LIMIT
    client = app.test_client()
    ordinary = _ordinary(app)
    answers: list[int] = []
    spent = _cpu(lambda: answers.append(_post(client, endpoint, content_type, body).status_code))
    assert answers[0] in (200, 202, 400), answers  # answered, not refused for its size
    assert spent < BOUND * ordinary, f"{name}: {spent * 1000:.1f} ms vs {ordinary * 1000:.2f} ms"


#: Characters the old patterns stumbled over, for random bodies.
_HOSTILE_UNITS = st.text(st.sampled_from('"\\[]{}+ \t:.,-Z0123456789T'), min_size=1, max_size=6)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    unit=_HOSTILE_UNITS,
    where=st.sampled_from(["raw", "timestamp", "created", "reportTime"]),
    content_type=st.sampled_from([JSON, FORM]),
)
def test_random_hostile_bodies_cost_about_an_ordinary_callout(
    make_app: AppFactory, unit: str, where: str, content_type: str
) -> None:
    app = make_app(bidirectional=True, webhook_token=WEBHOOK_TOKEN,
                   ticket_updater=lambda update: None)
    endpoint = "webhook" if where == "reportTime" else "callout"
    if where == "raw":
        body = _fill("", unit)
    elif content_type == FORM:
        name = "created_datetime" if where == "created" else "last_activity_datetime"
        body = _fill(f"id=7&status=New&{name}={STAMP}", unit, "x")
    elif where == "reportTime":
        body = _json_field("reportTime", STAMP, unit.replace('"', " ").replace("\\", " "), "x",
                           status="ACCEPTED", alertKey="autotask-7")
    else:
        name = "created_datetime" if where == "created" else "last_activity_datetime"
        body = _json_field(name, STAMP, unit.replace('"', " ").replace("\\", " "), "x", id=7, status="New")
    ordinary = _ordinary(app)
    client = app.test_client()
    spent = _cpu(lambda: _post(client, endpoint, content_type, body))
    assert spent < BOUND * ordinary, f"{unit!r} in {where}: {spent * 1000:.1f} ms"


@pytest.mark.parametrize("name", ["json: quote-backslash repeated", "form: timestamp then a run of +"])
def test_the_named_shapes_over_a_real_socket(app: Flask, name: str) -> None:
    """The same two shapes through a real HTTP server: process CPU time, client and server."""
    _, content_type, body = SHAPES[name]
    server = ServerThread(app).start()
    try:
        with requests.Session() as session:
            url = f"{server.url}{PREFIX}/callout/{TOKEN}"

            def ordinary(ticket: int) -> float:
                started = time.process_time()
                answer = session.post(url, data=f"id={ticket}&status=New", headers={"Content-Type": FORM},
                                      timeout=30)
                assert answer.status_code == 202
                return time.process_time() - started

            baseline = statistics.median([ordinary(t) for t in range(9100, 9107)][1:])
            started = time.process_time()
            answer = session.post(url, data=body.encode(), headers={"Content-Type": content_type},
                                  timeout=60)
            spent = time.process_time() - started
    finally:
        server.stop()
    assert answer.status_code in (200, 202, 400)
    assert spent < BOUND * baseline, f"{name}: {spent * 1000:.1f} ms vs {baseline * 1000:.2f} ms"


# -- the timestamp parser keeps every form it read before ----------------------------------

UTC = timezone.utc


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2019-10-29T14:14:47.64300000-04:00:00", datetime(2019, 10, 29, 18, 14, 47, 643000, UTC)),
        ("2019-10-29T14:14:47Z", datetime(2019, 10, 29, 14, 14, 47, tzinfo=UTC)),
        ("2019-10-29t14:14:47z", datetime(2019, 10, 29, 14, 14, 47, tzinfo=UTC)),
        ("2019-10-29 14:14:47,5", datetime(2019, 10, 29, 14, 14, 47, 500000, UTC)),
        ("2019-10-29T14:14:47.1234567", datetime(2019, 10, 29, 14, 14, 47, 123456, UTC)),
        ("2019-10-29T14:14:47.12345678+0530", datetime(2019, 10, 29, 8, 44, 47, 123456, UTC)),
        ("2019-10-29T14:14:47+05:3015", datetime(2019, 10, 29, 8, 44, 32, tzinfo=UTC)),
        ("2019-10-29T14:14:47-04", datetime(2019, 10, 29, 18, 14, 47, tzinfo=UTC)),
        ("  2019-10-29T14:14:47 \t -04:00 \n", datetime(2019, 10, 29, 18, 14, 47, tzinfo=UTC)),
        ("2019-10-29T14:14:47" + " " * 5000 + "Z", datetime(2019, 10, 29, 14, 14, 47, tzinfo=UTC)),
        ("2019-10-29T14:14:47" + " " * 5000, datetime(2019, 10, 29, 14, 14, 47, tzinfo=UTC)),
        ("2019-10-29T14:14:47" + " " * 5000 + "x", None),
        ("2019-10-29T14:14:47." + "9" * 5000, datetime(2019, 10, 29, 14, 14, 47, 999999, UTC)),
        ("2019-10-29T14:14:47." + "9" * 5000 + "x", None),
        ("2019-10-29T14:14:47.", None),
        ("2019-10-29T14:14:47+05:3", None),
        ("2019-10-29T14:14:47+24:00", None),
        ("2019-10-29  14:14:47", None),
    ],
)
def test_timestamps_read_as_before(text: str, expected: datetime | None) -> None:
    assert parse_timestamp(text) == expected


def test_a_timestamp_offset_is_applied_exactly() -> None:
    parsed = parse_timestamp("2019-10-29T14:14:47.64300000-04:00:00")
    assert parsed is not None
    assert parsed - datetime(2019, 10, 29, 14, 14, 47, 643000, UTC) == timedelta(hours=4)
