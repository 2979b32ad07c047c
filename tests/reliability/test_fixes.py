"""Regression tests, in-process, for what the fault scenarios found in the package."""

from __future__ import annotations

import pytest
import responses

from flask_autotask_ilert.autotask import AutotaskClient, AutotaskError
from flask_autotask_ilert.worker import _pace_window_ms

LOOKUP = "https://webservices.autotask.net/atservicesrest/v1.0/zoneInformation"


@pytest.mark.parametrize(
    "body", [{"errors": ["Internal Server Error"]}, {"errors": ["Thread Threshold Exceeded"]}, None]
)
def test_a_zone_lookup_outage_is_retried_not_taken_for_an_unknown_user(body: object) -> None:
    """Scenario 4: after a 401 (zone moved) the lookup met an outage, and ticket writes were dead-lettered."""
    client = AutotaskClient("user@example.com", "secret-value", "CODE-VALUE")
    with responses.RequestsMock() as rsps:
        if body is None:
            rsps.get(LOOKUP, status=500, body="")
        else:
            rsps.get(LOOKUP, status=500, json=body)
        with pytest.raises(AutotaskError) as info:
            client.get_ticket(1)
    assert info.value.retryable is True


def test_an_unknown_user_is_still_final() -> None:
    client = AutotaskClient("user@example.com", "secret-value", "CODE-VALUE")
    with responses.RequestsMock() as rsps:
        rsps.get(LOOKUP, status=500, json={"errors": ["Zone information could not be determined"]})
        with pytest.raises(AutotaskError) as info:
            client.get_ticket(1)
    assert info.value.retryable is False


@pytest.mark.parametrize(
    ("window", "poll", "margin_ms"),
    [(60.0, 0.2, 1200), (2.0, 0.02, 250), (2.0, 0.2, 400), (600.0, 1.0, 12000)],
)
def test_pacing_leaves_a_margin_for_send_jitter(window: float, poll: float, margin_ms: int) -> None:
    """Scenario 3: slots exactly one window apart drew 429s (13% of sends) from a sliding-window limit."""
    assert _pace_window_ms(window, poll) == int(window * 1000) + margin_ms
