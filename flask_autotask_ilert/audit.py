"""The per-ticket audit trail: fixed 8-byte records inside the ticket's own hash.

Why binary: the records stay small and fixed, eight of them (64 bytes) cover a
whole alert lifecycle (three callouts, three deliveries, two more to spare).
What a record cannot hold in four bytes (the status label of a callout, who
accepted or resolved in ilert, why a delivery failed) is its line of words in
a second field, ``w``, one line per record in the same order, each at most
:data:`WORDS_BYTES` bytes, so that a full trail stays well within the budget of
2 KB per tracked ticket (a test measures it with Redis' ``MEMORY USAGE``).

A record is ``>I`` unix seconds, then four bytes: a kind letter and three
details whose meaning depends on the kind (see :func:`describe`). The trail is
newest first; ``lua/_audit.lua`` prepends a record and cuts the tail. The
callout script builds its own records from :data:`ACTION_CODES` and the state
letters (the first letter of each state), which it spells out itself.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any, NamedTuple

from .lifecycle import Action, State, StatusClass, SyncAction

#: Bytes per record.
RECORD_BYTES = 8
#: Records that still fit Redis' default ``hash-max-listpack-value`` of 64 bytes.
COMPACT_ENTRIES = 64 // RECORD_BYTES
#: The most bytes of words kept per record (cut on a character boundary).
WORDS_BYTES = 120

_TIME = struct.Struct(">I")

#: A webhook about an older alert of the ticket than its current one (after a reopen).
SUPERSEDED = "superseded"

#: One letter per action; ilert-side actions are capitals, ticket writes lower case.
#: Mirrored in lua/callout.lua (callout actions and "stale").
ACTION_CODES: Mapping[str, str] = {
    Action.CREATE.value: "C",
    Action.ACCEPT.value: "A",
    Action.RESOLVE.value: "R",
    Action.NOTHING.value: "N",
    Action.REJECT.value: "J",
    "stale": "S",
    SUPERSEDED: "O",
    SyncAction.ACCEPT_TICKET.value: "a",
    SyncAction.RESOLVE_TICKET.value: "r",
}
_ACTIONS = {code: action for action, code in ACTION_CODES.items()}
_STATES = {state.value[0]: state.value for state in State}
assert len(_STATES) == len(State), "state letters must be unique"
#: A callout's record is kind-lettered by its status class (capitals), so a
#: rejected or ignored callout still says what kind of status it carried.
_CLASSES = {status_class.value[0]: status_class.value for status_class in StatusClass}
assert len(_CLASSES) == len(StatusClass), "status class letters must be unique"

WEBHOOK, DELIVERED, ALREADY_DONE, FAILED, DEAD, REPLAYED = "w", "d", "k", "f", "x", "r"


class Entry(NamedTuple):
    """A record before it is stamped with the time (the store stamps it)."""

    kind: str
    action: str
    detail1: int | str = 0
    detail2: int | str = 0
    words: str = ""  # what the four bytes cannot say, read back after them

    @classmethod
    def transition(cls, kind: str, action: str, old: State, new: State, by: str = "") -> Entry:
        """A state change; ``by``: who acted in ilert (a webhook)."""
        return cls(kind, action, old.value[0], new.value[0], f"by {by}" if by else "")

    @classmethod
    def delivery(
        cls, kind: str, event: Mapping[str, Any], tries: int = 0, http_status: int | None = None,
        reason: str = "",
    ) -> Entry:
        """A delivery outcome: which event, which try, the HTTP status if there was one, and
        why it failed (``reason``), or for a ticket write, who acted and the status set."""
        words = reason
        if not words and event.get("target") == "ticket" and kind in (DELIVERED, DEAD):
            label = event.get("status_label")
            by = event.get("by")
            words = "; ".join(part for part in (
                f"by {by}" if by else "", f'status "{label}"' if label else "") if part)
        return cls(kind, str(event.get("action", "")), min(tries, 255), _status_byte(http_status),
                   words)

    def line(self) -> str:
        """The record's words as one stored line: no line breaks, at most WORDS_BYTES."""
        return _line(self.words)

    def pack(self, now_s: int) -> bytes:
        code = ACTION_CODES.get(self.action, "?")
        details = [ord(self.kind), ord(code), _byte(self.detail1), _byte(self.detail2)]
        return _TIME.pack(now_s & 0xFFFFFFFF) + bytes(details)


def callout_prefix(now_s: int, status_class: StatusClass) -> bytes:
    """The part of a callout's record known before the script runs: time and status class."""
    return _TIME.pack(now_s & 0xFFFFFFFF) + status_class.value[:1].encode()


def callout_words(label: str) -> str:
    """The words of a callout's record: the status label as Autotask sent it."""
    return _line(f'status "{label}"') if label else ""


def _line(words: str) -> str:
    flat = " ".join(words.split())
    cut = flat.encode()[:WORDS_BYTES].decode("utf-8", "ignore")
    return cut


def _byte(value: int | str) -> int:
    return ord(value) if isinstance(value, str) else max(0, min(255, value))


def _status_byte(status: int | None) -> int:
    """An HTTP status in one byte: 51 codes per class (x00-x49 exact, x50-x99 as one); 0 = none."""
    if status is None or not 100 <= status <= 599:
        return 0
    return 1 + (status // 100 - 1) * 51 + min(status % 100, 50)


def _status_text(code: int) -> str:
    if not code:
        return "no HTTP status, the log line has the reason"
    status_class, rest = divmod(code - 1, 51)
    return f"http {status_class + 1}{'xx' if rest == 50 else f'{rest:02d}'}"


def decode(raw: bytes, words: str | None = None) -> list[tuple[int, str]]:
    """The trail as (unix seconds, what happened), newest first; bytes that make no record are
    skipped. ``words``: the trail's lines (field ``w``), one per record, newest first."""
    lines = words.split("\n") if words else []
    records = []
    for index, at in enumerate(range(0, len(raw) - RECORD_BYTES + 1, RECORD_BYTES)):
        (stamp,) = _TIME.unpack_from(raw, at)
        text = describe(raw[at + 4:at + RECORD_BYTES])
        if index < len(lines) and lines[index]:
            text = f"{text}; {lines[index]}"
        records.append((stamp, text))
    return records


def describe(body: bytes) -> str:
    """Words for the four bytes after the time."""
    kind, action = chr(body[0]), _ACTIONS.get(chr(body[1]), "?")
    one, two = body[2], body[3]
    change = f"{action} {_STATES.get(chr(one), '?')}>{_STATES.get(chr(two), '?')}"
    if kind in _CLASSES:
        return f"callout {_CLASSES[kind]}: {change}"
    if kind == WEBHOOK and action == SUPERSEDED:
        return f"webhook about an older alert: ignored, {_STATES.get(chr(one), '?')} kept"
    if kind == WEBHOOK:
        return f"webhook: {change}"
    what = f"{'ticket' if action.endswith('-ticket') else 'ilert'} {action}"
    status = _status_text(two)
    if kind == DELIVERED:
        return f"{what} delivered (try {one}{f', {status}' if two else ''})"
    if kind == ALREADY_DONE:
        return f"{what} already done in ilert (try {one})"
    if kind == FAILED:
        return f"{what} failed (try {one}): {status}, retried"
    if kind == DEAD:
        return f"{what} dead-lettered (try {one}): {status}"
    if kind == REPLAYED:
        return f"{what} replayed from the dead letters"
    return f"unknown record {body.hex()}"
