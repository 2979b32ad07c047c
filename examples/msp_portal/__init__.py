"""A small MSP portal that hosts the bridge, as a real host app would.

Configured from the environment (``AUTOTASK_ILERT_*``, see docs/configuration.md):

    gunicorn -c examples/gunicorn.conf.py "examples.msp_portal:create_app()"
    flask --app examples.msp_portal autotask-ilert worker
"""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask, render_template

from flask_autotask_ilert import AutotaskIlert, StoreUnavailable, get_bridge
from flask_autotask_ilert.config import from_env

from .activity import ActivityLog

bridge = AutotaskIlert()


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config["PORTAL_NAME"] = os.environ.get("PORTAL_NAME", "Example MSP portal")
    app.config.update(from_env())
    app.config.update(config or {})
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"))  # no-op if the host set logging up
    bridge.init_app(app)
    activity = ActivityLog()
    activity.connect(app)
    app.extensions["portal_activity"] = activity

    @app.get("/")
    def home() -> str:
        return render_template("home.html", name=app.config["PORTAL_NAME"])

    @app.get("/on-call")
    def on_call() -> tuple[str, int]:
        state = get_bridge()
        try:
            queue = state.store.queue_stats()
            status, code = "ok", 200
        except StoreUnavailable:
            queue, status, code = {}, "Redis unreachable", 503
        return (
            render_template(
                "on_call.html",
                name=app.config["PORTAL_NAME"],
                status=status,
                queue=queue,
                sources=sorted(state.settings.sources),
                prefix=state.settings.url_prefix,
                embedded=state.settings.embedded_worker,
            ),
            code,
        )

    @app.get("/activity")
    def bridge_activity() -> str:
        return render_template(
            "activity.html", name=app.config["PORTAL_NAME"], entries=activity.entries()
        )

    return app
