"""The Autotask company, contact and resource a template names, read once an hour, not per alert.

Every Autotask call is taken from the tenant's hourly budget, shared with all of
its other integrations. A template that shows the company's name would cost one
call per alert; cached in Redis (shared by every worker) for
``ENTITY_CACHE_SECONDS`` it costs about one call per company an hour. A missing
entity is cached too, so a ticket without a contact costs nothing either.

A failed read never holds a page: the alert goes out without that entity.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, suppress
from typing import Any

from .autotask import AutotaskClient, AutotaskError
from .errors import StoreUnavailable
from .http import secret_digest
from .store import Store

logger = logging.getLogger("flask_autotask_ilert")

#: Context name -> (Autotask entity, the ticket field holding its id).
ENTITIES: Mapping[str, tuple[str, str]] = {
    "company": ("Companies", "companyID"),
    "contact": ("Contacts", "contactID"),
    "resource": ("Resources", "assignedResourceID"),
}


#: How long a thread waits (seconds) for another thread of this process reading the same entity
#: before it reads it itself (the default read timeout and its connect timeout fit in it).
READ_WAIT_SECONDS = 15.0


class _Flight:
    """One read of an entity in progress, and what it found, for the threads waiting on it."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.ok = False
        self.value: dict[str, Any] | None = None


#: (tenant, entity, id) -> the read in progress: one at a time per entity in a process, so that
#: the tickets of one claim batch, sent side by side, cost one Autotask call per entity.
_reading: dict[tuple[str, str, int], _Flight] = {}
_reading_lock = threading.Lock()


def _reader(client: AutotaskClient, entity: str) -> Callable[[int], dict[str, Any] | None]:
    return {
        "Companies": client.get_company,
        "Contacts": client.get_contact,
        "Resources": client.get_resource,
    }[entity]


class EntityReader:
    """Reads the entities of one ticket through the Redis cache.

    ``place`` holds one of Autotask's few request places for an endpoint while
    a read is out (the worker's semaphore).
    """

    def __init__(
        self,
        client: AutotaskClient,
        store: Store,
        ttl_ms: int,
        place: Callable[[str], AbstractContextManager[None]],
        tenant: str,
    ) -> None:
        self.client = client
        self.store = store
        self.ttl_ms = ttl_ms
        self.place = place
        # The API user names the tenant: two sources of one tenant share the cache.
        self.tenant = secret_digest(tenant)

    def read(self, names: Iterable[str], ticket: Mapping[str, Any]) -> dict[str, Any]:
        """Context name -> the entity's fields (None when the ticket has none or it failed)."""
        return {name: self.one(name, ticket.get(ENTITIES[name][1])) for name in sorted(names)
                if name in ENTITIES}

    def one(self, name: str, item_id: Any) -> dict[str, Any] | None:
        entity = ENTITIES[name][0]
        if isinstance(item_id, bool) or not isinstance(item_id, int) or item_id < 0:  # 0: the tenant's own
            return None
        found, value = self._cached(entity, item_id)
        if found:
            return value if isinstance(value, dict) else None
        key = (self.tenant, entity, item_id)
        with _reading_lock:
            flight = _reading.get(key)
            leader = flight is None
            if flight is None:
                flight = _reading[key] = _Flight()
        if not leader:
            if flight.done.wait(READ_WAIT_SECONDS) and flight.ok:
                return flight.value
            return self._read(entity, item_id)  # that read hangs or was put off: read it here
        try:
            flight.value = self._read(entity, item_id)
            flight.ok = True
            return flight.value
        finally:
            with _reading_lock:
                _reading.pop(key, None)
            flight.done.set()

    def _cached(self, entity: str, item_id: int) -> tuple[bool, Any]:
        try:
            return self.store.cached_entity(self.tenant, entity, item_id, self.ttl_ms)
        except StoreUnavailable:
            return False, None

    def _read(self, entity: str, item_id: int) -> dict[str, Any] | None:
        try:
            with self.place(entity):
                value = _reader(self.client, entity)(item_id)
        except AutotaskError as exc:
            logger.warning("Autotask %s %s: read failed (%s); the alert goes out without it",
                           entity, item_id, exc)
            return None
        with suppress(StoreUnavailable):  # then it is read again next time
            self.store.cache_entity(self.tenant, entity, item_id, value, self.ttl_ms)
        return value
