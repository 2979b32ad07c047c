"""``python -m bench.reconcile``: the Autotask calls one reconciliation sweep costs, against tickets changed.

Runs the sweep against the Autotask simulator (on loopback) with an in-process
store, for a few numbers of tickets changed since the last sweep, and prints
the calls it made: the query pages (500 tickets a page) and the status
picklist read (once per process and 10 minutes, so a steady worker pays it
rarely). Tickets the sweep finds unknown to the store and created inside the
window queue an alert each; those alerts' own Autotask read (one GET per
alert, as for any alert) is not the sweep's and is not counted here.
docs/performance.md quotes the figures.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Sequence

from flask import Flask

from flask_autotask_ilert import AutotaskIlert, reconcile
from flask_autotask_ilert.extension import get_bridge
from flask_autotask_ilert.testing.autotask_sim import (
    DEFAULT_CODE,
    DEFAULT_SECRET,
    DEFAULT_USER,
    AutotaskState,
    create_autotask_simulator,
)
from flask_autotask_ilert.testing.servers import ServerThread

CHANGED = (0, 10, 600, 1200)


def measure(changed: int) -> dict[str, int]:
    """One fresh tenant and bridge; ``changed`` tickets move after the first sweep."""
    state = AutotaskState()
    with ServerThread(create_autotask_simulator(state)) as server:
        app = Flask(f"bench-reconcile-{uuid.uuid4().hex[:6]}")
        app.config.update({
            "AUTOTASK_ILERT_REDIS_URL": "memory://",
            "AUTOTASK_ILERT_CALLOUT_TOKEN": "bench-callout-token-0123456789",
            "AUTOTASK_ILERT_ILERT_INTEGRATION_KEY": "il1api-bench",
            "AUTOTASK_ILERT_AUTOTASK_USERNAME": DEFAULT_USER,
            "AUTOTASK_ILERT_AUTOTASK_SECRET": DEFAULT_SECRET,
            "AUTOTASK_ILERT_AUTOTASK_INTEGRATION_CODE": DEFAULT_CODE,
            "AUTOTASK_ILERT_AUTOTASK_API_URL": f"{server.url}/atservicesrest",
        })
        AutotaskIlert(app)
        bridge = get_bridge(app)
        source = bridge.settings.sources["default"]
        reconcile.run(bridge, source)  # the first sweep: sets the mark, reads nothing
        for n in range(changed):
            state.add_ticket(f"Changed {n}")
        first = reconcile.run(bridge, source)
        again = reconcile.run(bridge, source)  # the same window again: picklist cached
        assert first is not None and again is not None
        return {
            "changed": changed,
            "read": first.read,
            "calls_first": first.calls,
            "calls_warm": again.calls,
            "changes": len(first.changes),
        }


def main(argv: Sequence[str] | None = None) -> int:
    del argv
    print("| tickets changed | read | calls, first sweep of a process | calls, picklist cached "
          "| changes found |")
    print("|---|---|---|---|---|")
    for changed in CHANGED:
        row = measure(changed)
        print(f"| {row['changed']:,} | {row['read']:,} | {row['calls_first']} "
              f"| {row['calls_warm']} | {row['changes']:,} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
