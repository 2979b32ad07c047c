"""Client for ilert's Events API.

One call is one HTTP attempt. The outcome is classified rather than raised so
the delivery worker can decide, from a single value, whether to drop the queue
item, keep it for later, or park it as failed.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests

from flask_autotask_ilert.http import (
    DEFAULT_TIMEOUT,
    TRANSIENT_ERRORS,
    make_session,
    parse_retry_after,
    scrub,
)

__all__ = ["IlertClient", "SendResult", "Verdict"]

logger = logging.getLogger(__name__)

#: ilert's answer to ACCEPT/RESOLVE for a key with no open alert: the alert is
#: already in (or past) the wanted state, so the event has nothing left to do.
NO_OPEN_ALERT = "NO_OPEN_ALERT_WITH_KEY"


class Verdict(enum.Enum):
    """What the queue should do with the event after one delivery attempt."""

    DELIVERED = "delivered"
    ALREADY_DONE = "already_done"
    RETRY = "retry"
    PERMANENT = "permanent"


@dataclass(frozen=True)
class SendResult:
    """Outcome of one attempt; ``reason`` is short and safe to log or store."""

    verdict: Verdict
    status: int | None
    reason: str
    retry_after: float | None = None

    @property
    def done(self) -> bool:
        """True when the queue item can be dropped."""
        return self.verdict in (Verdict.DELIVERED, Verdict.ALREADY_DONE)


class IlertClient:
    """Posts events to one ilert installation.

    Holds no credentials: each event carries its alert source's integration
    key, so one client serves every source.
    """

    def __init__(
        self,
        api_url: str = "https://api.ilert.com",
        session: requests.Session | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.events_url = f"{self.api_url}/api/events"
        self.session = session if session is not None else make_session()
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"IlertClient(api_url={self.api_url!r})"

    def send_event(self, event: Mapping[str, Any]) -> SendResult:
        """Deliver ``event`` once and classify the outcome; never raises for HTTP trouble.

        Redirects are not followed: requests would replay a POST as a GET after
        a 301/302 and would carry the integration key to whatever host the
        redirect names. A redirect means a wrong ``api_url``, which waiting
        does not fix.
        """
        secrets = _event_secrets(event)
        try:
            response = self.session.post(
                self.events_url,
                json=dict(event),
                headers={"Accept": "application/json"},
                timeout=self.timeout,
                allow_redirects=False,
            )
        except TRANSIENT_ERRORS as exc:
            result = SendResult(Verdict.RETRY, None, f"network: {type(exc).__name__}")
        except requests.exceptions.RequestException as exc:
            result = SendResult(Verdict.PERMANENT, None, f"request: {type(exc).__name__}")
        else:
            result = _classify(response, secrets)
        logger.debug("ilert event %s: %s", result.verdict.value, result.reason)
        return result


def _event_secrets(event: Mapping[str, Any]) -> list[str]:
    # Older clients send the key as ``apiKey``; redact whichever is present.
    return [
        value
        for name in ("integrationKey", "apiKey")
        if isinstance(value := event.get(name), str) and value
    ]


def _classify(response: requests.Response, secrets: list[str]) -> SendResult:
    status = response.status_code
    if 200 <= status < 300:
        # ilert documents 202; its Go client accepts 200 too. No other 2xx is
        # known, and none of them could mean "not delivered".
        return SendResult(Verdict.DELIVERED, status, f"http {status}")

    code, detail = _error_detail(response, secrets)
    reason = scrub(f"http {status}: {detail}" if detail else f"http {status}", secrets)

    if 400 <= status < 500 and code == NO_OPEN_ALERT:
        return SendResult(Verdict.ALREADY_DONE, status, reason)
    if status == 429 or status >= 500 or status == 408:
        # 408 joins 429/5xx: the server gave up waiting for us, nothing was
        # processed, and the same request can succeed later.
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return SendResult(Verdict.RETRY, status, reason, retry_after)
    return SendResult(Verdict.PERMANENT, status, reason)


def _error_detail(response: requests.Response, secrets: list[str]) -> tuple[str | None, str]:
    """Pull ilert's error ``code`` (for matching) and a human detail (for the reason)."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        # Proxies answer with HTML error pages: noise in a one-line reason.
        if not text or text.startswith("<"):
            return None, ""
        return None, scrub(text, secrets)
    if not isinstance(body, dict):
        return None, ""
    code = body.get("code")
    message = body.get("message")
    code_text = code.strip() if isinstance(code, str) else None
    parts = [p for p in (code_text, message if isinstance(message, str) else None) if p]
    return code_text, scrub(": ".join(parts), secrets)
