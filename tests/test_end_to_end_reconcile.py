"""Lost callouts over real processes: the worker's sweep still pages, accepts and resolves, once.

gunicorn, a separate worker process, redis-server and the simulators, as in
test_end_to_end.py. Callouts are lost two ways, as in production: the host app
down (gunicorn stopped: the callout finds nothing listening), and callouts held
back (a deploy, a proxy answering 503) that turn up later, after the sweep.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from tests.deployment import Deployment, wait_until
from tests.test_end_to_end import received

pytestmark = pytest.mark.realprocess


@pytest.fixture
def deployment(deploy: Callable[..., Deployment]) -> Deployment:
    return deploy(extra_env={"AUTOTASK_ILERT_RECONCILE_INTERVAL_SECONDS": "1", "LOG_LEVEL": "INFO"})


def test_lost_callouts_are_made_good_by_the_sweep_exactly_once(deployment: Deployment) -> None:
    deployment.start(workers=1)
    at = deployment.autotask
    store = redis.Redis.from_url(deployment.redis_url, decode_responses=True)
    marks = f"{deployment.redis_prefix}reconcile:marks"
    wait_until(lambda: store.hget(marks, "default"), 20, what="the first sweep's mark")

    def events(ticket: int) -> list[str]:
        return received(deployment).get(f"autotask-{ticket}", [])

    # The host app is down: the creation callout finds nothing listening, and is gone.
    assert deployment.web is not None
    deployment.kill(deployment.web)
    down = at.add_ticket("Created while the bridge was down")["id"]
    assert at.callouts()[-1].status_code is None  # lost
    deployment.start_web()

    # Callouts held back (a deploy, a 503): they turn up after the sweep has acted.
    at.hold_callouts = True
    first = at.add_ticket("Disk full on SRV-01")["id"]
    second = at.add_ticket("Backup failed")["id"]
    wait_until(lambda: all(events(t) == ["ALERT"] for t in (down, first, second)), 30,
               what="the sweep to page for the three tickets")

    at.set_status(first, "In Progress")
    wait_until(lambda: events(first) == ["ALERT", "ACCEPT"], 30, what="the sweep to accept")
    at.set_status(first, "Complete")
    at.set_status(second, "Complete")
    at.set_status(down, "Complete")
    wait_until(lambda: all(events(t)[-1:] == ["RESOLVE"] for t in (down, first, second)), 30,
               what="the sweep to resolve the three")

    # Now every held callout arrives, late: none of them changes anything.
    answers = at.release_callouts()
    assert len(answers) == 6
    assert {(a.status_code, a.body_json["action"]) for a in answers} <= {(200, "stale"), (200, "nothing")}
    at.hold_callouts = False
    # And a callout that arrives in time after all this is answered as usual: nothing to do.
    assert at.set_status(first, "Complete").body_json["action"] == "nothing"  # type: ignore[union-attr]

    wait_until(lambda: store.zcard(f"{deployment.redis_prefix}ready") == 0, 10, what="an empty queue")
    assert received(deployment) == {
        f"autotask-{down}": ["ALERT", "RESOLVE"],
        f"autotask-{first}": ["ALERT", "ACCEPT", "RESOLVE"],
        f"autotask-{second}": ["ALERT", "RESOLVE"],
    }
    assert {a.status for a in deployment.ilert.alerts()} == {"RESOLVED"}
    assert store.llen(f"{deployment.redis_prefix}dead") == 0
    assert at.calls_matching("POST", "/Tickets/query")  # the sweeps asked Autotask
    logs = deployment.logs()
    assert "reconcile source=default outcome=done" in logs and "missed=" in logs
    assert deployment.integration_key not in logs
