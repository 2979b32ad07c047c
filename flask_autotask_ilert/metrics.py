"""Every Prometheus metric of the bridge, and what ``{prefix}/metrics`` serves.

Two kinds, on purpose:

- Counters and the latency histogram count what *this process* saw: the
  callouts and webhooks it answered, the deliveries and API calls its worker
  made. Under gunicorn each web process has its own, so with
  ``PROMETHEUS_MULTIPROC_DIR`` set prometheus-client keeps them in files there
  and the scrape adds the processes up (see examples/gunicorn.conf.py).
- Queue depth, the age of the oldest undelivered event, dead letters, worker
  heartbeats and the Autotask usage reading describe the *shared* state in
  Redis. They are read from Redis at scrape time by :class:`StoreCollector`,
  never kept in a process, so every process reports the same truth and
  multiprocess mode has nothing of them to add up twice.

Label values are bounded: source names come from the configuration, actions,
targets and outcomes from fixed vocabularies, codes from HTTP; never a ticket
id, an alert id, free text or a secret.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import urlsplit

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from .errors import StoreUnavailable
from .health import read_queue_health

if TYPE_CHECKING:
    from .autotask import AutotaskClient
    from .config import Settings, SourceConfig
    from .store import Store

logger = logging.getLogger("flask_autotask_ilert")
_F = TypeVar("_F", bound=Callable[..., None])
_failed_once = threading.Event()


class Bridge(Protocol):
    """What metrics reads of a ``bridge.Bridge``; a protocol, since bridge.py imports this module."""

    store: Store
    settings: Settings

    def autotask(self, source: SourceConfig) -> AutotaskClient | None: ...


def _never_raise(count: _F) -> _F:
    """Counting must never fail a callout or a delivery (an unwritable
    PROMETHEUS_MULTIPROC_DIR, say): the failure is logged once and counting skipped."""

    @functools.wraps(count)
    def guarded(*args: Any, **kwargs: Any) -> None:
        try:
            count(*args, **kwargs)
        except Exception:
            if not _failed_once.is_set():
                _failed_once.set()
                logger.exception("metrics: counting failed; carrying on without")

    return guarded  # type: ignore[return-value]


CALLOUTS = Counter(
    "autotask_ilert_callouts",
    "Autotask callouts answered, by alert source, action (create, accept, resolve, nothing, "
    "reject, stale; none when refused before one was decided) and HTTP code.",
    ["source", "action", "code"],
)
WEBHOOKS = Counter(
    "autotask_ilert_webhooks",
    "ilert alert-action webhooks answered, by alert source, action (accept-ticket, "
    "resolve-ticket, nothing, ignored; none when refused) and HTTP code.",
    ["source", "action", "code"],
)
AUTOTASK_WEBHOOKS = Counter(
    "autotask_ilert_autotask_webhooks",
    "Autotask webhook deliveries answered, by alert source, action (create, accept, resolve, "
    "nothing, reject, stale, duplicate, ignored, deactivated; none when refused) and HTTP code.",
    ["source", "action", "code"],
)
DELIVERIES = Counter(
    "autotask_ilert_deliveries",
    "Delivery attempts of queued events, by alert source, target (ilert, ticket) and outcome "
    "(delivered, already_done, retry, dead, paced, deferred).",
    ["source", "target", "outcome"],
)
DELIVERY_LATENCY = Histogram(
    "autotask_ilert_delivery_latency_seconds",
    "From the callout or webhook that queued an event to its delivery (retries and pacing "
    "included).",
    ["source", "target"],
    buckets=(0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
AUTOTASK_REQUESTS = Counter(
    "autotask_ilert_autotask_requests",
    "HTTP requests to Autotask's REST API, by alert source, operation and HTTP code "
    "(network: no answer). Each one is taken from the tenant's hourly budget.",
    ["source", "operation", "code"],
)
ILERT_RATE_LIMITED = Counter(
    "autotask_ilert_ilert_rate_limited",
    "Events ilert answered with 429 Too Many Requests (each is retried).",
    ["source"],
)
TEMPLATE_ERRORS = Counter(
    "autotask_ilert_template_errors",
    "Alert text templates that failed while rendering, by alert source and template (summary, "
    "details, custom_details); the default text went out instead.",
    ["source", "template"],
)

RECONCILE_SWEEPS = Counter(
    "autotask_ilert_reconcile_sweeps",
    "Reconciliation sweeps against Autotask, by alert source and outcome (done, failed, deferred: "
    "the tenant's API budget was spent).",
    ["source", "outcome"],
)
RECONCILE_TICKETS = Counter(
    "autotask_ilert_reconcile_tickets",
    "Tickets the reconciliation sweeps read from Autotask, by alert source.",
    ["source"],
)
RECONCILE_CHANGES = Counter(
    "autotask_ilert_reconcile_changes",
    "Changes the sweeps found that no callout had reported, by alert source and action (create, "
    "accept, resolve, resolve-unknown): each one a lost callout.",
    ["source", "action"],
)
RECONCILE_CALLS = Counter(
    "autotask_ilert_reconcile_autotask_calls",
    "Autotask requests the sweeps made (query pages, picklist reads), by alert source.",
    ["source"],
)
FUTURE_TIMESTAMPS = Counter(
    "autotask_ilert_future_timestamps",
    "Callouts whose last_activity_datetime was more than CLOCK_SKEW_SECONDS ahead of the "
    "bridge's clock, and so was not used to order them.",
    ["source"],
)

_ID_SEGMENT = re.compile(r"/\d+(?=/|$)")
_OPERATION = re.compile(r"[^A-Za-z0-9/{}._-]")


def autotask_operation(method: str, url: str) -> str:
    """A bounded name for an Autotask call: "GET Tickets/{id}", never the ticket id itself."""
    path = urlsplit(url).path
    _, found, rest = path.partition("/v1.0/")
    name = _OPERATION.sub("", _ID_SEGMENT.sub("/{id}", rest)) if found else "other"
    return f"{method.upper()} {name}"[:64]


def autotask_observer(source: str) -> Callable[[str, str, int | None], None]:
    """What an Autotask client calls after each request, to count it under ``source``."""

    @_never_raise
    def observe(method: str, url: str, status: int | None) -> None:
        code = str(status) if status is not None else "network"
        AUTOTASK_REQUESTS.labels(source, autotask_operation(method, url), code).inc()

    return observe


@_never_raise
def count_callout(source: str, action: str, code: int) -> None:
    CALLOUTS.labels(source, action, str(code)).inc()


@_never_raise
def count_webhook(source: str, action: str, code: int) -> None:
    WEBHOOKS.labels(source, action, str(code)).inc()


@_never_raise
def count_autotask_webhook(source: str, action: str, code: int) -> None:
    AUTOTASK_WEBHOOKS.labels(source, action, str(code)).inc()


@_never_raise
def count_delivery(source: str, target: str, outcome: str, latency_s: float | None = None) -> None:
    DELIVERIES.labels(source, target, outcome).inc()
    if latency_s is not None:
        DELIVERY_LATENCY.labels(source, target).observe(max(0.0, latency_s))


@_never_raise
def count_future_timestamp(source: str) -> None:
    FUTURE_TIMESTAMPS.labels(source).inc()


@_never_raise
def count_ilert_rate_limited(source: str) -> None:
    ILERT_RATE_LIMITED.labels(source).inc()


@_never_raise
def count_reconcile(
    source: str, outcome: str, read: int = 0, calls: int = 0, changes: Iterable[str] = ()
) -> None:
    RECONCILE_SWEEPS.labels(source, outcome).inc()
    RECONCILE_TICKETS.labels(source).inc(read)
    RECONCILE_CALLS.labels(source).inc(calls)
    for action in changes:
        RECONCILE_CHANGES.labels(source, action).inc()


def count_template_error(source: str, template: str) -> None:
    TEMPLATE_ERRORS.labels(source, template).inc()


# -- shared state, read from Redis at scrape time -----------------------------------------


class StoreCollector:
    """The bridge's shared state in Redis, read when scraped.

    A scrape during a Redis outage still succeeds: it reports
    ``autotask_ilert_store_up 0`` and leaves the other gauges out rather than
    failing the whole exposition (and the host app's metrics with it).
    """

    def __init__(self, bridge: Bridge) -> None:
        self._bridge = weakref.ref(bridge)

    def collect(self) -> Iterator[Metric]:
        bridge = self._bridge()
        if bridge is None:
            return
        up = GaugeMetricFamily("autotask_ilert_store_up",
                               "1 when Redis answered this scrape, 0 when it did not.")
        try:
            families = list(self._families(bridge))
        except StoreUnavailable:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self, bridge: Bridge) -> Iterable[Metric]:
        store, settings = bridge.store, bridge.settings
        health = read_queue_health(store, settings)
        yield GaugeMetricFamily(
            "autotask_ilert_queue_tickets",
            "Tickets with undelivered events (waiting, retrying or paced).",
            value=health.tickets,
        )
        oldest = health.oldest_age_ms
        yield GaugeMetricFamily(
            "autotask_ilert_queue_oldest_event_age_seconds",
            "Age of the oldest undelivered event among the tickets due first (0 when nothing is "
            "queued).",
            value=oldest / 1000 if oldest is not None else 0.0,
        )
        yield GaugeMetricFamily(
            "autotask_ilert_queue_most_overdue_seconds",
            "How long the most overdue ticket has been due without a worker taking it.",
            value=health.most_overdue_ms / 1000,
        )
        yield GaugeMetricFamily(
            "autotask_ilert_dead_letters",
            "Events given up on, waiting in the dead-letter list (see the replay command).",
            value=health.dead_letters,
        )
        yield GaugeMetricFamily(
            "autotask_ilert_workers",
            "Workers whose last heartbeat is younger than READY_HEARTBEAT_SECONDS.",
            value=health.workers,
        )
        beat_age = health.last_heartbeat_age_ms
        if beat_age is not None:
            yield GaugeMetricFamily(
                "autotask_ilert_worker_heartbeat_age_seconds",
                "Age of the newest worker heartbeat (absent when no worker ever wrote one).",
                value=beat_age / 1000,
            )
        usage = GaugeMetricFamily(
            "autotask_ilert_autotask_threshold_usage_ratio",
            "Share of the Autotask tenant's hourly API budget in use, at the last reading "
            "(absent when no recent reading exists).",
            labels=["source"],
        )
        for source in settings.sources.values():
            client = bridge.autotask(source)
            reading = store.usage_reading(client.integration_code_digest) if client else None
            if reading is not None:
                usage.add_metric([source.name], reading[0])
        yield usage


#: Every metric of the bridge is named under this prefix.
NAMESPACE = "autotask_ilert_"

#: The bridge's own counters and histogram, apart from whatever else the process registers
#: (process and GC collectors, the host app's metrics): /metrics serves this by default, so
#: an open or leaked scrape tells nothing about the host app. They stay in the default
#: registry too, for a host app that serves that registry itself.
OWN_REGISTRY = CollectorRegistry()
for _metric in (CALLOUTS, WEBHOOKS, AUTOTASK_WEBHOOKS, DELIVERIES, DELIVERY_LATENCY, AUTOTASK_REQUESTS,
                ILERT_RATE_LIMITED):
    OWN_REGISTRY.register(_metric)


class _Forward:
    """Serves another registry's metrics from inside ours; with ``only_ours``, only the
    bridge's (multiprocess mode collects every process's files, the host app's included)."""

    def __init__(self, registry: CollectorRegistry, only_ours: bool = False) -> None:
        self._registry = registry
        self._only_ours = only_ours

    def collect(self) -> Iterable[Metric]:
        for family in self._registry.collect():
            if not self._only_ours or family.name.startswith(NAMESPACE):
                yield family


def multiprocess_dir() -> str | None:
    """prometheus-client's multiprocess mode is on when this is set (before it is imported)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


_registries: weakref.WeakKeyDictionary[Bridge, CollectorRegistry] = weakref.WeakKeyDictionary()
_registries_lock = threading.Lock()


def registry_for(bridge: Bridge) -> CollectorRegistry:
    """What one app exposes: this process's metrics (or every process's, in multiprocess
    mode) and the app's shared state from Redis; the rest of the process's metrics only
    with METRICS_INCLUDE_PROCESS."""
    everything = bridge.settings.metrics_include_process
    with _registries_lock:
        registry = _registries.get(bridge)
        if registry is None:
            registry = CollectorRegistry()
            if multiprocess_dir():
                from prometheus_client.multiprocess import MultiProcessCollector

                files = CollectorRegistry()
                MultiProcessCollector(files)  # type: ignore[no-untyped-call]
                registry.register(_Forward(files, only_ours=not everything))
            else:
                registry.register(_Forward(REGISTRY if everything else OWN_REGISTRY))
            registry.register(StoreCollector(bridge))
            _registries[bridge] = registry
        return registry


def render(bridge: Bridge, accept: str | None) -> tuple[bytes, str]:
    """The exposition body and its content type (OpenMetrics when the scraper asks for it)."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry_for(bridge)), content_type


def serve(bridge: Bridge, port: int, addr: str = "127.0.0.1") -> None:
    """Serve the same metrics on a port of their own (for a worker process, which has no web
    endpoint), from a daemon thread."""
    from prometheus_client import start_http_server

    start_http_server(port, addr=addr, registry=registry_for(bridge))
