"""The bridge as an app of its own, for portals that are not Flask apps.

A Django, Pyramid or plain WSGI portal cannot call ``init_app``; it mounts this
app under a path of its own with werkzeug's ``DispatcherMiddleware`` instead
(docs/wsgi.md). The same factory serves gunicorn and the CLI, so the web
processes and the worker are configured alike::

    gunicorn "flask_autotask_ilert.wsgi:create_app()"
    flask --app "flask_autotask_ilert.wsgi:create_app()" autotask-ilert worker

No app is built at import: a host imports this module while it is still setting
itself up, and an import that read the environment (or failed on a missing
token) would take that choice away from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from . import AutotaskIlert
from .config import OPTIONS_BY_NAME, PREFIX, from_env
from .errors import ConfigurationError


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """A Flask app that serves the bridge and nothing else.

    ``config`` holds what an ``app.config`` would: ``AUTOTASK_ILERT_*`` keys (and
    Flask's own, such as ``TESTING``, if wanted). Given one, the environment is
    not read at all, so a host that keeps its settings elsewhere gets exactly
    what it passed. ``None`` reads the ``AUTOTASK_ILERT_*`` variables, as
    ``config.from_env`` does. An invalid or unknown key raises
    ``ConfigurationError``, as ``init_app`` does for any app.

    The endpoints stay under ``AUTOTASK_ILERT_URL_PREFIX`` (``/autotask-ilert``)
    inside this app; whatever path a host mounts it at comes in front of that.
    """
    values = from_env() if config is None else config
    _refuse_unprefixed(values)
    app = Flask(__name__)
    app.config.update(values)
    AutotaskIlert(app)
    return app


def _refuse_unprefixed(values: Mapping[str, Any]) -> None:
    """An option named without its prefix (``REDIS_URL``, ``callout_token``) is an error.

    Flask would keep such a key and the bridge would never look at it, so the
    mistake would show only as a default (an in-process store instead of the
    Redis meant) or as a misleading "no alert source configured".
    """
    named = sorted(k for k in values if isinstance(k, str) and k.upper() in OPTIONS_BY_NAME)
    if named:
        wanted = ", ".join(PREFIX + k.upper() for k in named)
        raise ConfigurationError(
            f"config key(s) without the {PREFIX} prefix: {', '.join(named)} (use {wanted})"
        )
