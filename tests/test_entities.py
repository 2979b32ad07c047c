"""The entity cache's reads: one Autotask call per entity, even for tickets sent side by side."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask_autotask_ilert.autotask import AutotaskError
from flask_autotask_ilert.entities import EntityReader


class DictStore:
    """The two cache methods of the Store, over a dict; says when a thread has looked."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str, int], Any] = {}
        self.looked = threading.Event()

    def cached_entity(self, tenant: str, entity: str, item_id: int, max_age_ms: int) -> tuple[bool, Any]:
        found = (tenant, entity, item_id) in self.items
        if threading.current_thread().name == "second":
            self.looked.set()
        return found, self.items.get((tenant, entity, item_id))

    def cache_entity(self, tenant: str, entity: str, item_id: int, value: Any, max_age_ms: int) -> None:
        self.items[(tenant, entity, item_id)] = value


class SlowContacts:
    """get_contact blocks until released; counts the calls."""

    def __init__(self, error: AutotaskError | None = None) -> None:
        self.calls = 0
        self.entered = threading.Event()
        self.release = threading.Event()
        self.twice = threading.Event()
        self.error = error

    def get_contact(self, item_id: int) -> dict[str, Any] | None:
        self.calls += 1
        if self.calls == 2:
            self.twice.set()
        self.entered.set()
        self.release.wait(10)
        if self.error is not None:
            raise self.error
        return {"id": item_id, "lastName": "Meyer"}

    def get_company(self, item_id: int) -> dict[str, Any] | None:
        raise AssertionError("only the contact is read")

    get_resource = get_company


@contextmanager
def no_place(endpoint: str) -> Iterator[None]:
    yield


def read_side_by_side(client: SlowContacts, store: DictStore) -> list[Any]:
    reader = EntityReader(client, store, 3_600_000, no_place, "api@example.com")  # type: ignore[arg-type]
    found: list[Any] = []

    def read() -> None:
        found.append(reader.one("contact", 424242))

    first = threading.Thread(target=read, name="first")
    first.start()
    assert client.entered.wait(10)  # the first is reading Contacts/424242 from Autotask
    second = threading.Thread(target=read, name="second")
    second.start()
    assert store.looked.wait(10)  # the second found nothing cached yet
    assert not client.twice.wait(0.5)  # and did not ask Autotask again: it waits for the first
    client.release.set()
    first.join(10)
    second.join(10)
    return found


def test_two_tickets_with_one_contact_read_it_once() -> None:
    client, store = SlowContacts(), DictStore()
    found = read_side_by_side(client, store)
    assert client.calls == 1
    assert found == [{"id": 424242, "lastName": "Meyer"}, {"id": 424242, "lastName": "Meyer"}]
    assert [(key[1:], value) for key, value in store.items.items()] == [
        (("Contacts", 424242), {"id": 424242, "lastName": "Meyer"})]


def test_a_failed_read_is_shared_too_and_both_alerts_go_without_it() -> None:
    client = SlowContacts(AutotaskError("GET Contacts/424242 failed: HTTP 503", retryable=True, status=503))
    store = DictStore()
    assert read_side_by_side(client, store) == [None, None]
    assert client.calls == 1  # not one failing read after another, each adding to time to page
    assert store.items == {}  # nothing cached: the next alert tries again
