"""A small MSP portal that hosts the bridge, as a real host app would.

Configured from the environment (``AUTOTASK_ILERT_*``, see docs/configuration.md):

    gunicorn -c examples/gunicorn.conf.py "examples.msp_portal:create_app()"
    flask --app examples.msp_portal autotask-ilert worker

Its own pages: ``/`` (open), ``/on-call`` and ``/activity`` (after logging in at
``/login`` as ``PORTAL_USER`` with ``PORTAL_PASSWORD``; ``PORTAL_SECRET_KEY``
signs the session cookie and must be the same in every process).
"""

from __future__ import annotations

import logging
import os
import secrets
from typing import Any

from flask import Flask, render_template

from flask_autotask_ilert import AutotaskIlert
from flask_autotask_ilert.config import from_env

from . import oncall
from .activity import ActivityLog
from .auth import init_auth, login_required

bridge = AutotaskIlert()


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config["PORTAL_NAME"] = os.environ.get("PORTAL_NAME", "Example MSP portal")
    app.config["PORTAL_USER"] = os.environ.get("PORTAL_USER", "oncall")
    app.config["PORTAL_PASSWORD"] = os.environ.get("PORTAL_PASSWORD", "")
    # Signs the session cookie; every process must share it (a random key holds for one process).
    app.config["SECRET_KEY"] = os.environ.get("PORTAL_SECRET_KEY") or secrets.token_hex(32)
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

    @app.context_processor
    def _portal_name() -> dict[str, Any]:
        return {"name": app.config["PORTAL_NAME"]}

    init_auth(app)
    app.register_blueprint(oncall.blueprint)

    @app.get("/activity")
    @login_required
    def bridge_activity() -> str:
        return render_template(
            "activity.html", name=app.config["PORTAL_NAME"], entries=activity.entries()
        )

    return app
