"""Per-source request-rate limit for floods (``RATE_LIMIT``), counted in Redis.

A misconfigured workflow rule, a loop in another integration or a leaked token
can send a source thousands of requests a second. The requests of one source
that go over ``RATE_LIMIT`` are answered ``429`` with ``Retry-After`` before
anything is read or recorded. On by default, at 600 a minute: a leaked token
must not page for every made-up ticket id and spend the tenant's Autotask
budget, and a real burst of tickets stays far below it (a deployment whose mass
outages could go over raises it, e.g. to the recommended ``3000/minute``;
``off`` turns it off; docs/configuration.md).

The limit uses the engine of Flask-Limiter, the ``limits`` package (same limit
strings, same Redis storage, moving window), but only for the bridge's own
endpoints: Flask-Limiter's ``init_app`` would hook every request of the host
app and read the host's own ``RATELIMIT_*`` settings. Counters live on the
bridge's Redis under ``<prefix>limits:`` (the same server, Sentinel or Cluster:
``redis_url.py`` gives ``limits`` the same URL); with ``memory://`` they live in
memory.
"""

from __future__ import annotations

import math
import threading
import time

from limits.errors import StorageError
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisClusterException, RedisError

from .config import Settings, SourceConfig
from .constraints import parse_rate_limit
from .errors import StoreUnavailable
from .redis_url import MEMORY, RedisTarget

#: What docs/configuration.md recommends: far above any burst Autotask or ilert sends.
RECOMMENDED_RATE_LIMIT = "3000/minute"


class RequestLimiter:
    """Counts requests per source and endpoint; shared by every web process through Redis."""

    def __init__(self, settings: Settings, target: RedisTarget) -> None:
        self._settings = settings
        self._redis = target
        self._lock = threading.Lock()
        self._limiter: MovingWindowRateLimiter | None = None
        self._items = {
            name: parse_rate_limit(source.rate_limit)
            for name, source in settings.sources.items()
            if source.rate_limit
        }

    def _strategy(self) -> MovingWindowRateLimiter:
        with self._lock:
            if self._limiter is None:
                settings = self._settings
                storage: Storage
                if self._redis.kind == MEMORY:
                    storage = MemoryStorage()
                else:
                    uri, options = self._redis.limits_uri()
                    found = storage_from_string(
                        uri, key_prefix=f"{self._redis.key_prefix(settings.redis_prefix)}limits",
                        wrap_exceptions=True, **options)
                    assert isinstance(found, Storage)  # the URL schemes above are not asyncio ones
                    storage = found
                self._limiter = MovingWindowRateLimiter(storage)
            return self._limiter

    def retry_after(self, source: SourceConfig, endpoint: str) -> int | None:
        """Count this request; the seconds to wait if it goes over the limit, else None."""
        items = self._items.get(source.name)
        if not items:
            return None
        try:
            limiter = self._strategy()
            for item in items:
                if not limiter.hit(item, endpoint, source.name):
                    reset_at, _ = limiter.get_window_stats(item, endpoint, source.name)
                    return max(1, math.ceil(reset_at - time.time()))
        except StorageError as exc:
            raise StoreUnavailable(f"rate limit storage: {type(exc.storage_error).__name__}") from exc
        except (RedisError, RedisClusterException) as exc:  # a Cluster that cannot be reached
            raise StoreUnavailable(f"rate limit storage: {type(exc).__name__}") from exc
        return None
