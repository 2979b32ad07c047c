"""A simulated ilert and Autotask tenant on real sockets, for the alert text and routing tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flask import Flask

from flask_autotask_ilert.testing.autotask_sim import (
    DEFAULT_CODE,
    DEFAULT_SECRET,
    DEFAULT_USER,
    AutotaskState,
    create_autotask_simulator,
)
from flask_autotask_ilert.testing.ilert_sim import IlertState, create_ilert_simulator
from flask_autotask_ilert.testing.servers import ServerThread

from .conftest import INTEGRATION_KEY, TOKEN

KEY_A = "il1api-route-a-key-0123456789"
KEY_B = "il1api-route-b-key-9876543210"
CALLOUT = f"/autotask-ilert/callout/{TOKEN}"
FORM = "application/x-www-form-urlencoded"


@dataclass
class Tenant:
    ilert: IlertState
    autotask: AutotaskState
    ilert_url: str
    autotask_url: str

    def config(self, **more: Any) -> dict[str, Any]:
        """make_app's options for a source that reads tickets from this tenant and pages its ilert."""
        return {
            "ilert_api_url": self.ilert_url,
            "autotask_username": DEFAULT_USER,
            "autotask_secret": DEFAULT_SECRET,
            "autotask_integration_code": DEFAULT_CODE,
            "autotask_api_url": f"{self.autotask_url}/atservicesrest",
            "ilert_rate_limit": 0,
            **more,
        }

    def ticket(self, title: str = "Server DC01 unreachable", priority: str = "High",
               **extra: Any) -> int:
        """A new ticket (its callout is posted by the test, with ``callout``)."""
        ticket, _ = self.autotask.create_ticket(title, priority, extra=extra)
        return int(ticket["id"])

    def calls(self, path: str) -> int:
        return len(self.autotask.calls_matching("GET", path))


def callout(app: Flask, ticket: int, status: str = "New", when: str | None = None) -> int:
    fields = {"id": str(ticket), "status": status}
    if when:
        fields["last_activity_datetime"] = when
    data = urlencode(fields)
    response = app.test_client().post(CALLOUT, data=data, content_type=FORM)
    return int(response.status_code)


@contextmanager
def running_tenant() -> Iterator[Tenant]:
    """Both simulators served on 127.0.0.1 (each test module's ``tenant`` fixture)."""
    ilert = IlertState(integration_keys=[INTEGRATION_KEY, KEY_A, KEY_B])
    autotask = AutotaskState()
    with ServerThread(create_ilert_simulator(ilert)) as il, \
            ServerThread(create_autotask_simulator(autotask)) as at:
        yield Tenant(ilert, autotask, il.url, at.url)
