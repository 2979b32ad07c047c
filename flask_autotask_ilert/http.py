"""Shared plumbing for the outbound HTTP clients (ilert and Autotask).

Neither client retries on its own: a durable queue owns retries, so every
helper here is about making one attempt cheap (pooled keep-alive connections),
bounded (timeouts) and safe to report (redaction, truncation).
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import math
import random
import re
import time
from collections.abc import Iterable
from datetime import timezone
from typing import Any, Protocol
from urllib.parse import quote, quote_plus, urlsplit

import requests
from requests.adapters import HTTPAdapter

from flask_autotask_ilert.version import __version__

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_REASON_LENGTH",
    "TRANSIENT_ERRORS",
    "USER_AGENT",
    "backoff",
    "make_session",
    "parse_retry_after",
    "redact",
    "scrub",
    "secret_digest",
    "truncate",
]

#: (connect, read) seconds. The connect value sits just above a multiple of 3 s,
#: the TCP SYN retransmission interval, so one lost SYN does not fail the attempt.
DEFAULT_TIMEOUT: tuple[float, float] = (3.05, 10.0)

#: Longest text taken from a remote response into a reason or error message:
#: enough to diagnose, too short to flood logs or queue records.
MAX_REASON_LENGTH = 200

USER_AGENT = f"flask-autotask-ilert/{__version__}"

#: Failures where the request may never have reached the server, or the answer
#: never reached us: trying again later can succeed. Everything else raised by
#: requests (bad URL, unserialisable body, ...) is a configuration or code
#: problem that no amount of waiting fixes.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    requests.exceptions.ConnectionError,  # includes ConnectTimeout, SSLError, ProxyError
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)

_REDACTED = "***"
_WHITESPACE = re.compile(r"\s+")


class _Session(requests.Session):
    """A session that reads the proxy and CA-bundle environment once a minute per origin.

    requests scans the whole process environment (proxy variables, ``no_proxy``,
    ``REQUESTS_CA_BUNDLE``) on every request, which was a fifth of the delivery
    worker's CPU per HTTP call (docs/performance.md). The answer only depends on
    the URL's origin and the environment, so it is kept for ``ENV_TTL`` seconds:
    a changed environment still takes effect, a minute later at most. Only the
    public ``merge_environment_settings`` is overridden; requests prepares every
    request itself.
    """

    ENV_TTL = 60.0

    def __init__(self) -> None:
        super().__init__()
        self._env_cache: dict[tuple[Any, ...], tuple[float, dict[str, Any]]] = {}

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any,
                                   cert: Any) -> Any:
        if proxies or not self.trust_env:  # the clients never pass proxies of their own
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        parts = urlsplit(url.decode() if isinstance(url, bytes) else str(url))
        key = (parts.scheme, parts.netloc, stream, verify, cert)
        now = time.monotonic()
        cached = self._env_cache.get(key)
        if cached is None or now - cached[0] > self.ENV_TTL:
            fresh: Any = super().merge_environment_settings(url, proxies, stream, verify, cert)
            self._env_cache[key] = cached = (now, dict(fresh))
        return {**cached[1], "proxies": dict(cached[1]["proxies"])}


def make_session(pool_maxsize: int = 10) -> requests.Session:
    """Build a session whose connections are reused across queue deliveries.

    ``max_retries=0`` is deliberate: urllib3-level retries would hide attempts
    from the queue's backoff and from the API call counter, and would repeat
    non-idempotent POSTs behind our back.
    """
    session = _Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_maxsize, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Turn a ``Retry-After`` header into a delay in seconds.

    Servers send either delta-seconds or an HTTP date; a date in the past means
    "now", hence the clamp to zero. Unusable values give ``None`` so the caller
    falls back to its own backoff rather than trusting garbage. Callers should
    still cap the result: a hostile or buggy server can ask for years.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if math.isnan(seconds) or math.isinf(seconds):
            return None
        return max(0.0, seconds)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" means UTC with unknown origin (RFC 5322)
        when = when.replace(tzinfo=timezone.utc)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _variants(secret: str) -> set[str]:
    """Spellings under which a server may echo a secret back at us."""
    return {
        secret,
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
        json.dumps(secret)[1:-1],
    }


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every occurrence of each secret in ``text`` with ``***``.

    Servers like to echo what they were sent ("no alert source for key X"),
    and such text ends up in logs and in queue records. URL- and JSON-escaped
    spellings are covered too. Longer strings go first so a secret that
    contains another one is removed whole.
    """
    needles: set[str] = set()
    for secret in secrets:
        if secret:
            needles |= _variants(secret)
    for needle in sorted(needles, key=len, reverse=True):
        text = text.replace(needle, _REDACTED)
    return text


def truncate(text: str, limit: int = MAX_REASON_LENGTH) -> str:
    """Bound the size of remote text kept in reasons, messages and logs."""
    if len(text) <= limit:
        return text
    if limit <= 1:
        return text[:limit]
    return text[: limit - 1] + "…"


def secret_digest(secret: str) -> str:
    """A short name for a secret that reveals nothing of it.

    Redis keys shared by everything that uses one integration key or code
    (pacing, Autotask request places, usage readings) are named by it.
    """
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def scrub(text: str, secrets: Iterable[str | None], limit: int = MAX_REASON_LENGTH) -> str:
    """Make remote text fit for a log line: one line, secret-free, bounded.

    Redaction runs before truncation; the other order could cut a secret in
    half and leave its prefix behind. Collapsing whitespace keeps a response
    body from forging extra log lines.
    """
    return truncate(_WHITESPACE.sub(" ", redact(text, secrets)).strip(), limit)


class _Uniform(Protocol):
    def uniform(self, a: float, b: float, /) -> float: ...


def backoff(
    attempt: int,
    base: float = 1.0,
    cap: float = 300.0,
    rng: _Uniform = random,
) -> float:
    """Delay before retry number ``attempt`` (0 for the first retry).

    Formula: ``uniform(min(base / 2, ceiling), ceiling)`` with
    ``ceiling = min(cap, base * 2 ** attempt)``.

    This is "full jitter" with a floor. Full jitter spreads the retries of many
    failed deliveries (a mass outage) over the whole window so they do not hit
    a recovering or rate-limited API in lock-step; the ``base / 2`` floor stops
    an unlucky draw near zero from retrying immediately, which would only spend
    a rate-limit slot on a certain failure.
    """
    if base <= 0 or cap <= 0:
        return 0.0
    exponent = min(max(attempt, 0), 62)  # 2**62 overflows nothing and exceeds any cap
    ceiling = min(cap, base * float(2**exponent))
    floor = min(base / 2, ceiling)
    return rng.uniform(floor, ceiling)
