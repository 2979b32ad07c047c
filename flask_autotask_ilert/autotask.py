"""Client for the Autotask PSA REST API.

Every request is taken from the tenant's shared hourly budget (10,000 calls,
shared with all of the customer's other integrations), so the client caches
what it can (zone, picklists), never retries on its own, and counts its calls.
Failures are raised as :class:`AutotaskError` with a ``retryable`` flag that
the delivery queue uses to reschedule or give up.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, TypeGuard
from urllib.parse import urlsplit, urlunsplit

import requests

from flask_autotask_ilert.errors import AutotaskIlertError
from flask_autotask_ilert.http import (
    DEFAULT_TIMEOUT,
    TRANSIENT_ERRORS,
    make_session,
    parse_retry_after,
    scrub,
    secret_digest,
)
from flask_autotask_ilert.lifecycle import fold
from flask_autotask_ilert.trusted_hosts import DEFAULT_ALLOWED_HOSTS, normalise_suffixes, url_problem

__all__ = ["AutotaskClient", "AutotaskError", "Zone"]

logger = logging.getLogger(__name__)

UNAUTHORIZED_MESSAGE = "unauthorized: check the API user, secret and integration code"
ZONE_LOOKUP_FAILED = "zone lookup failed for the configured API user"
#: The most records one Autotask query page returns.
TICKETS_PER_QUERY = 500

_ZONE_HOST = re.compile(r"^webservices(\d+)\.autotask\.net$", re.IGNORECASE)
_ENTITY_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
#: How the zone lookup says it does not know the API user (HTTP 500, like an outage).
_UNKNOWN_USER = re.compile(r"could not be determined|not found|unknown user|invalid user", re.IGNORECASE)


class AutotaskError(AutotaskIlertError):
    """A failed Autotask call.

    The message is built only from the operation, the HTTP status and
    Autotask's own (redacted, truncated) error text, so it is safe to log and
    to store with a queue item.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments defeat Exception's default pickling, and
        # errors may cross process boundaries (worker pools, test runners).
        return (_rebuild_error, (self.message, self.retryable, self.status, self.retry_after))

    def __repr__(self) -> str:
        return (
            f"AutotaskError({self.message!r}, retryable={self.retryable}, "
            f"status={self.status}, retry_after={self.retry_after})"
        )


def _rebuild_error(
    message: str, retryable: bool, status: int | None, retry_after: float | None
) -> AutotaskError:
    return AutotaskError(message, retryable=retryable, status=status, retry_after=retry_after)


@dataclass(frozen=True)
class Zone:
    """Where a tenant's data lives: REST base URL and the web UI for people."""

    api_url: str
    web_url: str


def derive_web_url(api_url: str) -> str:
    """Guess the web UI address from the REST address.

    Autotask pairs ``webservicesN.autotask.net`` with ``wwN.autotask.net``;
    anything else (a simulator, a proxy) is assumed to serve both from the
    same origin.
    """
    parts = urlsplit(api_url)
    match = _ZONE_HOST.match(parts.hostname or "")
    if match:
        return f"https://ww{match.group(1)}.autotask.net"
    return f"{parts.scheme}://{parts.netloc}"


@dataclass
class _PicklistField:
    labels: dict[str, str]  # value -> label, active and inactive
    by_label: dict[str, int]  # normalised label -> value, active values win
    default: int | None = None  # the active value marked isDefaultValue
    #: Active values as (value, label), by sortOrder: what a tenant without a default offers.
    active: tuple[tuple[int, str], ...] = ()


@dataclass
class _PicklistEntry:
    expires: float
    fields: dict[str, _PicklistField]  # keyed by casefolded field name


class AutotaskClient:
    """One API user of one Autotask tenant.

    Thread-safe: the zone, the picklist cache and the call counter are shared
    by worker threads.
    """

    def __init__(
        self,
        username: str,
        secret: str,
        integration_code: str,
        api_url: str | None = None,
        web_url: str | None = None,
        zone_lookup_url: str = "https://webservices.autotask.net/atservicesrest",
        impersonation_resource_id: int | None = None,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        picklist_ttl: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        observer: Callable[[str, str, int | None], None] | None = None,
        allowed_hosts: Iterable[str] = DEFAULT_ALLOWED_HOSTS,
    ) -> None:
        self._username = username
        self._secret = secret
        self._integration_code = integration_code
        self._secrets = (secret, integration_code, username)
        self._code_digest: str | None = None
        self._zone_lookup_url = zone_lookup_url.rstrip("/")
        self._impersonation_resource_id = impersonation_resource_id
        self.session = session if session is not None else make_session()
        self.timeout = timeout
        self.picklist_ttl = picklist_ttl
        self._clock = clock
        #: Told (method, url, HTTP status or None) after every request: the metrics' hook.
        self._observer = observer
        #: Where the credentials may go (trusted_hosts.py); the last API URL found to qualify.
        self._allowed_hosts = normalise_suffixes(allowed_hosts)
        self._trusted_api: str | None = None

        self._fixed_zone: Zone | None = None
        if api_url:
            api = api_url.rstrip("/")
            self._fixed_zone = Zone(api, (web_url or derive_web_url(api)).rstrip("/"))
        self._web_url_override = web_url.rstrip("/") if web_url else None

        self._zone: Zone | None = self._fixed_zone
        self._zone_lock = threading.Lock()
        self._calls = 0
        self._calls_lock = threading.Lock()
        self._picklists: dict[str, _PicklistEntry] = {}
        self._picklist_locks: dict[str, threading.Lock] = {}
        self._picklist_guard = threading.Lock()

    def __repr__(self) -> str:
        # Deliberately without username, secret or integration code.
        zone = self._zone.api_url if self._zone else None
        return f"AutotaskClient(zone={zone!r}, calls={self.calls})"

    @property
    def calls(self) -> int:
        """HTTP requests attempted so far, zone lookups included."""
        with self._calls_lock:
            return self._calls

    # ------------------------------------------------------------------ zone

    def zone(self) -> Zone:
        """The tenant's zone, discovered once and cached until a 401 says it moved."""
        zone = self._zone
        if zone is not None:
            return zone
        with self._zone_lock:
            if self._zone is None:  # another thread may have finished meanwhile
                self._zone = self._discover_zone()
            return self._zone

    def _forget_zone(self, stale: Zone) -> bool:
        """Drop the cached zone if it is still ``stale``; report whether rediscovery is allowed.

        Comparing first means threads that all saw the same 401 trigger a
        single rediscovery between them.
        """
        if self._fixed_zone is not None:
            return False
        with self._zone_lock:
            if self._zone == stale:
                self._zone = None
        return True

    def _discover_zone(self) -> Zone:
        what = "zone lookup"
        response = self._send(
            "GET",
            f"{self._zone_lookup_url}/v1.0/zoneInformation",
            what,
            params={"user": self._username},
            authenticated=False,
        )
        status = response.status_code
        if status == 500 and _UNKNOWN_USER.search(_error_text(response)):
            # Autotask's answer for a user it does not know; waiting won't help. Any other
            # 500 (an outage, Thread Threshold Exceeded) is retried like any other 5xx.
            raise AutotaskError(ZONE_LOOKUP_FAILED, retryable=False, status=status)
        if not 200 <= status < 300:
            self._raise_for_status(response, what, authenticated=False)
        body = self._json_object(response, what, retryable=True)
        url = body.get("url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise AutotaskError(f"{what}: response has no zone url", retryable=True, status=status)
        api = url.rstrip("/")
        web = body.get("webUrl")
        if self._web_url_override:
            web = self._web_url_override
        elif not isinstance(web, str) or not web:
            web = derive_web_url(api)
        else:
            self._refuse_untrusted(what, "webUrl", web)  # it becomes the alerts' ticket links
        self._refuse_untrusted(what, "url", api)
        zone = Zone(api, web.rstrip("/"))
        logger.info("Autotask zone discovered: %s", zone.api_url)
        return zone

    def _refuse_untrusted(self, what: str, name: str, url: str) -> None:
        """A zone that names a host outside AUTOTASK_ALLOWED_HOSTS is refused, not retried:
        the same lookup would answer the same, and the credentials must not follow it."""
        problem = url_problem(url, self._allowed_hosts)
        if problem is not None:
            allowed = ", ".join(self._allowed_hosts) or "none"
            raise AutotaskError(
                f"{what}: refused the zone's {name}: {problem} (AUTOTASK_ALLOWED_HOSTS: {allowed}); "
                "no credentials were sent there",
                retryable=False,
            )

    # --------------------------------------------------------------- tickets

    def get_ticket(
        self, ticket_id: int, timeout: tuple[float, float] | None = None
    ) -> dict[str, Any] | None:
        """The ticket's fields, or None when Autotask has no such ticket.

        ``timeout``: (connect, read) for this call only, when the caller has less time left.
        """
        tid = int(ticket_id)
        what = f"get ticket {tid}"
        body = self._json_object(
            self._call("GET", f"/v1.0/Tickets/{tid}", what, timeout=timeout), what, retryable=True
        )
        item = body.get("item")
        if item is None:
            return None
        if not isinstance(item, dict):
            raise AutotaskError(f"{what}: unexpected response", retryable=True)
        return item

    def get_tickets_by_id(
        self, ticket_ids: Iterable[int], timeout: tuple[float, float] | None = None
    ) -> dict[int, dict[str, Any]]:
        """Several tickets in one call per 500 (``Tickets/query``, an ``in`` filter on id):
        the ones Autotask has, by id. Spares the tenant's hourly API budget in a burst."""
        ids = sorted({int(t) for t in ticket_ids})
        found: dict[int, dict[str, Any]] = {}
        for start in range(0, len(ids), TICKETS_PER_QUERY):
            part = ids[start:start + TICKETS_PER_QUERY]
            what = f"query {len(part)} tickets by id"
            query = {"filter": [{"op": "in", "field": "id", "value": part}]}
            body = self._json_object(
                self._call("POST", "/v1.0/Tickets/query", what, json=query, timeout=timeout),
                what, retryable=True,
            )
            items = body.get("items")
            if not isinstance(items, list):
                raise AutotaskError(f"{what}: unexpected response", retryable=True)
            for item in items:
                if isinstance(item, dict) and isinstance(item.get("id"), int):
                    found[item["id"]] = item
        return found

    def update_ticket(self, ticket_id: int, fields: Mapping[str, Any]) -> None:
        """Change only ``fields`` on the ticket.

        PATCH, never PUT: a PUT nulls every field it does not name, and a
        partial PUT would wipe the technician's data.
        """
        if any(str(name).lower() == "id" for name in fields):
            raise ValueError("fields must not contain 'id'; pass the ticket id separately")
        tid = int(ticket_id)
        body = {"id": tid, **fields}
        self._call("PATCH", "/v1.0/Tickets", f"update ticket {tid}", json=body)

    def add_note(
        self, ticket_id: int, title: str, description: str, note_type: int, publish: int
    ) -> int:
        """Create a ticket note and return its id.

        A malformed success answer is not retryable: the note probably exists,
        and a retry would post it twice.
        """
        tid = int(ticket_id)
        what = f"add note to ticket {tid}"
        payload = {
            "title": title,
            "description": description,
            "noteType": note_type,
            "publish": publish,
        }
        response = self._call("POST", f"/v1.0/Tickets/{tid}/Notes", what, json=payload)
        item_id = self._json_object(response, what, retryable=False).get("itemId")
        if isinstance(item_id, bool) or not isinstance(item_id, int):
            raise AutotaskError(f"{what}: response has no itemId", retryable=False)
        return item_id

    def query_page(
        self, entity: str, body: Mapping[str, Any], next_url: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of ``POST {entity}/query``: its items and the next page's URL (None: last).

        Each page is one call from the tenant's budget, so the caller decides
        when to ask for the next. ``next_url`` is Autotask's absolute
        ``nextPageUrl``; it is followed only to the zone's own host, since the
        request carries the API secret.
        """
        if not _ENTITY_NAME.match(entity):
            raise ValueError(f"invalid Autotask entity name: {entity!r}")
        what = f"query {entity}"
        if next_url is None:
            response = self._call("POST", f"/v1.0/{entity}/query", what, json=dict(body))
        else:
            response = self._send("POST", self._same_zone(next_url, what), what, json=dict(body))
            if not 200 <= response.status_code < 300:
                self._raise_for_status(response, what)
        answer = self._json_object(response, what, retryable=True)
        items = answer.get("items")
        details = answer.get("pageDetails")
        if not isinstance(items, list) or not isinstance(details, dict):
            raise AutotaskError(f"{what}: unexpected response", retryable=True)
        following = details.get("nextPageUrl")
        if following is not None and (not isinstance(following, str) or not following):
            raise AutotaskError(f"{what}: unexpected nextPageUrl", retryable=True)
        return [item for item in items if isinstance(item, dict)], following

    def _same_zone(self, url: str, what: str) -> str:
        """``url`` if it points at the zone's own scheme and host (compared case-insensitively)."""
        zone = urlsplit(self.zone().api_url)
        parts = urlsplit(url)
        if (parts.scheme.lower(), parts.netloc.lower()) != (zone.scheme.lower(), zone.netloc.lower()):
            raise AutotaskError(f"{what}: the next page is on another host; not followed",
                                retryable=False)
        return urlunsplit(parts)

    def ticket_url(self, ticket_id: int) -> str:
        """Link for people (alert links, notes); may trigger zone discovery."""
        return f"{self.zone().web_url}/Mvc/ServiceDesk/TicketDetail.mvc?ticketId={int(ticket_id)}"

    def threshold_usage(self) -> float:
        """Share of the tenant's hourly request budget already spent (1.0 = exhausted)."""
        what = "threshold information"
        body = self._json_object(
            self._call("GET", "/v1.0/ThresholdInformation", what), what, retryable=True
        )
        used = body.get("currentTimeframeRequestCount")
        limit = body.get("externalRequestThreshold")
        if not (_is_number(used) and _is_number(limit)) or float(limit) <= 0:
            raise AutotaskError(f"{what}: unexpected response", retryable=True)
        return float(used) / float(limit)

    # ---------------------------------------------- entities a template may name

    def get_company(self, company_id: int) -> dict[str, Any] | None:
        """The company (``GET Companies/{id}``), or None when Autotask has none with this id."""
        return self._get_item("Companies", company_id, "company")

    def get_contact(self, contact_id: int) -> dict[str, Any] | None:
        """The contact (``GET Contacts/{id}``), or None."""
        return self._get_item("Contacts", contact_id, "contact")

    def get_resource(self, resource_id: int) -> dict[str, Any] | None:
        """The resource, a technician (``GET Resources/{id}``), or None."""
        return self._get_item("Resources", resource_id, "resource")

    def _get_item(self, entity: str, item_id: int, noun: str) -> dict[str, Any] | None:
        iid = int(item_id)
        what = f"get {noun} {iid}"
        body = self._json_object(self._call("GET", f"/v1.0/{entity}/{iid}", what), what, retryable=True)
        item = body.get("item")
        if item is None:
            return None
        if not isinstance(item, dict):
            raise AutotaskError(f"{what}: unexpected response", retryable=True)
        return item

    # ------------------------------------------------------------- picklists

    def picklist(self, entity: str, field: str) -> dict[str, str]:
        """Picklist of ``entity.field`` as value -> label (inactive values included).

        Inactive values stay in because existing tickets can still carry them.
        Unknown or non-picklist fields give an empty mapping.
        """
        found = self._picklist_field(entity, field)
        return dict(found.labels) if found else {}

    def label_to_value(self, entity: str, field: str, label: str) -> int | None:
        """Numeric value for a picklist label; tenants rename labels, so match loosely.

        Matching is case-insensitive and ignores surrounding and repeated
        whitespace. An active value wins over an inactive one with the same label.
        """
        found = self._picklist_field(entity, field)
        if found is None:
            return None
        return found.by_label.get(fold(label))

    @property
    def integration_code_digest(self) -> str:
        """Names this integration's shared limits in Redis without revealing the code."""
        digest = self._code_digest
        if digest is None:  # hashed once: every Autotask request place is named by it
            digest = self._code_digest = secret_digest(self._integration_code)
        return digest

    def default_value(self, entity: str, field: str) -> int | None:
        """The tenant's default for a picklist field (e.g. a note's type), if it has one."""
        found = self._picklist_field(entity, field)
        return found.default if found else None

    def active_values(self, entity: str, field: str) -> list[tuple[int, str]]:
        """The field's active values as (value, label), first by the tenant's sortOrder."""
        found = self._picklist_field(entity, field)
        return list(found.active) if found else []

    def _picklist_field(self, entity: str, field: str) -> _PicklistField | None:
        entry = self._picklist_entry(entity)
        return entry.fields.get(field.casefold())

    def _picklist_entry(self, entity: str) -> _PicklistEntry:
        if not _ENTITY_NAME.match(entity):
            raise ValueError(f"invalid Autotask entity name: {entity!r}")
        key = entity.casefold()
        entry = self._picklists.get(key)
        if entry is not None and self._clock() < entry.expires:
            return entry
        with self._picklist_guard:
            lock = self._picklist_locks.setdefault(key, threading.Lock())
        # One lock per entity: concurrent misses for the same entity wait for a
        # single fetch instead of each spending an API call.
        with lock:
            entry = self._picklists.get(key)
            if entry is not None and self._clock() < entry.expires:
                return entry
            try:
                fresh = self._fetch_picklists(entity)
            except AutotaskError as exc:
                if entry is None or not exc.retryable:
                    raise
                # Picklists rarely change: during an outage, stale labels beat
                # failing every lookup. Try again a little later, not per call.
                logger.warning("Autotask %s picklists: refresh failed, using stale copy", entity)
                entry.expires = self._clock() + min(self.picklist_ttl, 60.0)
                return entry
            self._picklists[key] = fresh
            return fresh

    def _fetch_picklists(self, entity: str) -> _PicklistEntry:
        what = f"{entity} field information"
        response = self._call("GET", f"/v1.0/{entity}/entityInformation/fields", what)
        raw_fields = self._json_object(response, what, retryable=True).get("fields")
        if not isinstance(raw_fields, list):
            raise AutotaskError(f"{what}: unexpected response", retryable=True)
        fields: dict[str, _PicklistField] = {}
        for raw in raw_fields:
            if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
                continue
            values = raw.get("picklistValues")
            if not isinstance(values, list) or not values:
                continue
            fields[raw["name"].casefold()] = _build_field(values)
        return _PicklistEntry(self._clock() + self.picklist_ttl, fields)

    # ------------------------------------------- webhooks (TicketWebhooks, the install command)

    def create_ticket_webhook(self, fields: Mapping[str, Any]) -> int:
        """Create a TicketWebhook (``webhookUrl``, ``secretKey``, subscriptions...); its id."""
        what = "create ticket webhook"
        response = self._call("POST", "/v1.0/TicketWebhooks", what, json=dict(fields))
        return self._item_id(response, what)

    def add_ticket_webhook_field(
        self, webhook_id: int, field_id: int, *, subscribed: bool, always: bool
    ) -> int:
        """Subscribe a webhook to a ticket field (``subscribed``), or send it along (``always``)."""
        wid = int(webhook_id)
        what = f"add field to ticket webhook {wid}"
        body = {"webhookID": wid, "fieldID": int(field_id), "isSubscribedField": subscribed,
                "isDisplayAlwaysField": always}
        response = self._call("POST", f"/v1.0/TicketWebhooks/{wid}/Fields", what, json=body)
        return self._item_id(response, what)

    def exclude_webhook_resource(self, webhook_id: int, resource_id: int) -> int:
        """Changes made by this resource (an API user) no longer trigger the webhook."""
        wid = int(webhook_id)
        what = f"exclude resource from ticket webhook {wid}"
        body = {"webhookID": wid, "resourceID": int(resource_id)}
        response = self._call("POST", f"/v1.0/TicketWebhooks/{wid}/ExcludedResources", what, json=body)
        return self._item_id(response, what)

    def delete_ticket_webhook(self, webhook_id: int) -> None:
        wid = int(webhook_id)
        self._call("DELETE", f"/v1.0/TicketWebhooks/{wid}", f"delete ticket webhook {wid}")

    def ticket_webhooks(self, url: str) -> list[dict[str, Any]]:
        """The TicketWebhooks that deliver to ``url``."""
        return self._query_one_page("TicketWebhooks", "webhookUrl", url)

    def own_resource_id(self) -> int | None:
        """The resource id of this client's API user (whose changes a webhook should not report)."""
        items = self._query_one_page("Resources", "userName", self._username)
        ids = [item.get("id") for item in items]
        found = [i for i in ids if isinstance(i, int) and not isinstance(i, bool)]
        return found[0] if len(found) == 1 else None

    def _query_one_page(self, entity: str, field: str, value: str) -> list[dict[str, Any]]:
        """The records of ``entity`` whose ``field`` equals ``value``: one query call, one page."""
        what = f"query {entity}"
        body = {"filter": [{"op": "eq", "field": field, "value": value}], "MaxRecords": 500}
        response = self._call("POST", f"/v1.0/{entity}/query", what, json=body)
        items = self._json_object(response, what, retryable=True).get("items")
        if not isinstance(items, list):
            raise AutotaskError(f"{what}: unexpected response", retryable=True)
        return [item for item in items if isinstance(item, dict)]

    def _item_id(self, response: requests.Response, what: str) -> int:
        item_id = self._json_object(response, what, retryable=False).get("itemId")
        if isinstance(item_id, bool) or not isinstance(item_id, int):
            raise AutotaskError(f"{what}: response has no itemId", retryable=False)
        return item_id

    # ------------------------------------------------------------- transport

    def _headers(self) -> dict[str, str]:
        headers = {
            "ApiIntegrationCode": self._integration_code,
            "UserName": self._username,
            "Secret": self._secret,
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        if self._impersonation_resource_id is not None:
            headers["ImpersonationResourceId"] = str(self._impersonation_resource_id)
        return headers

    def _call(
        self, method: str, path: str, what: str, json: Any = None,
        timeout: tuple[float, float] | None = None,
    ) -> requests.Response:
        """One authenticated request against the zone, with the 401 zone-move dance.

        A 401 can mean the tenant moved to another zone: rediscover once and
        repeat once. A second 401 is a credential problem no retry will fix.
        """
        zone = self._trusted_zone(what)
        response = self._send(method, zone.api_url + path, what, json=json, timeout=timeout)
        if response.status_code == 401 and self._forget_zone(zone):
            logger.info("Autotask answered 401; rediscovering the zone once")
            zone = self._trusted_zone(what)
            response = self._send(method, zone.api_url + path, what, json=json, timeout=timeout)
        if not 200 <= response.status_code < 300:
            self._raise_for_status(response, what)
        return response

    def _trusted_zone(self, what: str) -> Zone:
        """The zone, once more checked against AUTOTASK_ALLOWED_HOSTS right before the
        credentials go out, whichever way its URL was set."""
        zone = self.zone()
        if zone.api_url != self._trusted_api:
            self._refuse_untrusted(what, "API url", zone.api_url)
            self._trusted_api = zone.api_url
        return zone

    def _send(
        self,
        method: str,
        url: str,
        what: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        authenticated: bool = True,
        timeout: tuple[float, float] | None = None,
    ) -> requests.Response:
        """Exactly one HTTP request; transport failures become AutotaskError.

        Redirects are not followed: requests keeps custom headers (our
        ``Secret``) when following a redirect to another host.
        """
        with self._calls_lock:
            self._calls += 1
        status: int | None = None
        try:
            response = self.session.request(
                method,
                url,
                params=params,
                json=json,
                headers=self._headers() if authenticated else {"Accept": "application/json"},
                timeout=timeout or self.timeout,
                allow_redirects=False,
            )
            status = response.status_code
            return response
        except TRANSIENT_ERRORS as exc:
            # ``from None``: requests' own message contains the URL, and the
            # zone lookup URL carries the username.
            raise AutotaskError(f"{what}: network: {type(exc).__name__}", retryable=True) from None
        except requests.exceptions.RequestException as exc:
            raise AutotaskError(
                f"{what}: request failed: {type(exc).__name__}", retryable=False
            ) from None
        finally:
            if self._observer is not None:
                self._observer(method, url, status)

    def _raise_for_status(
        self, response: requests.Response, what: str, *, authenticated: bool = True
    ) -> NoReturn:
        status = response.status_code
        if status == 401 and authenticated:
            raise AutotaskError(UNAUTHORIZED_MESSAGE, retryable=False, status=status)
        detail = _error_text(response)
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if status >= 500 and "thread threshold exceeded" in detail.casefold():
            # More than 3 concurrent requests per integration code and endpoint:
            # purely a matter of timing.
            message = f"{what}: thread threshold exceeded (http {status})"
            raise AutotaskError(message, retryable=True, status=status, retry_after=retry_after)
        retryable = status >= 500 or status in (408, 429)
        message = f"{what}: http {status}"
        if detail:
            message = f"{message}: {scrub(detail, self._secrets)}"
        raise AutotaskError(
            scrub(message, self._secrets, limit=300),
            retryable=retryable,
            status=status,
            retry_after=retry_after if retryable else None,
        )

    def _json_object(
        self, response: requests.Response, what: str, retryable: bool
    ) -> dict[str, Any]:
        """Decode a success body; garbage from a 2xx usually comes from a proxy in the way."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise AutotaskError(
                f"{what}: unexpected response (http {response.status_code})",
                retryable=retryable,
                status=response.status_code,
            )
        return body


def _error_text(response: requests.Response) -> str:
    """Autotask's ``errors`` list as one line; raw text when the body is not JSON."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return "" if text.startswith("<") else text  # skip HTML error pages
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list):
            return "; ".join(str(e) for e in errors if e)
        if isinstance(errors, str):
            return errors
        message = body.get("message") or body.get("Message")
        if isinstance(message, str):
            return message
    return ""


def _build_field(values: list[Any]) -> _PicklistField:
    labels: dict[str, str] = {}
    active: dict[str, int] = {}
    inactive: dict[str, int] = {}
    default: int | None = None
    ordered: list[tuple[float, int, int, str]] = []
    for position, item in enumerate(values):
        if not isinstance(item, dict):
            continue
        value, label = item.get("value"), item.get("label")
        if value is None or not isinstance(label, str):
            continue
        labels[str(value)] = label
        try:
            number = int(str(value).strip())
        except ValueError:
            continue
        target = inactive if item.get("isActive") is False else active
        target.setdefault(fold(label), number)
        if item.get("isActive") is not False:
            order = item.get("sortOrder")
            ordered.append((float(order) if _is_number(order) else float("inf"), position,
                            number, label))
            if item.get("isDefaultValue") is True:
                default = number if default is None else default
    by_order = tuple((number, label) for _, _, number, label in sorted(ordered))
    return _PicklistField(labels, {**inactive, **active}, default, by_order)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
