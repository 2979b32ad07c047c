"""One app's run-time parts: settings, store, flood limit and HTTP clients, made per process.

``Bridge`` lives in ``app.extensions["autotask_ilert"]``; everything that works
for an app (views, worker, CLI, metrics) is handed one or asks ``get_bridge()``.
It imports only the parts it assembles, never the code that uses it, so the
package's imports go one way.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app

from .autotask import AutotaskClient
from .config import Settings, SourceConfig
from .errors import ConfigurationError
from .http import make_session
from .ilert import IlertClient
from .metrics import autotask_observer
from .ratelimit import RequestLimiter
from .redis_url import RedisTarget, parse
from .store import Store
from .tickets import AutotaskTicketUpdater, TicketUpdater

EXTENSION_NAME = "autotask_ilert"
logger = logging.getLogger("flask_autotask_ilert")


class Bridge:
    """Everything one app's bridge needs at run time, created lazily per process."""

    def __init__(
        self, settings: Settings, clock: Callable[[], float] = time.time, app: Flask | None = None
    ) -> None:
        self.settings = settings
        self._app = weakref.ref(app) if app is not None else None
        self.clock = clock
        #: Which Redis REDIS_URL names (no URL is a ConfigurationError: see redis_url.py).
        self.redis: RedisTarget = parse(settings.redis_url)
        self.store = Store(
            self.redis.connector(),
            self.redis.key_prefix(settings.redis_prefix),
            clock,
            audit_entries=settings.audit_entries,
            reject_audit_ms=settings.audit_reject_ms,
        )
        self.rate_limiter = RequestLimiter(settings, self.redis)
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._ilert: dict[str, IlertClient] = {}
        self._autotask: dict[str, AutotaskClient] = {}
        self._updaters: dict[str, TicketUpdater] = {}
        self._embedded: tuple[int, threading.Event] | None = None
        #: The OpenAPI description of the endpoints, built on the first request for it.
        self.openapi: dict[str, Any] | None = None

    @property
    def sender(self) -> Flask | None:
        """The app, as the sender of this bridge's signals."""
        return self._app() if self._app is not None else None

    def _forked(self) -> None:
        if self._pid != os.getpid():
            self._ilert, self._autotask, self._updaters, self._embedded = {}, {}, {}, None
            self._pid = os.getpid()

    def ilert(self, source: SourceConfig) -> IlertClient:
        with self._lock:
            self._forked()
            client = self._ilert.get(source.name)
            if client is None:
                client = IlertClient(
                    source.ilert_api_url,
                    session=make_session(self.settings.worker_threads * 2),
                    timeout=self.settings.http_timeout,
                )
                self._ilert[source.name] = client
            return client

    def autotask(self, source: SourceConfig) -> AutotaskClient | None:
        if source.autotask is None:
            return None
        with self._lock:
            self._forked()
            client = self._autotask.get(source.name)
            if client is None:
                at = source.autotask
                client = AutotaskClient(
                    at.username,
                    at.secret,
                    at.integration_code,
                    api_url=at.api_url,
                    web_url=at.web_url,
                    zone_lookup_url=self.settings.autotask_zone_lookup_url,
                    session=make_session(self.settings.worker_threads * 2),
                    timeout=self.settings.http_timeout,
                    observer=autotask_observer(source.name),
                    allowed_hosts=self.settings.autotask_allowed_hosts,
                )
                self._autotask[source.name] = client
            return client

    def ticket_updater(self, source: SourceConfig) -> tuple[TicketUpdater, AutotaskClient | None]:
        """The source's ticket writer, and the Autotask client it spends calls on (if any).

        A configured TICKET_UPDATER class is instantiated once per process.
        """
        sync = source.sync
        assert sync is not None
        if sync.ticket_updater is not None:
            with self._lock:
                self._forked()
                updater = self._updaters.get(source.name)
                if updater is None:
                    configured = sync.ticket_updater
                    updater = configured() if isinstance(configured, type) else configured
                    self._updaters[source.name] = updater
            return updater, None
        client = self.autotask(source)
        assert client is not None  # validated at init_app
        return AutotaskTicketUpdater(client, sync.note_type, sync.note_publish), client

    def embedded_worker_due(self) -> threading.Event | None:
        """The stop event of this process's embedded worker, if it is not running yet.

        Once per process: a thread started in a gunicorn master does not survive
        the fork into workers, so after a fork the worker is due again.
        """
        with self._lock:
            self._forked()
            if self._embedded is not None:
                return None
            stop = threading.Event()
            self._embedded = (os.getpid(), stop)
            return stop

    def stop_embedded_worker(self) -> None:
        with self._lock:
            if self._embedded is not None:
                self._embedded[1].set()
                self._embedded = None


def get_bridge(app: Flask | None = None) -> Bridge:
    """The bridge of ``app`` (default: the current app)."""
    target = app if app is not None else current_app
    try:
        bridge: Bridge = target.extensions[EXTENSION_NAME]
    except KeyError:
        raise ConfigurationError(
            "AutotaskIlert is not initialised on this app; call AutotaskIlert().init_app(app) first."
        ) from None
    return bridge
