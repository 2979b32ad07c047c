"""``make demo``: the package's demo, played through the example MSP portal.

Run as ``python -m examples.demo [--verbose]``. The story, the simulators and
the checks are those of ``flask_autotask_ilert.testing.demo`` (which an
installed wheel runs with ``python -m flask_autotask_ilert.testing.demo``
against a minimal host app); here the bridge is hosted by the example portal,
``examples.msp_portal``, mounted with ``init_app`` as a real host app would.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from flask import Flask

from examples.msp_portal import create_app
from flask_autotask_ilert.testing import demo


def create_portal(config: dict[str, Any]) -> Flask:
    """The example portal, configured for the demo."""
    return create_app({**config, "PORTAL_NAME": "Demo MSP portal"})


def login_help(password: str) -> str:
    """How to open the portal's on-call page, which is behind the portal's own login."""
    return "\n".join([
        "",
        "The example portal's on-call page (workers, queue age, Autotask budget, dead letters with",
        "Replay, one ticket's audit trail) is behind the portal's login. Serve the portal:",
        f"  AUTOTASK_ILERT_CALLOUT_TOKEN={secrets.token_urlsafe(24)} "
        "AUTOTASK_ILERT_ILERT_INTEGRATION_KEY=demo AUTOTASK_ILERT_REDIS_URL=memory:// \\",
        f"  PORTAL_USER=oncall PORTAL_PASSWORD={password} flask --app examples.msp_portal run",
        "then open http://127.0.0.1:5000/on-call and log in as user oncall with that password",
        "(with AUTOTASK_ILERT_REDIS_URL set to a deployment's Redis instead, it shows that deployment).",
    ])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo with the example portal as the host app; 0 when every step did what it should."""
    code = demo.main(argv, create_app=create_portal, app_name="example app", prog="python -m examples.demo")
    if code == 0:
        print(login_help(secrets.token_urlsafe(12)))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
