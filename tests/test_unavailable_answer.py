"""What a 503 from the callout endpoint says is true: Redis may have recorded it after all.

A Redis timeout that comes after the callout script ran is answered 503 like an
unreachable Redis, yet the callout is recorded. The answer must not claim
otherwise, and sending the callout again must change nothing.
"""

from __future__ import annotations

from typing import Any

import redis
from flask import Flask

from .conftest import TOKEN, AppFactory

URL = f"/autotask-ilert/callout/{TOKEN}"


def time_out_after_running(app: Flask) -> None:
    """The next callout script runs to the end, then its answer is lost to a timeout."""
    store = app.extensions["autotask_ilert"].store
    script = store._script("callout")

    def ran_then_timed_out(*args: Any, **kwargs: Any) -> Any:
        store._scripts["callout"] = script  # only this once
        script(*args, **kwargs)
        raise redis.TimeoutError("Timeout reading from socket")

    store._scripts["callout"] = ran_then_timed_out


def test_a_timeout_after_the_script_is_a_503_that_does_not_deny_the_record(make_app: AppFactory) -> None:
    app = make_app()
    time_out_after_running(app)
    client = app.test_client()
    answer = client.post(URL, json={"id": 7, "status": "New"})
    assert answer.status_code == 503 and "Retry-After" in answer.headers
    message = answer.json["message"]
    assert "nothing was recorded" not in message
    assert "may not have been recorded" in message and "again is safe" in message
    store = app.extensions["autotask_ilert"].store
    assert store.mapping("default", 7) is not None  # it was recorded all the same
    queued = store.queue_stats()
    # Autotask would not send it again; a sender that does changes nothing.
    again = client.post(URL, json={"id": 7, "status": "New"})
    assert again.status_code in (200, 202)
    assert again.json["action"] == "nothing"  # no second alert is queued
    assert store.queue_stats() == queued
