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
- Alert text (``check_content``): each template rendered with a sample ticket.
- Routing: every rule's labels against the tenant's ticket picklists (the
  same cached call), and every rule's key against ilert, as above.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .autotask import AutotaskError
from .content import PICKLIST_LABELS
from .errors import StoreUnavailable
from .ilert import Verdict
from .lifecycle import fold, written_label_problems
from .redis_url import MEMORY

if TYPE_CHECKING:
    from .bridge import Bridge
    from .config import SourceConfig

PASS, WARN, FAIL, SKIP = "PASS", "WARN", "FAIL", "SKIP"
#: The prefix of the alert key the ilert check resolves; never one of ours ("autotask-<id>").
CHECK_ALERT_KEY = "autotask-ilert-check-"


def summary(results: list[Result]) -> tuple[bool, str]:
    """Whether any check failed, and the closing line that says how many passed or failed."""
    counts = {status: sum(1 for r in results if r.status == status) for status in (PASS, WARN, SKIP, FAIL)}
    notes = ", ".join(f"{n} {word}" for n, word in ((counts[WARN], "warning(s)"),
                                                     (counts[SKIP], "skipped")) if n)
    tail = f"; {notes}" if notes else ""
    if counts[FAIL]:
        return True, f"FAIL: {counts[FAIL]} of {len(results)} checks failed{tail}"
    return False, f"PASS: {counts[PASS]} of {len(results)} checks passed{tail}"


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
    return check_ilert_key(bridge, source, source.ilert_integration_key)


def check_ilert_key(bridge: Bridge, source: SourceConfig, key: str, what: str = "ilert") -> Result:
    """Is ``key`` (the source's, or a routing rule's) one ilert knows? ``what`` names it, never the key."""
    body = {
        "integrationKey": key,
        "eventType": "RESOLVE",
        "alertKey": CHECK_ALERT_KEY + uuid.uuid4().hex,
        "summary": "flask-autotask-ilert check: resolves nothing",
    }
    result = bridge.ilert(source).send_event(body)
    where = source.ilert_api_url
    hint = "ILERT_INTEGRATION_KEY" if key == source.ilert_integration_key else "the rule's integration_key"
    if result.verdict is Verdict.ALREADY_DONE:
        return Result(PASS, what, f"{where} knows the integration key (a RESOLVE for an unused "
                                  "alert key was answered NO_OPEN_ALERT_WITH_KEY; nothing changed)")
    if result.verdict is Verdict.DELIVERED:
        return Result(PASS, what, f"{where} accepted the integration key ({result.reason})")
    if result.status == 429:
        return Result(FAIL, what, f"{where} rate-limited the check (429): the key's 50 events "
                                  "a minute are in use; try again in a minute")
    if result.status == 404:
        return Result(FAIL, what, f"{where} does not know this integration key ({result.reason}): "
                                  f"check {hint} and ILERT_API_URL")
    if result.verdict is Verdict.RETRY:
        return Result(FAIL, what, f"{where} is unreachable or failing: {result.reason}")
    return Result(FAIL, what, f"{where} refused the check: {result.reason}")


def check_autotask(bridge: Bridge, source: SourceConfig) -> Iterator[Result]:
    """Zone, credentials and budget, picklists; stops at the first failure (the rest would fail too)."""
    if source.sync is not None:
        problems = written_label_problems(
            source.classify, source.sync.accept_status, source.sync.resolve_status
        )
        if problems:  # init_app refuses these; a source changed after it is still checked
            yield Result(FAIL, "sync statuses", "; ".join(problems))
            return
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
    problems, warnings = [], []
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
                # Notes still go out (tickets.note_value falls back); someone should choose.
                choices = client.active_values("TicketNotes", field)
                used = next((name for value, name in choices
                             if value == client.default_value("TicketNotes", field)),
                            choices[0][1] if choices else None)
                what = (f"no note {field} labelled {label!r}" if label
                        else f"the tenant has no default note {field}")
                warnings.append(f"{option}: {what}; notes use {used!r}; choose one of: "
                                + ", ".join(repr(name) for _, name in choices))
    except AutotaskError as exc:
        yield Result(FAIL, "autotask sync", str(exc))
        return
    if problems:
        yield Result(FAIL, "autotask sync", "; ".join(problems + warnings))
    elif warnings:
        yield Result(WARN, "autotask sync", "; ".join(warnings))
    else:
        yield Result(PASS, "autotask sync",
                     f"statuses {sync.accept_status!r} and {sync.resolve_status!r} and the note "
                     "type and publish values exist")


#: A ticket as templates see it, for rendering each template once (``check``).
SAMPLE_TICKET = {
    "id": 7865, "ticketNumber": "T20191029.0002", "title": "Server DC01 unreachable",
    "description": "Ping to DC01 failed from the RMM agent at 14:12.", "status": "New",
    "priority": "Critical", "queueID": 29683354, "queue": "Monitoring Alert", "companyID": 0,
    "contactID": None, "assignedResourceID": None, "issueType": "Network",
    "subIssueType": "Server Down", "source": "Monitoring Alert", "ticketType": "Incident",
    "createDate": "2019-10-29T18:14:47.643Z", "lastActivityDate": "2019-10-30T19:06:38.583Z",
    "url": "https://ww5.autotask.net/Mvc/ServiceDesk/TicketDetail.mvc?ticketId=7865",
}


def sample_context(source: SourceConfig) -> dict[str, Any]:
    return {
        "ticket": dict(SAMPLE_TICKET),
        "company": {"id": 0, "companyName": "Example Customer Inc.", "phone": "+1 555 0100"},
        "contact": {"id": 30682817, "firstName": "Jane", "lastName": "Doe",
                    "emailAddress": "jane.doe@example.com"},
        "resource": {"id": 29682885, "firstName": "Sam", "lastName": "Tech",
                     "email": "sam.tech@example.com"},
        "callout": {"number": "T20191029.0002", "status": "New", "domain": "EXAMPLE.COM",
                    "last_activity": "2019-10-30T15:06:38.583000-04:00"},
        "source": source.name,
    }


def check_content(bridge: Bridge, source: SourceConfig) -> Iterator[Result]:
    """Custom alert text rendered with a sample ticket; each routing rule's labels and key."""
    sets = [("alert text", source.templates)]
    sets += [(f"alert text, {r.label}", r.templates) for r in source.routes
             if r.templates is not None and r.templates is not source.templates]
    for what, templates in sets:
        if templates is None:
            continue
        rendered = templates.render(sample_context(source))
        if rendered.failures:
            yield Result(FAIL, what, "; ".join(f"{w} template failed with a sample ticket: {why}"
                                               for w, why in rendered.failures))
        else:
            yield Result(PASS, what, f"renders with a sample ticket; summary: {rendered.summary!r}"
                         if rendered.summary is not None else "renders with a sample ticket")
    if not source.routes:
        return
    yield from _check_route_labels(bridge, source)
    checked = {source.ilert_integration_key}
    for route in source.routes:
        if route.integration_key not in checked:
            checked.add(route.integration_key)
            yield check_ilert_key(bridge, source, route.integration_key, f"ilert, {route.label}")


def _check_route_labels(bridge: Bridge, source: SourceConfig) -> Iterator[Result]:
    client = bridge.autotask(source)
    if client is None:
        yield Result(SKIP, "routing labels", "no API user configured: the rules' labels are not "
                                             "checked, and only rules without labels can match")
        return
    fields = {label: field for field, label in PICKLIST_LABELS.items()}
    problems: list[str] = []
    try:
        for route in source.routes:
            for name, wanted in route.match:
                if name not in fields:  # a company name: not a picklist
                    continue
                known = {fold(label) for label in client.picklist("Tickets", fields[name]).values()}
                unknown = sorted(wanted - known)
                if unknown:
                    problems.append(f"{route.label}: no ticket {name} labelled "
                                    + ", ".join(repr(u) for u in unknown))
    except AutotaskError as exc:
        yield Result(FAIL, "routing labels", str(exc))
        return
    if problems:
        yield Result(FAIL, "routing labels", "; ".join(problems))
    else:
        yield Result(PASS, "routing labels",
                     f"the labels of {len(source.routes)} rule(s) are in the tenant's picklists "
                     "(company names are not checked)")
