"""The Flask extension: ``AutotaskIlert`` and its ``init_app``.

Nothing is stored on the extension object itself; each app's state, a
:class:`~flask_autotask_ilert.bridge.Bridge`, lives in
``app.extensions["autotask_ilert"]`` so one process may host several apps.
This module wires the parts together (blueprint, CLI, embedded worker) and
is imported by nothing of the package but ``__init__``.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from flask import Flask

from .bridge import EXTENSION_NAME, Bridge, get_bridge
from .cli import cli_group
from .config import OPTIONS, load_settings
from .errors import ConfigurationError
from .views import create_blueprint
from .worker import Worker

__all__ = ["AutotaskIlert", "Bridge", "get_bridge"]

logger = logging.getLogger("flask_autotask_ilert")


class AutotaskIlert:
    """The extension. ``AutotaskIlert(app, **options)`` or ``AutotaskIlert(**options).init_app(app)``.

    Options are the config names in lower case (``redis_url=...``); they win over
    ``app.config``. See docs/configuration.md.
    """

    def __init__(self, app: Flask | None = None, **options: Any) -> None:
        self._options = options
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask, **options: Any) -> None:
        if EXTENSION_NAME in app.extensions:
            raise ConfigurationError(
                "AutotaskIlert is already initialised on this app; call init_app once per app."
            )
        for option in OPTIONS:
            app.config.setdefault(option.key, option.default)
        settings = load_settings(app.config, {**self._options, **options})
        slowest = 3 * sum(settings.http_timeout)  # a delivery may make a few requests in a row
        if settings.worker_lease_ms < slowest * 1000:
            logger.warning(
                "WORKER_LEASE_SECONDS (%.1f s) is shorter than a delivery may take with the HTTP "
                "timeouts (%.1f s): a slow delivery can lose its lease and be repeated by another "
                "worker (a ticket note written twice)", settings.worker_lease_ms / 1000, slowest,
            )
        bridge = Bridge(settings, app=app)
        app.extensions[EXTENSION_NAME] = bridge

        blueprint = create_blueprint(settings)
        if settings.embedded_worker:
            blueprint.before_app_request(lambda: start_embedded_worker(bridge))
        app.register_blueprint(blueprint)
        app.cli.add_command(cli_group)
        logger.info(
            "autotask-ilert mounted at %s with source(s) %s",
            settings.url_prefix,
            ", ".join(settings.sources),
        )

    @staticmethod
    def bridge(app: Flask | None = None) -> Bridge:
        """The bridge of ``app`` (default: the current app)."""
        return get_bridge(app)


def start_embedded_worker(bridge: Bridge) -> None:
    """Start delivery in a daemon thread of this process, once per process.

    Started on the first request rather than at init_app, because a thread
    started in a gunicorn master does not survive the fork into workers.
    """
    stop = bridge.embedded_worker_due()
    if stop is None:
        return
    thread = threading.Thread(
        target=Worker(bridge).run, args=(stop,), name="autotask-ilert-worker", daemon=True
    )
    thread.start()
    logger.info("embedded delivery worker started in pid %s", os.getpid())
