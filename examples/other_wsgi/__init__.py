"""A portal that is not a Flask app, with the bridge mounted under ``/alerts``.

``portal`` stands in for a Django, Pyramid or home-grown WSGI application: the
bridge does not need the host to be a Flask app, only a WSGI one. Both are
configured from the environment (``AUTOTASK_ILERT_*``, see
docs/configuration.md); the worker is a process of its own with the same
environment (docs/wsgi.md)::

    gunicorn -c examples/gunicorn.conf.py "examples.other_wsgi:create_portal()"
    flask --app "flask_autotask_ilert.wsgi:create_app()" autotask-ilert worker

The Autotask callout URL is then
``https://<portal>/alerts/autotask-ilert/callout/<token>``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from werkzeug.middleware.dispatcher import DispatcherMiddleware

from flask_autotask_ilert.wsgi import create_app

#: Where the bridge is mounted in the portal's URL space.
MOUNT = "/alerts"

HOME = b"Example MSP portal (plain WSGI). The on-call bridge answers under /alerts.\n"


def portal(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The portal's own pages: a home page, and 404 for everything else."""
    if environ.get("PATH_INFO", "") in ("", "/"):
        status, body = "200 OK", HOME
    else:
        status, body = "404 Not Found", b"Not found.\n"
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(body)))])
    return [body]


def create_portal(bridge_config: Mapping[str, Any] | None = None) -> DispatcherMiddleware:
    """The portal with the bridge mounted at ``MOUNT``.

    ``bridge_config`` goes to ``flask_autotask_ilert.wsgi.create_app`` (``None``:
    the environment). Requests under ``/alerts`` reach the bridge with
    ``/alerts`` moved from the path into ``SCRIPT_NAME``; every other request
    reaches ``portal`` untouched.
    """
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"))  # the host's choice, not the bridge's
    return DispatcherMiddleware(portal, {MOUNT: create_app(bridge_config)})
