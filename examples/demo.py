"""``make demo``: the package's demo, played through the example MSP portal.

Run as ``python -m examples.demo [--verbose]``. The story, the simulators and
the checks are those of ``flask_autotask_ilert.testing.demo`` (which an
installed wheel runs with ``python -m flask_autotask_ilert.testing.demo``
against a minimal host app); here the bridge is hosted by the example portal,
``examples.msp_portal``, mounted with ``init_app`` as a real host app would.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import Flask

from examples.msp_portal import create_app
from flask_autotask_ilert.testing import demo


def create_portal(config: dict[str, Any]) -> Flask:
    """The example portal, configured for the demo."""
    return create_app({**config, "PORTAL_NAME": "Demo MSP portal"})


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo with the example portal as the host app; 0 when every step did what it should."""
    return demo.main(argv, create_app=create_portal, app_name="example app", prog="python -m examples.demo")


if __name__ == "__main__":
    raise SystemExit(main())
