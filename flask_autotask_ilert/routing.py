"""Routing: which ilert integration key (and priority, and text) an alert goes to.

A source's ``ROUTES`` is a list of rules; the first whose labels (and hours)
match the ticket wins, and a ticket no rule matches goes to the source's own
key. Labels compare as status labels do (``lifecycle.fold``), because tenants
rename and re-case them. Hours are evaluated in the rule's time zone at the
callout's activity time, so a ticket raised at 17:59 Berlin time pages the
business-hours key even if the worker sends it at 18:01.

Keys are secrets: a rule is shown by its index (and name, if it has one), and
what a ticket's record keeps is the key's digest (``http.secret_digest``),
resolved back to a key from the configuration.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .http import secret_digest
from .lifecycle import Priority, fold
from .templates import AlertTemplates, TemplateProblem, build

#: What a rule may match on: the ticket's labels as the context names them (docs/routing.md).
MATCH_FIELDS = ("queue", "priority", "company", "issueType", "subIssueType", "ticketType", "source")
RULE_KEYS = ("name", "match", "hours", "integration_key", "priority", "summary_template",
             "details_template", "custom_details")
HOURS_KEYS = ("inside", "outside", "tz", "holidays")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: A holiday as the docs write it; Python 3.11 would also read 20261225, which 3.10 refuses.
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_SPAN = re.compile(
    r"^\s*(?P<days>[A-Za-z]{3}(?:\s*-\s*[A-Za-z]{3})?(?:\s*,\s*[A-Za-z]{3}(?:\s*-\s*[A-Za-z]{3})?)*)"
    r"\s+(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})\s*$"
)


@dataclass(frozen=True)
class Span:
    """Some weekdays (0 = Monday), from ``start`` to ``end`` (minutes after midnight; end excluded)."""

    days: frozenset[int]
    start: int
    end: int

    def covers(self, local: datetime) -> bool:
        minute = local.hour * 60 + local.minute
        return local.weekday() in self.days and self.start <= minute < self.end


@dataclass(frozen=True)
class Hours:
    """Business hours in one time zone; a holiday counts as outside them all day."""

    spans: tuple[Span, ...]
    zone: ZoneInfo
    holidays: frozenset[date]
    inside: bool  # the rule wants the time inside these hours (True) or outside (False)

    def within(self, when: datetime) -> bool:
        """Is ``when`` (aware) inside business hours?"""
        local = when.astimezone(self.zone)
        if local.date() in self.holidays:
            return False
        return any(span.covers(local) for span in self.spans)

    def matches(self, when: datetime) -> bool:
        return self.within(when) is self.inside


@dataclass(frozen=True)
class Route:
    """One rule of ``ROUTES``, checked and ready to match."""

    index: int
    name: str | None
    match: tuple[tuple[str, frozenset[str]], ...]
    hours: Hours | None
    integration_key: str = field(repr=False)
    priority: Priority | None = None
    templates: AlertTemplates | None = None

    @property
    def label(self) -> str:
        """How logs, metrics and the CLI name the rule (never by its key)."""
        return f"rule {self.index}" + (f" ({self.name})" if self.name else "")

    @property
    def digest(self) -> str:
        return secret_digest(self.integration_key)

    def matches(self, labels: Mapping[str, str | None], when: datetime) -> bool:
        for name, wanted in self.match:
            label = labels.get(name)
            if label is None or fold(label) not in wanted:
                return False
        return self.hours is None or self.hours.matches(when)


def choose(routes: Sequence[Route], labels: Mapping[str, str | None], when: datetime) -> Route | None:
    """The first rule the ticket meets, or None (the source's own key)."""
    return next((route for route in routes if route.matches(labels, when)), None)


def needs_company(routes: Sequence[Route]) -> bool:
    """Matching on the company name costs a read of the company, so only rules that do pay it."""
    return any(name == "company" for route in routes for name, _ in route.match)


def key_for_digest(own_key: str, routes: Sequence[Route], digest: str | None) -> str | None:
    """The configured key with this digest (the source's or a rule's); None if none has it now."""
    if not digest:
        return own_key
    for key in (own_key, *(route.integration_key for route in routes)):
        if secret_digest(key) == digest:
            return key
    return None


# -- reading the configuration ------------------------------------------------------------


def parse_hours(raw: Any) -> Hours:
    """``{"outside" | "inside": "Mon-Fri 08:00-18:00; Sat 09:00-12:00", "tz": ..., "holidays": [...]}``."""
    if not isinstance(raw, Mapping):
        raise ValueError("hours must be a mapping")
    unknown = sorted(set(raw) - set(HOURS_KEYS))
    if unknown:
        raise ValueError(f"hours has unknown key(s) {', '.join(unknown)}")
    if ("inside" in raw) == ("outside" in raw):
        raise ValueError("hours needs exactly one of 'inside' and 'outside'")
    inside = "inside" in raw
    text = raw["inside" if inside else "outside"]
    if not isinstance(text, str) or not text.strip():
        raise ValueError("hours: give spans such as 'Mon-Fri 08:00-18:00'")
    spans = tuple(_span(part) for part in text.split(";") if part.strip())
    tz = raw.get("tz", "UTC")
    try:
        zone = ZoneInfo(str(tz))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"hours: unknown time zone {tz!r} (use an IANA name such as "
                         "'Europe/Berlin')") from None
    holidays = raw.get("holidays", [])
    if not isinstance(holidays, list):
        raise ValueError("hours: holidays must be a list of dates (YYYY-MM-DD)")
    if not all(_DATE.fullmatch(str(day)) for day in holidays):
        raise ValueError("hours: holidays must be dates written YYYY-MM-DD")
    try:
        days = frozenset(date.fromisoformat(str(day)) for day in holidays)
    except ValueError:
        raise ValueError("hours: holidays must be dates written YYYY-MM-DD") from None
    return Hours(spans, zone, days, inside)


def _span(text: str) -> Span:
    found = _SPAN.match(text)
    if found is None:
        raise ValueError(f"hours: {text.strip()!r} is not like 'Mon-Fri 08:00-18:00'")
    days: set[int] = set()
    for part in found["days"].split(","):
        first, _, last = (p.strip().lower() for p in part.partition("-"))
        if first not in DAYS or (last and last not in DAYS):
            raise ValueError(f"hours: {part.strip()!r}: days are Mon, Tue, Wed, Thu, Fri, Sat, Sun")
        start, end = DAYS.index(first), DAYS.index(last or first)
        days.update(range(start, end + 1) if start <= end else [*range(start, 7), *range(end + 1)])
    begin, finish = _minutes(found["start"]), _minutes(found["end"])
    if not begin < finish:
        raise ValueError(f"hours: {text.strip()!r} ends before it starts (split a span that "
                         "passes midnight in two)")
    return Span(frozenset(days), begin, finish)


def _minutes(text: str) -> int:
    hours, minutes = (int(p) for p in text.split(":"))
    if text == "24:00":
        return 24 * 60
    if hours > 23 or minutes > 59:
        raise ValueError(f"hours: {text!r} is not a time of day")
    return hours * 60 + minutes


def _labels(name: str, value: Any) -> frozenset[str]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(
        isinstance(v, str) and v.strip() for v in values
    ):
        raise ValueError(f"match.{name} must be a label or a non-empty list of labels")
    return frozenset(fold(v) for v in values)


def parse_rule(index: int, raw: Any, base_text: Mapping[str, Any] | None = None) -> Route:
    """One rule; ``base_text`` holds the source's own templates, which a rule's own replace."""
    if not isinstance(raw, Mapping):
        raise ValueError("must be a mapping")
    unknown = sorted(set(raw) - set(RULE_KEYS))
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(map(str, unknown))}; a rule may have "
                         + ", ".join(RULE_KEYS))
    key = raw.get("integration_key")
    if not isinstance(key, str) or not key.strip():
        raise ValueError("needs an integration_key")
    name = raw.get("name")
    if name is not None and not isinstance(name, str):
        raise ValueError("name must be text")
    match = raw.get("match", {})
    if not isinstance(match, Mapping):
        raise ValueError("match must be a mapping of labels")
    bad = sorted(set(match) - set(MATCH_FIELDS))
    if bad:
        raise ValueError(f"match has unknown field(s) {', '.join(map(str, bad))}; it may use "
                         + ", ".join(MATCH_FIELDS))
    hours = parse_hours(raw["hours"]) if "hours" in raw else None
    priority = None
    if raw.get("priority") is not None:
        try:
            priority = Priority(str(raw["priority"]).strip().upper())
        except ValueError:
            raise ValueError("priority must be 'HIGH' or 'LOW'") from None
    base = base_text or {}
    try:
        templates = build(
            raw.get("summary_template") or base.get("summary_template"),
            raw.get("details_template") or base.get("details_template"),
            {**(base.get("custom_details") or {}), **(raw.get("custom_details") or {})},
        )
    except TemplateProblem as exc:
        raise ValueError(str(exc)) from None
    return Route(
        index=index,
        name=name,
        match=tuple((n, _labels(n, v)) for n, v in match.items()),
        hours=hours,
        integration_key=key.strip(),
        priority=priority,
        templates=templates,
    )


def parse_routes(raw: Any, base_text: Mapping[str, Any] | None = None) -> tuple[Route, ...]:
    """Every rule of ``ROUTES``; ValueError naming the rule's index for the first bad one."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ValueError("must be a list of rules")
    routes = []
    for index, rule in enumerate(raw):
        try:
            routes.append(parse_rule(index, rule, base_text))
        except ValueError as exc:
            raise ValueError(f"rule {index}: {exc}") from None
    return tuple(routes)


@dataclass(frozen=True)
class Rules:
    """A constraint of ``config.OPTIONS``: a list of routing rules, each well formed."""

    def check(self, value: Any) -> str | None:
        try:
            parse_routes(value)
        except ValueError as exc:
            return str(exc)
        return None

    def describe(self) -> str:
        return "a list of rules: `match`, `hours`, `integration_key`, `priority`, templates"
