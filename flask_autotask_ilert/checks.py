"""``flask autotask-ilert check``: can this configuration actually page someone?

Each check makes at most a few cheap requests and changes nothing anyone sees:

- ilert: one ``RESOLVE`` event for an alert key that no alert has
  (``autotask-ilert-check-<random>``). ilert looks the integration key up
  first, so an unknown key is answered 404, and a known one
  ``NO_OPEN_ALERT_WITH_KEY``: nothing is created, accepted or resolved. It
  does count as one event against the key's rate limit (50 a minute).
- Autotask: the zone lookup (unless ``AUTOTASK_API_URL`` is set),
  ``ThresholdInformation`` (authenticated, so it proves the credentials, and
  tells how much of the hourly budget is spent), and the ticket field
  information (priority, queue and status picklists); for a bidirectional
  source also the ticket note picklists. Three or four calls of the budget.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .autotask import AutotaskError
from .errors import StoreUnavailable
from .ilert import Verdict
from .redis_url import MEMORY

if TYPE_CHECKING:
    from .bridge import Bridge
    from .config import SourceConfig

PASS, WARN, FAIL, SKIP = "PASS", "WARN", "FAIL", "SKIP"
#: The prefix of the alert key the ilert check resolves; never one of ours ("autotask-<id>").
CHECK_ALERT_KEY = "autotask-ilert-check-"


@dataclass(frozen=True)
class Result:
    status: str  # PASS, WARN, FAIL or SKIP
    what: str
    detail: str


def check_app(bridge: Bridge) -> Iterator[Result]:
    """The whole app: its configuration (valid, or init_app would have failed) and Redis."""
    settings = bridge.settings
    names = ", ".join(sorted(settings.sources))
    yield Result(PASS, "configuration", f"valid; {len(settings.sources)} alert source(s): {names}")
    if bridge.redis.kind == MEMORY:
        yield Result(WARN, "redis", "REDIS_URL is memory://: an in-process store, for a single "
                                    "process only (web and worker processes see different data)")
        return
    try:
        bridge.store.ping()
    except StoreUnavailable as exc:
        yield Result(FAIL, "redis", f"unreachable: {exc.reason}")
        return
    yield Result(PASS, "redis", "reachable")


def check_ilert(bridge: Bridge, source: SourceConfig) -> Result:
    """Is the integration key one ilert knows? Asked without touching any alert."""
    body = {
        "integrationKey": source.ilert_integration_key,
        "eventType": "RESOLVE",
        "alertKey": CHECK_ALERT_KEY + uuid.uuid4().hex,
        "summary": "flask-autotask-ilert check: resolves nothing",
    }
    result = bridge.ilert(source).send_event(body)
    where = source.ilert_api_url
    if result.verdict is Verdict.ALREADY_DONE:
        return Result(PASS, "ilert", f"{where} knows the integration key (a RESOLVE for an unused "
                                     "alert key was answered NO_OPEN_ALERT_WITH_KEY; nothing changed)")
    if result.verdict is Verdict.DELIVERED:
        return Result(PASS, "ilert", f"{where} accepted the integration key ({result.reason})")
    if result.status == 429:
        return Result(FAIL, "ilert", f"{where} rate-limited the check (429): the key's 50 events "
                                     "a minute are in use; try again in a minute")
    if result.status == 404:
        return Result(FAIL, "ilert", f"{where} does not know this integration key ({result.reason}): "
                                     "check ILERT_INTEGRATION_KEY and ILERT_API_URL")
    if result.verdict is Verdict.RETRY:
        return Result(FAIL, "ilert", f"{where} is unreachable or failing: {result.reason}")
    return Result(FAIL, "ilert", f"{where} refused the check: {result.reason}")


def check_autotask(bridge: Bridge, source: SourceConfig) -> Iterator[Result]:
    """Zone, credentials and budget, picklists; stops at the first failure (the rest would fail too)."""
    client = bridge.autotask(source)
    if client is None or source.autotask is None:
        yield Result(SKIP, "autotask", "no API user configured: alerts carry the callout's data only")
        return
    try:
        zone = client.zone()
    except AutotaskError as exc:
        yield Result(FAIL, "autotask zone", str(exc))
        return
    how = "configured" if source.autotask.api_url else "discovered for the API user"
    yield Result(PASS, "autotask zone", f"{zone.api_url} ({how})")

    try:
        usage = client.threshold_usage()
    except AutotaskError as exc:
        yield Result(FAIL, "autotask credentials", str(exc))
        return
    share = bridge.settings.autotask_threshold_share
    with_budget = f"accepted; {usage:.0%} of the tenant's hourly API budget is used"
    if usage >= share:
        yield Result(WARN, "autotask credentials",
                     f"{with_budget}, at or above AUTOTASK_THRESHOLD_SHARE ({share:.0%}): "
                     "ticket writes wait until it drops")
    else:
        yield Result(PASS, "autotask credentials", with_budget)
    with suppress(StoreUnavailable):  # the reading also feeds the usage metric
        bridge.store.cache_usage(client.integration_code_digest, usage,
                                 bridge.settings.autotask_threshold_check_ms)

    try:
        counts = {name: len(client.picklist("Tickets", field))
                  for name, field in (("priorities", "priority"), ("queues", "queueID"),
                                      ("statuses", "status"))}
    except AutotaskError as exc:
        yield Result(FAIL, "autotask picklists", str(exc))
        return
    text = ", ".join(f"{n} {name}" for name, n in counts.items())
    empty = [name for name, n in counts.items() if not n]
    note = f"; no {' or '.join(empty)}: alerts show numbers instead of labels" if empty else ""
    yield Result(WARN if empty else PASS, "autotask picklists", f"ticket picklists read: {text}{note}")

    sync = source.sync
    if sync is None:
        return
    if sync.ticket_updater is not None:
        yield Result(SKIP, "autotask sync", "ticket writes go to the configured TICKET_UPDATER")
        return
    problems = []
    try:
        for option, status in (("ACCEPT_STATUS", sync.accept_status),
                               ("RESOLVE_STATUS", sync.resolve_status)):
            if client.label_to_value("Tickets", "status", status) is None:
                problems.append(f"{option}: no ticket status labelled {status!r}")
        for option, field, label in (("NOTE_TYPE", "noteType", sync.note_type),
                                     ("NOTE_PUBLISH", "publish", sync.note_publish)):
            found = (client.label_to_value("TicketNotes", field, label) if label
                     else client.default_value("TicketNotes", field))
            if found is None:
                problems.append(f"{option}: no note {field} labelled {label!r}" if label
                                else f"{option}: the tenant has no default note {field}; set one")
    except AutotaskError as exc:
        yield Result(FAIL, "autotask sync", str(exc))
        return
    if problems:
        yield Result(FAIL, "autotask sync", "; ".join(problems))
    else:
        yield Result(PASS, "autotask sync",
                     f"statuses {sync.accept_status!r} and {sync.resolve_status!r} and the note "
                     "type and publish values exist")
