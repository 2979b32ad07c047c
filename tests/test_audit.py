"""The audit trail's record format: what an operator reads back from `status`."""

from __future__ import annotations

import pytest

from flask_autotask_ilert import audit
from flask_autotask_ilert.audit import Entry
from flask_autotask_ilert.lifecycle import State, StatusClass

NOW = 1_764_240_000

CREATE = {"target": "ilert", "action": "create"}
TICKET_ACCEPT = {"target": "ticket", "action": "accept-ticket"}


@pytest.mark.parametrize(("entry", "text"), [
    (Entry.transition(audit.WEBHOOK, "accept-ticket", State.PENDING, State.ACCEPTED),
     "webhook: accept-ticket PENDING>ACCEPTED"),
    (Entry.delivery(audit.DELIVERED, CREATE, 1, 202), "ilert create delivered (try 1, http 202)"),
    (Entry.delivery(audit.DELIVERED, TICKET_ACCEPT, 3), "ticket accept-ticket delivered (try 3)"),
    (Entry.delivery(audit.ALREADY_DONE, {"action": "resolve"}, 1, 400),
     "ilert resolve already done in ilert (try 1)"),
    (Entry.delivery(audit.FAILED, CREATE, 2, 503), "ilert create failed (try 2): http 503, retried"),
    (Entry.delivery(audit.FAILED, CREATE, 4),
     "ilert create failed (try 4): no HTTP status, the log line has the reason, retried"),
    (Entry.delivery(audit.DEAD, TICKET_ACCEPT, 9, 400),
     "ticket accept-ticket dead-lettered (try 9): http 400"),
    (Entry.delivery(audit.REPLAYED, CREATE), "ilert create replayed from the dead letters"),
])
def test_records_read_back_as_words(entry: Entry, text: str) -> None:
    packed = entry.pack(NOW)
    assert len(packed) == audit.RECORD_BYTES
    assert audit.decode(packed) == [(NOW, text)]


def test_a_callout_record_names_its_status_class() -> None:
    for status_class in StatusClass:
        record = audit.callout_prefix(NOW, status_class) + b"JNN"
        assert audit.decode(record) == [(NOW, f"callout {status_class.value}: reject NONE>NONE")]


def test_a_trail_reads_newest_first_and_ignores_a_torn_tail() -> None:
    newest = Entry.delivery(audit.DELIVERED, CREATE, 1, 202).pack(NOW + 5)
    oldest = audit.callout_prefix(NOW, StatusClass.NEW) + b"CNP"
    assert audit.decode(newest + oldest + b"\x00\x01") == [
        (NOW + 5, "ilert create delivered (try 1, http 202)"),
        (NOW, "callout NEW: create NONE>PENDING"),
    ]


def test_values_that_do_not_fit_a_byte_are_clamped_not_wrapped() -> None:
    assert audit.decode(Entry.delivery(audit.FAILED, CREATE, 700, 503).pack(NOW))[0][1] == (
        "ilert create failed (try 255): http 503, retried")


@pytest.mark.parametrize(("status", "text"), [
    (100, "http 100"), (200, "http 200"), (429, "http 429"), (503, "http 503"), (599, "http 5xx"),
    (451, "http 4xx"), (99, "no HTTP status"), (600, "no HTTP status"),
])
def test_http_statuses_survive_the_one_byte_field(status: int, text: str) -> None:
    assert audit.decode(Entry.delivery(audit.DEAD, CREATE, 1, status).pack(NOW))[0][1].startswith(
        f"ilert create dead-lettered (try 1): {text}")


def test_unknown_bytes_are_shown_not_guessed() -> None:
    assert audit.decode(b"\x00\x00\x00\x01zzzz") == [(1, "unknown record 7a7a7a7a")]
