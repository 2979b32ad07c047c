"""The ceiling: a bare Flask endpoint under the same gunicorn settings as the portal.

It does what any callout endpoint must do and nothing of the bridge: route the
request, parse the form body, answer 202 with a small JSON body. The benchmark
serves it with ``examples/gunicorn.conf.py``, exactly like the portal.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue


def create_app() -> Flask:
    app = Flask(__name__)

    @app.post("/autotask-ilert/callout/<token>")
    def callout(token: str) -> ResponseReturnValue:
        fields = dict(parse_qsl(request.get_data(as_text=True), keep_blank_values=True))
        return jsonify({"ticket": int(fields.get("id", 0)), "action": "create", "state": "PENDING"}), 202

    @app.get("/autotask-ilert/healthz")
    def healthz() -> ResponseReturnValue:
        return jsonify({"status": "ok"}), 200

    return app
