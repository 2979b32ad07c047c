"""Which URLs may receive the Autotask API user's credentials (``AUTOTASK_ALLOWED_HOSTS``).

Every authenticated Autotask request carries ``UserName``, ``Secret`` and
``ApiIntegrationCode`` in its headers, and the zone lookup tells the bridge where
to send them. So a URL, configured or discovered, is only used when it is https
to a host under an allowed suffix (on a dot boundary: ``autotask.net`` allows
``webservices5.autotask.net``, not ``evilautotask.net`` or
``autotask.net.evil.com``). Plain http is allowed for loopback addresses only,
where the simulators of the demo and the tests run.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

DEFAULT_ALLOWED_HOSTS = ("autotask.net",)
#: A DNS name in ASCII. Anything else (userinfo, backslashes, non-ASCII) is refused rather
#: than risk the URL parser here and the one in requests reading a different host.
_HOSTNAME = re.compile(r"[a-z0-9-]+(?:\.[a-z0-9-]+)*")


def normalise_suffixes(values: Iterable[str] | str) -> tuple[str, ...]:
    """Lower case, without leading or trailing dots; empty entries dropped. One text is a list
    of one (or comma-separated), never a list of its letters."""
    if isinstance(values, str):
        values = values.split(",")
    return tuple(s for s in (str(v).strip().strip(".").lower() for v in values) if s)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_problem(url: str, allowed: Iterable[str]) -> str | None:
    """Why ``url`` may not receive Autotask credentials; None when it may."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return "not a valid URL"
    host = (parts.hostname or "").rstrip(".")
    if parts.scheme not in ("https", "http") or not host:
        return "not an http(s) URL"
    if "@" in parts.netloc or "\\" in url:
        return "a URL with user information or backslashes"
    if _is_loopback(host):
        return None
    if parts.scheme != "https":
        return f"plain http to {host} (http is allowed for loopback addresses only)"
    if not _HOSTNAME.fullmatch(host) or not any(
        host == suffix or host.endswith("." + suffix) for suffix in normalise_suffixes(allowed)
    ):
        return f"host {host} is not under the allowed hosts"
    return None
