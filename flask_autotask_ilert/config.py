"""Every configuration key, in one place, and the validated settings built from them.

Keys are ``AUTOTASK_ILERT_<NAME>`` in ``app.config``; the same names, lower
case, are accepted by the ``AutotaskIlert(...)`` constructor (which wins over
``app.config``) and inside each entry of ``AUTOTASK_ILERT_SOURCES``. An option
marked per-source may be set flat (it then applies to the ``default`` source
and is inherited by every other source) or inside a source's entry.

docs/configuration.md documents this table one to one.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigurationError
from .lifecycle import (
    DEFAULT_PRIORITY_MAP,
    DEFAULT_STATUS_LABELS,
    Priority,
    PriorityMap,
    StatusClass,
    StatusClassifier,
)

PREFIX = "AUTOTASK_ILERT_"
DEFAULT_SOURCE = "default"
MIN_TOKEN_LENGTH = 16
_SOURCE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True)
class Option:
    name: str
    default: Any
    kind: type | str  # bool, int, float, str, "json", "tokens"
    doc: str
    per_source: bool = False
    secret: bool = False

    @property
    def key(self) -> str:
        return PREFIX + self.name


OPTIONS: tuple[Option, ...] = (
    # -- the app as a whole --------------------------------------------------------
    Option("URL_PREFIX", "/autotask-ilert", str, "Where the blueprint is mounted."),
    Option("REDIS_URL", None, str,
           "Redis URL. Unset: an in-process store (fakeredis), for a single process only."),
    Option("REDIS_PREFIX", "autotask-ilert:", str, "Prefix of every Redis key the bridge writes."),
    Option("EMBEDDED_WORKER", False, bool,
           "Deliver from a background thread of each web process instead of a separate worker."),
    Option("MAX_BODY_BYTES", 65536, int, "Largest inbound body accepted; larger ones get 413."),
    Option("RESOLVED_RETENTION_DAYS", 30.0, float,
           "How long a RESOLVED mapping is kept so late or echoed callouts stay no-ops."),
    Option("RETRY_AFTER_SECONDS", 5, int, "Retry-After sent with a 503 when Redis is unreachable."),
    Option("AUDIT_ENTRIES", 10, int,
           "Records kept in each ticket's audit trail (callouts, webhooks, deliveries); 0 = none."),
    Option("AUDIT_REJECT_HOURS", 24.0, float,
           "How long the audit trail of a rejected ticket (one that has no alert) is kept."),
    Option("SOURCES", None, "json",
           "Alert sources by name: a mapping of name -> per-source options (lower-case names)."),
    Option("SOURCES_FILE", None, str,
           "A JSON or TOML file holding the SOURCES mapping (read at init_app)."),
    Option("WORKER_THREADS", 4, int, "Delivery threads per worker process."),
    Option("WORKER_LEASE_SECONDS", 60.0, float,
           "How long a worker owns a ticket's queue before another may take it over."),
    Option("WORKER_POLL_SECONDS", 0.2, float, "How often an idle worker looks for due work."),
    Option("RETRY_BASE_SECONDS", 1.0, float, "First retry delay (jittered, doubling)."),
    Option("RETRY_CAP_SECONDS", 300.0, float, "Longest retry delay, also the cap on Retry-After."),
    Option("ENRICH_ATTEMPTS", 3, int,
           "Tries to read a ticket from Autotask before an alert goes out with the callout's data."),
    Option("HTTP_CONNECT_TIMEOUT", 3.05, float, "Connect timeout of outbound requests (seconds)."),
    Option("HTTP_READ_TIMEOUT", 10.0, float, "Read timeout of outbound requests (seconds)."),
    Option("AUTOTASK_ZONE_LOOKUP_URL", "https://webservices.autotask.net/atservicesrest", str,
           "Where the Autotask zone of the API user is discovered."),
    Option("AUTOTASK_CONCURRENCY", 3, int,
           "Autotask requests in flight at once per integration code and endpoint, across all "
           "workers (Autotask refuses more with 'Thread Threshold Exceeded')."),
    Option("AUTOTASK_THRESHOLD_SHARE", 0.8, float,
           "Ticket writes wait while the tenant has used more than this share of its hourly "
           "API budget."),
    Option("AUTOTASK_THRESHOLD_CHECK_SECONDS", 300.0, float,
           "How long one reading of the tenant's API usage is trusted (shared by all workers)."),
    # -- per alert source --------------------------------------------------------------
    Option("CALLOUT_TOKEN", None, "tokens",
           "Secret path token of the callout URL (at least 16 characters). A list is "
           "accepted for rotation.", per_source=True, secret=True),
    Option("CALLOUT_USERNAME", None, str,
           "If set, callouts must also carry HTTP Basic credentials.", per_source=True),
    Option("CALLOUT_PASSWORD", None, str, "Password for CALLOUT_USERNAME.",
           per_source=True, secret=True),
    Option("ILERT_API_URL", "https://api.ilert.com", str, "ilert's API base URL.",
           per_source=True),
    Option("ILERT_INTEGRATION_KEY", None, str, "Integration key of the ilert API alert source.",
           per_source=True, secret=True),
    Option("ILERT_RATE_LIMIT", 50, int,
           "Events per window per integration key the worker sends at most; 0 turns pacing off.",
           per_source=True),
    Option("ILERT_RATE_WINDOW_SECONDS", 60.0, float, "The window of ILERT_RATE_LIMIT.",
           per_source=True),
    Option("AUTOTASK_USERNAME", None, str, "Autotask API user (an API-only resource).",
           per_source=True),
    Option("AUTOTASK_SECRET", None, str, "The API user's secret.", per_source=True, secret=True),
    Option("AUTOTASK_INTEGRATION_CODE", None, str, "The API tracking identifier.",
           per_source=True, secret=True),
    Option("AUTOTASK_API_URL", None, str,
           "Zone base URL, e.g. https://webservices5.autotask.net/atservicesrest. "
           "Unset: discovered through zoneInformation.", per_source=True),
    Option("AUTOTASK_WEB_URL", None, str,
           "Base of ticket links for people; unset: from the zone.", per_source=True),
    Option("STATUS_LABELS", None, "json",
           "Status labels per class (NEW, IN_PROGRESS, CLOSED, WAITING); a class given "
           "replaces its default labels.", per_source=True),
    Option("PRIORITY_MAP", None, "json",
           'Autotask priority label -> "HIGH" or "LOW"; unlisted labels page HIGH. '
           'Default {"Low": "LOW"}.', per_source=True),
    Option("REALERT_ON_REOPEN", False, bool,
           "A RESOLVED ticket that comes back open creates a new alert.", per_source=True),
    # -- ilert -> Autotask (bidirectional sync), per alert source --------------------------
    Option("BIDIRECTIONAL", False, bool,
           "Alert status changes in ilert (accepted, resolved) are written back to the ticket.",
           per_source=True),
    Option("WEBHOOK_TOKEN", None, "tokens",
           "Secret path token of the ilert webhook URL ({prefix}/ilert/<token>); a list is "
           "accepted for rotation.", per_source=True, secret=True),
    Option("WEBHOOK_HEADER_NAME", None, str,
           "A static header ilert sends with the webhook (its custom headers option).",
           per_source=True),
    Option("WEBHOOK_HEADER_VALUE", None, str, "The value of WEBHOOK_HEADER_NAME.",
           per_source=True, secret=True),
    Option("WEBHOOK_USERNAME", None, str, "If set, webhooks must carry these Basic credentials.",
           per_source=True),
    Option("WEBHOOK_PASSWORD", None, str, "Password for WEBHOOK_USERNAME.",
           per_source=True, secret=True),
    Option("ACCEPT_STATUS", "In Progress", str,
           "Status label a NEW ticket is set to when its alert is accepted in ilert.",
           per_source=True),
    Option("RESOLVE_STATUS", "Complete", str,
           "Status label a ticket is set to when its alert is resolved in ilert.", per_source=True),
    Option("NOTE_TITLE", "ilert", str, "Title of the ticket notes the bridge writes.",
           per_source=True),
    Option("ACCEPT_NOTE", "Alert {alert_id} accepted in ilert by {who} at {when}.", str,
           "Text of the note for an accept; fields {who} {when} {alert_id} {alert_url}.",
           per_source=True),
    Option("RESOLVE_NOTE", "Alert {alert_id} resolved in ilert by {who} at {when}.", str,
           "Text of the note for a resolve; same fields as ACCEPT_NOTE.", per_source=True),
    Option("NOTE_TYPE", None, str,
           "Note type label (TicketNotes picklist); unset: the tenant's default.", per_source=True),
    Option("NOTE_PUBLISH", None, str,
           "Note publish label (TicketNotes picklist); unset: the tenant's default.",
           per_source=True),
    Option("TICKET_UPDATER", None, "object",
           "Replaces the Autotask write: a callable or class, or its import path "
           "'package.module:name'. See docs/sync.md.", per_source=True),
)

OPTIONS_BY_NAME: Mapping[str, Option] = {o.name: o for o in OPTIONS}


# -- reading raw values ----------------------------------------------------------------


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _parse_tokens(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(t.strip() for t in value.split(",") if t.strip())
    if isinstance(value, list | tuple):
        return tuple(str(t) for t in value)
    raise ValueError("expected a token or a list of tokens")


def _parse_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _parse_object(value: Any) -> Any:
    """An import path 'package.module:name' becomes the object; anything else is kept."""
    if not isinstance(value, str):
        return value
    from werkzeug.utils import ImportStringError, import_string

    try:
        return import_string(value.replace(":", "."))
    except ImportStringError as exc:
        raise ValueError(f"cannot import {value!r}: {exc.exception}") from None


_PARSERS: Mapping[type | str, Callable[[Any], Any]] = {
    "object": _parse_object,
    bool: _parse_bool,
    int: int,
    float: float,
    str: str,
    "json": _parse_json,
    "tokens": _parse_tokens,
}


def parse(option: Option, value: Any) -> Any:
    if value is None:
        return None
    try:
        return _PARSERS[option.kind](value)
    except (ValueError, TypeError) as exc:
        shown = "(hidden)" if option.secret else repr(value)
        raise ConfigurationError(f"{option.key}: invalid value {shown}: {exc}") from None


def from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ``AUTOTASK_ILERT_*`` variables of an environment, as typed config values.

    For apps configured from the environment (as the example app is):
    ``app.config.update(from_env())``. Unknown ``AUTOTASK_ILERT_*`` names are
    kept, so that ``init_app`` rejects a misspelling rather than ignoring it.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {o.key: parse(o, env[o.key]) for o in OPTIONS if o.key in env}
    # A misspelt variable is passed on as is, so init_app names it instead of ignoring it.
    values.update({k: v for k, v in env.items() if k.startswith(PREFIX) and k not in values})
    return values


def _read_sources_file(path: str) -> Any:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"{PREFIX}SOURCES_FILE: cannot read {path}: {exc}") from None
    try:
        if file.suffix.lower() == ".toml":
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover - exercised on Python 3.10
                import tomli as tomllib
            return tomllib.loads(text)
        return json.loads(text)
    except ValueError as exc:
        raise ConfigurationError(f"{PREFIX}SOURCES_FILE: {path} is not valid: {exc}") from None


# -- validated settings ------------------------------------------------------------------


@dataclass(frozen=True)
class AutotaskSettings:
    username: str
    secret: str = field(repr=False)
    integration_code: str = field(repr=False)
    api_url: str | None
    web_url: str | None


@dataclass(frozen=True)
class SyncSettings:
    """Bidirectional sync of one source: how webhooks are recognised, what they write."""

    webhook_tokens: tuple[str, ...] = field(repr=False)
    header_name: str | None
    header_value: str | None = field(repr=False)
    username: str | None
    password: str | None = field(repr=False)
    accept_status: str
    resolve_status: str
    note_title: str
    accept_note: str
    resolve_note: str
    note_type: str | None
    note_publish: str | None
    ticket_updater: Any = field(repr=False)

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(v for v in (*self.webhook_tokens, self.header_value, self.password) if v)


@dataclass(frozen=True)
class SourceConfig:
    """One alert source: which callouts it answers, where its events go."""

    name: str
    callout_tokens: tuple[str, ...] = field(repr=False)
    callout_username: str | None
    callout_password: str | None = field(repr=False)
    ilert_api_url: str
    ilert_integration_key: str = field(repr=False)
    ilert_rate_limit: int
    ilert_rate_window: float
    autotask: AutotaskSettings | None
    classify: StatusClassifier = field(repr=False)
    priority: PriorityMap = field(repr=False)
    realert_on_reopen: bool
    sync: SyncSettings | None = None

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret value of this source, for redaction."""
        values = [*self.callout_tokens, self.ilert_integration_key, self.callout_password or ""]
        if self.autotask:
            values += [self.autotask.secret, self.autotask.integration_code]
        if self.sync:
            values += self.sync.secrets
        return tuple(v for v in values if v)


@dataclass(frozen=True)
class Settings:
    url_prefix: str
    redis_url: str | None
    redis_prefix: str
    embedded_worker: bool
    max_body_bytes: int
    resolved_retention_ms: int
    retry_after_seconds: int
    audit_entries: int
    audit_reject_ms: int
    worker_threads: int
    worker_lease_ms: int
    worker_poll_seconds: float
    retry_base_seconds: float
    retry_cap_seconds: float
    enrich_attempts: int
    http_timeout: tuple[float, float]
    autotask_zone_lookup_url: str
    autotask_concurrency: int
    autotask_threshold_share: float
    autotask_threshold_check_ms: int
    sources: Mapping[str, SourceConfig]

    def source_for_token(self, token: str) -> SourceConfig | None:
        """The source whose callout token this is; every token is compared, always."""
        return _match(token, ((s, s.callout_tokens) for s in self.sources.values()))

    def source_for_webhook_token(self, token: str) -> SourceConfig | None:
        """The bidirectional source whose webhook token this is (compared like callout tokens)."""
        return _match(
            token, ((s, s.sync.webhook_tokens) for s in self.sources.values() if s.sync)
        )

    def source_for_webhook_header(self, header: Callable[[str], str | None]) -> SourceConfig | None:
        """The source whose static webhook header was sent (``header`` looks one up by name)."""
        found: SourceConfig | None = None
        for source in self.sources.values():
            name = source.sync.header_name if source.sync else None
            expected = source.sync.header_value if source.sync else None
            if name and expected and _same(header(name) or "", expected):
                found = source
        return found

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for source in self.sources.values() for s in source.secrets)


def _priority(value: Any) -> Priority:
    return value if isinstance(value, Priority) else Priority(str(value).strip().upper())


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison of a secret (time does not depend on where they differ)."""
    return hmac.compare_digest(
        given.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape")
    )


def _match(
    given: str, candidates: Iterable[tuple[SourceConfig, tuple[str, ...]]]
) -> SourceConfig | None:
    """Every candidate is compared even after a match, so timing reveals nothing."""
    found: SourceConfig | None = None
    for source, tokens in candidates:
        for token in tokens:
            if _same(given, token):
                found = source
    return found


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigurationError(message)


def _build_source(name: str, raw: Mapping[str, Any]) -> SourceConfig:
    where = f"source {name!r}"

    def value(option_name: str) -> Any:
        return raw.get(option_name.lower(), OPTIONS_BY_NAME[option_name].default)

    _require(bool(_SOURCE_NAME.match(name)),
             f"{where}: a name is 1-64 letters, digits, '_', '.' or '-'")
    tokens = value("CALLOUT_TOKEN") or ()
    _require(bool(tokens), f"{where}: set a callout token ({PREFIX}CALLOUT_TOKEN or "
                           "'callout_token' in the source)")
    for token in tokens:
        _check_token(where, "callout token", token)
    key = value("ILERT_INTEGRATION_KEY")
    _require(bool(key), f"{where}: set the ilert integration key ({PREFIX}ILERT_INTEGRATION_KEY)")
    username, password = value("CALLOUT_USERNAME"), value("CALLOUT_PASSWORD")
    _require(bool(username) == bool(password),
             f"{where}: CALLOUT_USERNAME and CALLOUT_PASSWORD go together")
    rate = value("ILERT_RATE_LIMIT")
    _require(isinstance(rate, int) and rate >= 0, f"{where}: ILERT_RATE_LIMIT must be >= 0")
    window = float(value("ILERT_RATE_WINDOW_SECONDS"))
    _require(window > 0, f"{where}: ILERT_RATE_WINDOW_SECONDS must be > 0")

    autotask_parts = [value(n) for n in
                      ("AUTOTASK_USERNAME", "AUTOTASK_SECRET", "AUTOTASK_INTEGRATION_CODE")]
    _require(all(autotask_parts) or not any(autotask_parts),
             f"{where}: AUTOTASK_USERNAME, AUTOTASK_SECRET and AUTOTASK_INTEGRATION_CODE "
             "go together (or leave all three unset to page with the callout's data only)")
    autotask = None
    if all(autotask_parts):
        api_user, api_secret, api_code = autotask_parts
        autotask = AutotaskSettings(
            api_user, api_secret, api_code,
            api_url=value("AUTOTASK_API_URL"), web_url=value("AUTOTASK_WEB_URL"),
        )

    try:
        labels = dict(DEFAULT_STATUS_LABELS)
        for class_name, class_labels in (value("STATUS_LABELS") or {}).items():
            _require(isinstance(class_labels, list | tuple),
                     f"{where}: STATUS_LABELS[{class_name!r}] must be a list of labels")
            labels[StatusClass(str(class_name).upper())] = tuple(class_labels)
        classify = StatusClassifier(labels)
        priority = PriorityMap(
            {k: _priority(v) for k, v in
             (value("PRIORITY_MAP") or DEFAULT_PRIORITY_MAP).items()}
        )
    except ValueError as exc:
        raise ConfigurationError(f"{where}: {exc}") from None

    return SourceConfig(
        sync=_build_sync(where, value, autotask is not None) if value("BIDIRECTIONAL") else None,
        name=name,
        callout_tokens=tuple(tokens),
        callout_username=username,
        callout_password=password,
        ilert_api_url=str(value("ILERT_API_URL")).rstrip("/"),
        ilert_integration_key=str(key),
        ilert_rate_limit=rate,
        ilert_rate_window=window,
        autotask=autotask,
        classify=classify,
        priority=priority,
        realert_on_reopen=_parse_bool(value("REALERT_ON_REOPEN")),
    )


def _check_token(where: str, what: str, token: str) -> None:
    _require(len(token) >= MIN_TOKEN_LENGTH and token.isprintable() and "/" not in token,
             f"{where}: a {what} must be at least {MIN_TOKEN_LENGTH} printable characters "
             "without '/' (use e.g. `python -c 'import secrets; "
             "print(secrets.token_urlsafe(32))'`)")


def _build_sync(where: str, value: Callable[[str], Any], has_autotask: bool) -> SyncSettings:
    tokens = tuple(value("WEBHOOK_TOKEN") or ())
    for token in tokens:
        _check_token(where, "webhook token", token)
    header_name, header_value = value("WEBHOOK_HEADER_NAME"), value("WEBHOOK_HEADER_VALUE")
    username, password = value("WEBHOOK_USERNAME"), value("WEBHOOK_PASSWORD")
    _require(bool(header_name) == bool(header_value),
             f"{where}: WEBHOOK_HEADER_NAME and WEBHOOK_HEADER_VALUE go together")
    _require(bool(username) == bool(password),
             f"{where}: WEBHOOK_USERNAME and WEBHOOK_PASSWORD go together")
    _require(bool(tokens or header_name or username),
             f"{where}: BIDIRECTIONAL needs a way to recognise ilert's webhooks: set "
             "WEBHOOK_TOKEN, WEBHOOK_HEADER_NAME/VALUE or WEBHOOK_USERNAME/PASSWORD")
    updater = value("TICKET_UPDATER")
    _require(updater is None or callable(updater),
             f"{where}: TICKET_UPDATER must be a callable or a class")
    _require(has_autotask or updater is not None,
             f"{where}: BIDIRECTIONAL writes to Autotask: set the AUTOTASK_* credentials or a "
             "TICKET_UPDATER")
    for name in ("ACCEPT_NOTE", "RESOLVE_NOTE", "NOTE_TITLE"):
        try:
            str(value(name)).format(who="w", when="t", alert_id="1", alert_url="u")
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigurationError(
                f"{where}: {name} may use only {{who}} {{when}} {{alert_id}} {{alert_url}} "
                f"({exc!r})"
            ) from None
    return SyncSettings(
        webhook_tokens=tokens,
        header_name=header_name,
        header_value=header_value,
        username=username,
        password=password,
        accept_status=str(value("ACCEPT_STATUS")),
        resolve_status=str(value("RESOLVE_STATUS")),
        note_title=str(value("NOTE_TITLE")),
        accept_note=str(value("ACCEPT_NOTE")),
        resolve_note=str(value("RESOLVE_NOTE")),
        note_type=value("NOTE_TYPE"),
        note_publish=value("NOTE_PUBLISH"),
        ticket_updater=updater,
    )


def load_settings(config: Mapping[str, Any], overrides: Mapping[str, Any]) -> Settings:
    """Settings from constructor options, then app.config, then defaults; invalid -> ConfigurationError."""
    unknown = sorted(k for k in overrides if k.upper() not in OPTIONS_BY_NAME)
    _require(not unknown, f"unknown AutotaskIlert option(s): {', '.join(unknown)}")
    unknown = sorted(k for k in config if k.startswith(PREFIX)
                     and k[len(PREFIX):] not in OPTIONS_BY_NAME)
    _require(not unknown, f"unknown config key(s): {', '.join(unknown)}")

    def get(name: str) -> Any:
        option = OPTIONS_BY_NAME[name]
        if name.lower() in overrides:
            return parse(option, overrides[name.lower()])
        return parse(option, config.get(option.key, option.default))

    flat = {o.name.lower(): get(o.name) for o in OPTIONS if o.per_source}
    sources_raw: dict[str, Any] = {}
    if get("CALLOUT_TOKEN") or get("ILERT_INTEGRATION_KEY"):
        sources_raw[DEFAULT_SOURCE] = {}
    if get("SOURCES_FILE"):
        sources_raw.update(_read_sources_file(get("SOURCES_FILE")))
    sources_raw.update(get("SOURCES") or {})
    _require(bool(sources_raw),
             f"no alert source configured: set {PREFIX}CALLOUT_TOKEN and "
             f"{PREFIX}ILERT_INTEGRATION_KEY, or {PREFIX}SOURCES")

    sources: dict[str, SourceConfig] = {}
    for name, raw in sources_raw.items():
        _require(isinstance(raw, Mapping), f"source {name!r}: expected a mapping of options")
        bad = sorted(k for k in raw if k.upper() not in OPTIONS_BY_NAME
                     or not OPTIONS_BY_NAME[k.upper()].per_source)
        _require(not bad, f"source {name!r}: unknown option(s): {', '.join(bad)}")
        merged = {**flat, **{k: parse(OPTIONS_BY_NAME[k.upper()], v) for k, v in raw.items()}}
        sources[str(name)] = _build_source(str(name), merged)

    seen: dict[str, str] = {}
    for source in sources.values():
        for token in (*source.callout_tokens, *(source.sync.webhook_tokens if source.sync else ())):
            _require(token not in seen,
                     f"sources {seen.get(token)!r} and {source.name!r} share a token "
                     "(every callout and webhook token must be different)")
            seen[token] = source.name

    prefix = get("URL_PREFIX")
    _require(prefix.startswith("/"), f"{PREFIX}URL_PREFIX must start with '/'")
    positive = ("MAX_BODY_BYTES", "WORKER_THREADS", "WORKER_LEASE_SECONDS",
                "WORKER_POLL_SECONDS", "RETRY_BASE_SECONDS", "RETRY_CAP_SECONDS")
    for name in positive:
        _require(get(name) > 0, f"{PREFIX}{name} must be > 0")
    _require(get("ENRICH_ATTEMPTS") >= 1, f"{PREFIX}ENRICH_ATTEMPTS must be >= 1")
    _require(0 <= get("AUDIT_ENTRIES") <= 100, f"{PREFIX}AUDIT_ENTRIES must be 0-100")
    _require(get("AUDIT_REJECT_HOURS") > 0, f"{PREFIX}AUDIT_REJECT_HOURS must be > 0")

    _require(get("AUTOTASK_CONCURRENCY") >= 1, f"{PREFIX}AUTOTASK_CONCURRENCY must be >= 1")
    _require(0 < get("AUTOTASK_THRESHOLD_SHARE") <= 1,
             f"{PREFIX}AUTOTASK_THRESHOLD_SHARE must be in (0, 1]")
    return Settings(
        autotask_concurrency=get("AUTOTASK_CONCURRENCY"),
        autotask_threshold_share=get("AUTOTASK_THRESHOLD_SHARE"),
        autotask_threshold_check_ms=int(get("AUTOTASK_THRESHOLD_CHECK_SECONDS") * 1000),
        url_prefix=prefix.rstrip("/"),
        redis_url=get("REDIS_URL") or None,
        redis_prefix=get("REDIS_PREFIX"),
        embedded_worker=get("EMBEDDED_WORKER"),
        max_body_bytes=get("MAX_BODY_BYTES"),
        resolved_retention_ms=int(get("RESOLVED_RETENTION_DAYS") * 86_400_000),
        retry_after_seconds=get("RETRY_AFTER_SECONDS"),
        audit_entries=get("AUDIT_ENTRIES"),
        audit_reject_ms=int(get("AUDIT_REJECT_HOURS") * 3_600_000),
        worker_threads=get("WORKER_THREADS"),
        worker_lease_ms=int(get("WORKER_LEASE_SECONDS") * 1000),
        worker_poll_seconds=get("WORKER_POLL_SECONDS"),
        retry_base_seconds=get("RETRY_BASE_SECONDS"),
        retry_cap_seconds=get("RETRY_CAP_SECONDS"),
        enrich_attempts=get("ENRICH_ATTEMPTS"),
        http_timeout=(get("HTTP_CONNECT_TIMEOUT"), get("HTTP_READ_TIMEOUT")),
        autotask_zone_lookup_url=get("AUTOTASK_ZONE_LOOKUP_URL"),
        sources=sources,
    )
