"""The Flask extension: per-app state, the blueprint, the CLI, the embedded worker.

Nothing is stored on the extension object itself; each app's state lives in
``app.extensions["autotask_ilert"]`` so one process may host several apps.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import redis
from flask import Flask, current_app

from .config import OPTIONS, Settings, SourceConfig, load_settings
from .errors import ConfigurationError
from .ratelimit import RequestLimiter
from .store import Store

if TYPE_CHECKING:
    from .autotask import AutotaskClient
    from .ilert import IlertClient
    from .tickets import TicketUpdater

EXTENSION_NAME = "autotask_ilert"
logger = logging.getLogger("flask_autotask_ilert")


def _redis_factory(settings: Settings) -> Callable[[], redis.Redis]:
    if settings.redis_url:
        url = settings.redis_url

        def connect() -> redis.Redis:
            return redis.Redis.from_url(
                url, socket_timeout=2.0, socket_connect_timeout=2.0, health_check_interval=30
            )

        return connect

    import fakeredis

    logger.warning(
        "AUTOTASK_ILERT_REDIS_URL is not set: using an in-process store. It is for a single "
        "process only (a demo or a test); set a Redis URL for anything else."
    )
    server = fakeredis.FakeServer()
    return lambda: fakeredis.FakeRedis(server=server)


class Bridge:
    """Everything one app's bridge needs at run time, created lazily per process."""

    def __init__(
        self, settings: Settings, clock: Callable[[], float] = time.time, app: Flask | None = None
    ) -> None:
        self.settings = settings
        self._app = weakref.ref(app) if app is not None else None
        self.clock = clock
        self.store = Store(
            _redis_factory(settings),
            settings.redis_prefix,
            clock,
            audit_entries=settings.audit_entries,
            reject_audit_ms=settings.audit_reject_ms,
        )
        self.rate_limiter = RequestLimiter(settings)
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._ilert: dict[str, IlertClient] = {}
        self._autotask: dict[str, AutotaskClient] = {}
        self._updaters: dict[str, TicketUpdater] = {}
        self._embedded: tuple[int, threading.Event] | None = None

    @property
    def sender(self) -> Flask | None:
        """The app, as the sender of this bridge's signals."""
        return self._app() if self._app is not None else None

    def _forked(self) -> None:
        if self._pid != os.getpid():
            self._ilert, self._autotask, self._updaters, self._embedded = {}, {}, {}, None
            self._pid = os.getpid()

    def ilert(self, source: SourceConfig) -> IlertClient:
        from .http import make_session
        from .ilert import IlertClient

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
        from .autotask import AutotaskClient
        from .http import make_session
        from .metrics import autotask_observer

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
        from .tickets import AutotaskTicketUpdater

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

    def start_embedded_worker(self) -> None:
        """Start delivery in a daemon thread of this process, once per process.

        Started on the first request rather than at init_app, because a thread
        started in a gunicorn master does not survive the fork into workers.
        """
        with self._lock:
            self._forked()
            if self._embedded is not None:
                return
            from .worker import Worker

            stop = threading.Event()
            self._embedded = (os.getpid(), stop)
        worker = Worker(self)
        thread = threading.Thread(
            target=worker.run, args=(stop,), name="autotask-ilert-worker", daemon=True
        )
        thread.start()
        logger.info("embedded delivery worker started in pid %s", os.getpid())

    def stop_embedded_worker(self) -> None:
        with self._lock:
            if self._embedded is not None:
                self._embedded[1].set()
                self._embedded = None


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

        from .cli import cli_group
        from .views import create_blueprint

        blueprint = create_blueprint(settings)
        if settings.embedded_worker:
            blueprint.before_app_request(bridge.start_embedded_worker)
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


def get_bridge(app: Flask | None = None) -> Bridge:
    target = app if app is not None else current_app
    try:
        bridge: Bridge = target.extensions[EXTENSION_NAME]
    except KeyError:
        raise ConfigurationError(
            "AutotaskIlert is not initialised on this app; call AutotaskIlert().init_app(app) first."
        ) from None
    return bridge
