"""The callout loader's fast path gives exactly what the marshmallow schema gives.

``load_callout`` checks a plainly valid body (what Autotask sends) without
marshmallow, for speed (docs/performance.md); everything else goes through
``CalloutSchema``. Whenever the fast path accepts a body, the schema must accept
it too and build the same callout; whenever it declines one, the schema must refuse it.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from flask_autotask_ilert.schemas import CalloutSchema, _load_plain, load_callout

#: The largest ticket id, 2**53 - 1, written out (tests/test_limits.py).
LARGEST_ID = 9_007_199_254_740_991

TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=140)
IDS = (
    st.integers(min_value=-5, max_value=LARGEST_ID + 5)
    | st.sampled_from([True, False, 1.0, None, [], 0, LARGEST_ID, LARGEST_ID + 1])
    | st.from_regex(r"\A\s*[-+]?[0-9\u0660-\u0669]{0,18}\s*\Z")  # Arabic-Indic digits too
    | TEXT
)
STATUSES = st.sampled_from(["New", " In  Progress ", "Complete", "", "   ", "x" * 128, "x" * 129]) | TEXT
OPTIONAL_TEXT = st.none() | TEXT | st.text(max_size=300) | st.integers() | st.booleans()
TIMES = st.sampled_from(["2019-10-30T15:06:38.58300000-04:00:00", "2019-10-30T15:06:38Z", "", "x"]) | TEXT

BODIES = st.fixed_dictionaries({}, optional={
    "id": IDS, "status": STATUSES | st.integers() | st.none(), "number": OPTIONAL_TEXT,
    "domain": OPTIONAL_TEXT, "created_datetime": TIMES | st.integers(),
    "last_activity_datetime": TIMES | st.none(), "extra": TEXT,
})


# Each limit at its largest accepted value: the fast path must take these, not leave them to the schema.
AT_THE_LIMITS = [
    {"id": "9007199254740991", "status": "x" * 128, "number": "n" * 64, "domain": "d" * 255},
    {"id": 9007199254740991, "status": " New ", "number": None, "domain": None},
    {"id": " 0000000000000001 ", "status": "New"},
    {"id": 1, "status": "New", "number": "", "domain": ""},
]
# One past each limit, or of a type Autotask never sends: declined, and refused by the schema.
PAST_THE_LIMITS = [
    {"id": "9007199254740992", "status": "New"},
    {"id": 9007199254740992, "status": "New"},
    {"id": 0, "status": "New"},
    {"id": "00000000000000001", "status": "New"},
    {"id": "5", "status": "x" * 129},
    {"id": "5", "status": "New", "number": "n" * 65},
    {"id": "5", "status": "New", "domain": "d" * 256},
    {"id": "5", "status": " "},
    {"id": "5", "status": 5},
    {"id": "5", "status": "New", "number": 5},
    {"id": "5", "status": "New", "domain": True},
    {"id": True, "status": "New"},
    {"id": 5.0, "status": "New"},
    {"id": "\u0665", "status": "New"},
    {"status": "New"},
    {"id": "5"},
]


@pytest.mark.parametrize("body", AT_THE_LIMITS)
def test_a_body_at_the_limits_takes_the_fast_path_to_the_same_callout(body: dict[str, Any]) -> None:
    fast = _load_plain(dict(body))
    assert fast is not None and fast == CalloutSchema().load(dict(body))


@pytest.mark.parametrize("body", PAST_THE_LIMITS)
def test_a_body_past_the_limits_is_declined_and_refused(body: dict[str, Any]) -> None:
    assert _load_plain(dict(body)) is None
    with pytest.raises(ValidationError):
        load_callout(dict(body))


@settings(max_examples=500, deadline=None)
@given(BODIES)
@example(AT_THE_LIMITS[0])
@example(PAST_THE_LIMITS[0])
def test_the_fast_path_agrees_with_the_schema(body: dict[str, Any]) -> None:
    fast = _load_plain(dict(body))
    if fast is None:
        # Declined: only a body the schema refuses too (what Autotask sends is never declined).
        with pytest.raises(ValidationError):
            CalloutSchema().load(dict(body))
        return
    assert CalloutSchema().load(dict(body)) == fast


def test_what_autotask_sends_takes_the_fast_path() -> None:
    body = {
        "id": "7865", "number": "T20191029.0002", "status": "New",
        "created_datetime": "2019-10-29T14:14:47.64300000-04:00:00",
        "last_activity_datetime": "2019-10-30T15:06:38.58300000-04:00:00",
        "domain": "EXAMPLESANDBOX.COM", "udf": "kept",
    }
    fast = _load_plain(body)
    assert fast is not None and fast == CalloutSchema().load(body)
    loaded = load_callout(body)
    assert loaded.ticket_id == 7865 and loaded.extra == {"udf": "kept"}
