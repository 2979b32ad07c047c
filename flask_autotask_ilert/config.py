"""Every configuration key, in one place, and the validated settings built from them.

Keys are ``AUTOTASK_ILERT_<NAME>`` in ``app.config``; the same names, lower
case, are accepted by the ``AutotaskIlert(...)`` constructor (which wins over
``app.config``) and inside each entry of ``AUTOTASK_ILERT_SOURCES``. An option
marked per-source may be set flat (it then applies to the ``default`` source
and is inherited by every other source) or inside a source's entry.

docs/configuration.md documents this table one to one: its option tables are
generated from ``OPTIONS`` (``make config-docs``, see ``config_reference.py``), so an
option's ``doc`` is its documentation, in markdown, and its ``check`` fills the
"allowed" column.

Adding an option is one entry in ``OPTIONS`` and, for an application-wide one,
one field of ``Settings``::

    Option("WIDGET_LIMIT", 10, int, "How many widgets ...", check=AtLeast(1)),

- ``kind`` says how text (from the environment) is converted: ``bool``, ``int``,
  ``float``, ``str``, ``"json"``, ``"tokens"`` or ``"object"``.
- ``check`` is a constraint from ``constraints.py`` (``Positive()``,
  ``AtLeast(1)``, ``Between(0, 100)``, ``OneOf(("a", "b"))``, ``Token()``, ...);
  ``load_settings`` applies it to the converted value and names the option in
  the error. An option whose default is unset is checked only when it is set.
- An application-wide option fills the ``Settings`` field of its name in lower
  case; ``field`` names another one (``None``: no field, a rule reads it) and
  ``convert`` changes the unit on the way (``convert=_ms(1000)`` for seconds
  kept as milliseconds).
- A per-source option (``per_source=True``) is checked in each source, after
  the flat value and the source's own are merged; ``only_with`` names a boolean
  option without which it is neither checked nor used (``BIDIRECTIONAL``).
  ``_build_source`` puts it into ``SourceConfig``.
- Rules that span options (pairs set together, unique tokens) are written out
  in ``load_settings`` and ``_build_source``.
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

from .constraints import (
    AtLeast,
    Between,
    Constraint,
    IsCallable,
    OneOf,
    Positive,
    RateLimit,
    Secret,
    SecretText,
    StartsWith,
    Template,
    Token,
)
from .errors import ConfigurationError
from .lifecycle import (
    DEFAULT_PRIORITY_MAP,
    DEFAULT_STATUS_LABELS,
    Priority,
    PriorityMap,
    StatusClass,
    StatusClassifier,
    written_label_problems,
)
from .routing import Route, Rules, parse_routes
from .templates import AlertTemplates, JinjaMapping, JinjaText, TemplateProblem, build
from .trusted_hosts import normalise_suffixes, url_problem

PREFIX = "AUTOTASK_ILERT_"
DEFAULT_SOURCE = "default"
SYNC = "BIDIRECTIONAL"
#: The fields the note options may use (``sync._note`` fills them).
NOTE_FIELDS = ("who", "when", "alert_id", "alert_url")
_SOURCE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True)
class Option:
    """One configuration key: how it is read, what it allows, where it goes (module docstring)."""

    name: str
    default: Any
    kind: type | str  # bool, int, float, str, "json", "tokens", "object"
    doc: str
    per_source: bool = False
    secret: bool = False
    check: Constraint | None = None
    #: The Settings field an application-wide option fills: "" for its name in lower
    #: case, None for none (a rule spanning options reads it).
    field: str | None = ""
    convert: Callable[[Any], Any] | None = None
    #: A boolean option without which this per-source option is neither checked nor used.
    only_with: str | None = None

    @property
    def key(self) -> str:
        return PREFIX + self.name

    @property
    def setting(self) -> str | None:
        """The name of the Settings field this option fills, if it fills one."""
        return None if self.field is None else (self.field or self.name.lower())

    def problem(self, value: Any) -> str | None:
        """What is wrong with a converted value; None if nothing is, or if it is unset and may be."""
        if self.check is None or (self.default is None and value in (None, "", ())):
            return None
        return self.check.check(value)


def _ms(factor: int) -> Callable[[Any], int]:
    """Converts a duration in the option's unit to the milliseconds Settings keeps."""
    return lambda value: int(value * factor)


def _or_none(value: Any) -> Any:
    return value or None


def _no_trailing_slash(value: str) -> str:
    return value.rstrip("/")


def _folded(value: str) -> str:
    return value.strip().lower()


OPTIONS: tuple[Option, ...] = (
    # -- the app as a whole --------------------------------------------------------
    Option("URL_PREFIX", "/autotask-ilert", str, "Where the endpoints are mounted.",
           check=StartsWith("/"), convert=_no_trailing_slash),
    Option("REDIS_URL", None, str,
           "Required. Redis URL: `redis://localhost:6379/0` (`rediss://` for TLS, `unix://` for a socket), "
           "`redis+sentinel://[:password@]host:port[,host:port...]/<master name>[/db]`, "
           "`redis+cluster://[:password@]host:port[,host:port...]` (the key prefix is then hash-tagged), or "
           "`memory://`: an in-process store for a single process only (demo, tests; needs the `[memory]` "
           "extra). See [Redis](redis.md). Treat the URL as a secret if it contains a password.",
           convert=_or_none),
    Option("REDIS_PREFIX", "autotask-ilert:", str, "Prefix of every Redis key the bridge writes. Give two "
           "apps that share one Redis different prefixes."),
    Option("EMBEDDED_WORKER", False, bool,
           "Deliver from a background thread of each web process, started at its first request, instead of "
           "a separate worker process."),
    Option("MAX_BODY_BYTES", 65536, int, "Largest callout or webhook body accepted; a larger one is "
           "answered 413.", check=Positive()),
    Option("RESOLVED_RETENTION_DAYS", 30.0, float,
           "How long the record of a resolved ticket is kept, so that late or repeated callouts (and ilert "
           "webhooks) for it change nothing. Fractions allowed.",
           field="resolved_retention_ms", convert=_ms(86_400_000)),
    Option("RETRY_AFTER_SECONDS", 5, int, "The `Retry-After` value sent with a 503 when Redis cannot be "
           "reached."),
    Option("AUDIT_ENTRIES", 8, int,
           "Records kept in each ticket's audit trail (callouts, webhooks, deliveries, retries, dead "
           "letters), newest first, inside the ticket's own Redis key: 8 bytes each, and a line of "
           "words of at most 120 bytes (the status label, who acted in ilert, why a delivery failed). "
           "With the default a full trail keeps a ticket within 2 KB of Redis memory; each entry "
           "more costs up to about 130 bytes. `0` keeps none.",
           check=Between(0, 100)),
    Option("AUDIT_REJECT_HOURS", 24.0, float,
           "How long the audit trail of a rejected ticket (one that has no alert) is kept, and its "
           "activity time, so that an older callout delivered after the refused one is stale.",
           check=Positive(), field="audit_reject_ms", convert=_ms(3_600_000)),
    Option("CLOCK_SKEW_SECONDS", 300.0, float,
           "How far ahead of this host's clock a callout's `last_activity_datetime` may be and still "
           "order callouts. A later one (a wrong clock, a year 2999) is treated as absent, so it cannot "
           "make every real callout after it stale; it is logged and counted in "
           "`autotask_ilert_future_timestamps`. See [lifecycle.md](lifecycle.md#order-and-time).",
           check=Between(1, 86_400), field="clock_skew_ms", convert=_ms(1000)),
    Option("SOURCES", None, "json",
           "Several alert sources: a mapping of source name to that source's options, in lower case. See "
           "[Several alert sources](#several-alert-sources). Its entries hold secrets.", field=None),
    Option("SOURCES_FILE", None, str,
           "Path of a JSON or TOML file (by its `.toml` suffix) holding the same mapping as `SOURCES`; "
           "read once, at `init_app`.", field=None),
    Option("WORKER_THREADS", 4, int, "Delivery threads per worker process (and per web process with the "
           "embedded worker). `--threads` overrides it for the `worker` command.", check=Positive()),
    Option("WORKER_LEASE_SECONDS", 60.0, float,
           "How long a worker owns a ticket's queue before another worker may take it over. Keep it well "
           "above the time one delivery can take (a few HTTP timeouts).",
           check=Positive(), field="worker_lease_ms", convert=_ms(1000)),
    Option("WORKER_POLL_SECONDS", 0.2, float, "How long an idle delivery thread waits before it looks for "
           "due work again (retries, paced events). A callout that queues an event wakes an idle "
           "thread at once.", check=Positive()),
    Option("RETRY_BASE_SECONDS", 1.0, float, "Scale of retry delays: a delay is drawn at random between "
           "half this value and a ceiling that starts at this value and doubles with each failed attempt, "
           "up to `RETRY_CAP_SECONDS`.", check=Positive()),
    Option("RETRY_CAP_SECONDS", 300.0, float, "The longest retry delay, and the most a `Retry-After` from "
           "ilert or Autotask is honoured.", check=Positive()),
    Option("ENRICH_ATTEMPTS", 3, int,
           "Attempts to read a ticket from Autotask before the alert is sent with the callout's data only.",
           check=AtLeast(1)),
    Option("ENRICH_DEADLINE_SECONDS", 3.0, float,
           "The longest an alert waits on Autotask, counted from when a worker first takes its event "
           "up: waits for an Autotask request place, the ticket read (its read timeout is cut to the "
           "time left) and retries of it. After that the alert is sent with the callout's data only, "
           "as after `ENRICH_ATTEMPTS` failed reads.",
           check=Between(0, 3600, low_exclusive=True), field="enrich_deadline_ms", convert=_ms(1000)),
    Option("HTTP_CONNECT_TIMEOUT", 3.05, float, "Connect timeout of requests to ilert and Autotask, in "
           "seconds."),
    Option("HTTP_READ_TIMEOUT", 10.0, float, "Read timeout of requests to ilert and Autotask, in seconds."),
    Option("AUTOTASK_ZONE_LOOKUP_URL", "https://webservices.autotask.net/atservicesrest", str,
           "Where the Autotask zone of the API user is looked up when `AUTOTASK_API_URL` is unset."),
    Option("AUTOTASK_ALLOWED_HOSTS", "autotask.net", "list",
           "The hosts that may receive the Autotask API user's credentials: a list (or comma-separated "
           "text) of domain suffixes, matched on a dot boundary (`autotask.net` allows "
           "`webservices5.autotask.net`, not `evilautotask.net`). `AUTOTASK_API_URL`, `AUTOTASK_WEB_URL` "
           "and `AUTOTASK_ZONE_LOOKUP_URL` must be https to such a host (`init_app` refuses others), and "
           "so must the zone lookup's answer, or no credentials are sent. Plain http is allowed for "
           "loopback addresses only (simulators).", convert=normalise_suffixes),
    Option("AUTOTASK_CONCURRENCY", 3, int,
           "The most Autotask requests in flight at once per integration code and endpoint, across every "
           "worker thread, process and host (shared through Redis). Autotask refuses more than 3 with "
           "\"Thread Threshold Exceeded\"; lower it if other integrations use the same integration code.",
           check=AtLeast(1)),
    Option("AUTOTASK_THRESHOLD_SHARE", 0.8, float,
           "Ticket writes of [bidirectional sync](sync.md#autotasks-limits) wait while the tenant has used "
           "this share (or more) of its hourly API budget, as `ThresholdInformation` reports it.",
           check=Between(0, 1, low_exclusive=True)),
    Option("AUTOTASK_THRESHOLD_CHECK_SECONDS", 300.0, float,
           "How long one reading of the tenant's API usage is trusted; it is shared by all workers, so the "
           "check costs at most one request per this many seconds.",
           field="autotask_threshold_check_ms", convert=_ms(1000)),
    Option("RECONCILE_INTERVAL_SECONDS", 300.0, float,
           "How often the worker compares the tickets changed in Autotask with what the bridge "
           "knows, so a lost callout still pages, accepts or resolves ([reliability.md]"
           "(reliability.md#reconciliation-with-autotask)). One sweep at a time across every "
           "process and host; it runs for sources with Autotask credentials. `0` turns it off.",
           check=AtLeast(0)),
    Option("ENTITY_CACHE_SECONDS", 3600.0, float,
           "How long an Autotask company, contact or resource that a template names is kept in Redis "
           "(shared by every worker), so a template costs about one Autotask call per company, contact "
           "or resource in this time instead of one per alert; see [alert-text.md](alert-text.md).",
           check=Positive(), field="entity_cache_ms", convert=_ms(1000)),
    # -- watching it: metrics, readiness, logs ------------------------------------------
    Option("METRICS_TOKEN", None, str,
           "When set, `GET {prefix}/metrics` answers only requests carrying `Authorization: Bearer "
           "<token>` (others get 401). Unset: the endpoint is open; see "
           "[operations.md](operations.md#metrics).", secret=True, check=Token(), convert=_or_none),
    Option("METRICS_INCLUDE_PROCESS", False, bool,
           "Serve on `{prefix}/metrics` everything in the process's default Prometheus registry "
           "(process, garbage collector and the host app's own metrics) as well. Off: only the "
           "bridge's own metrics, so a scrape tells nothing about the host app."),
    Option("READY_HEARTBEAT_SECONDS", 30.0, float,
           "`{prefix}/readyz` answers 503 when no worker has written a heartbeat for this many "
           "seconds (running workers write one every 5 seconds, or a third of this if less).",
           check=Positive()),
    Option("READY_QUEUE_AGE_SECONDS", 300.0, float,
           "`{prefix}/readyz` answers 503 when the oldest undelivered event has waited this many "
           "seconds.", check=Positive()),
    Option("LOG_FORMAT", "text", str,
           "How the one log line per callout, webhook and delivery outcome is written: `text` "
           "(`key=value` pairs) or `json` (one JSON object). Either way the library adds no log "
           "handler; see [operations.md](operations.md#logs).",
           check=OneOf(("text", "json")), convert=_folded),
    # -- per alert source --------------------------------------------------------------
    Option("CALLOUT_TOKEN", None, "tokens",
           "Required. The secret in the callout URL, `{prefix}/callout/<token>`. Several tokens (a list, "
           "or comma-separated text) are accepted, for rotation. Generate one with "
           "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`.",
           per_source=True, secret=True, check=Token()),
    Option("CALLOUT_USERNAME", None, str,
           "When set, callouts must also carry these HTTP Basic credentials (enter the same values in the "
           "callout's Username and Password fields in Autotask); otherwise they are answered 401.",
           per_source=True),
    Option("CALLOUT_PASSWORD", None, str, "The password for `CALLOUT_USERNAME`. The two are set together "
           "or not at all.",
           per_source=True, secret=True),
    Option("ILERT_API_URL", "https://api.ilert.com", str, "ilert's API base URL. Events go to "
           "`<url>/api/events`.",
           per_source=True),
    Option("ILERT_INTEGRATION_KEY", None, str, "Required. The integration key of the ilert alert source "
           "(type API).",
           per_source=True, secret=True),
    Option("ILERT_RATE_LIMIT", 50, int,
           "The most events sent to one integration key per window, shared by every worker. `0` turns "
           "pacing off.",
           per_source=True, check=AtLeast(0)),
    Option("ILERT_RATE_WINDOW_SECONDS", 60.0, float, "The window of `ILERT_RATE_LIMIT`, in seconds.",
           per_source=True, check=Positive()),
    Option("AUTOTASK_USERNAME", None, str, "Username of the Autotask API user. `AUTOTASK_USERNAME`, "
           "`AUTOTASK_SECRET` and `AUTOTASK_INTEGRATION_CODE` are set together or not at all; without "
           "them, alerts carry only what the callout says.",
           per_source=True),
    Option("AUTOTASK_SECRET", None, str, "The API user's secret.", per_source=True, secret=True),
    Option("AUTOTASK_INTEGRATION_CODE", None, str, "The API user's API tracking identifier (sent as "
           "`ApiIntegrationCode`).",
           per_source=True, secret=True),
    Option("AUTOTASK_API_URL", None, str,
           "The tenant's zone URL, e.g. `https://webservices5.autotask.net/atservicesrest`. Unset: "
           "discovered once per process through `zoneInformation`, and again once if Autotask answers 401.",
           per_source=True),
    Option("AUTOTASK_WEB_URL", None, str,
           "Base of the ticket links put in alerts, e.g. `https://ww5.autotask.net`. Unset: taken from the "
           "zone.", per_source=True),
    Option("STATUS_LABELS", None, "json",
           "Status labels per class, e.g. `{\"WAITING\": [\"Waiting Customer\", \"On Hold\"]}`. Classes: "
           "`NEW`, `IN_PROGRESS`, `CLOSED`, `WAITING`. A class given replaces its default labels; see "
           "[lifecycle.md](lifecycle.md#status-classes). Unset: the default lists.", per_source=True),
    Option("PRIORITY_MAP", None, "json",
           "Autotask priority label -> `\"HIGH\"` or `\"LOW\"`. Labels not listed page `HIGH`. The mapping "
           "replaces the default, so include `\"Low\": \"LOW\"` if you still want it. Unset: `{\"Low\": "
           "\"LOW\"}`.", per_source=True),
    Option("RECONCILE_FILTER", None, "json",
           "Extra conditions of the reconciliation query, in Autotask's query syntax, e.g. "
           "`[{\"op\": \"eq\", \"field\": \"queueID\", \"value\": 29683354}]`: give it the "
           "conditions of the workflow rule that sends the callout, so the sweep looks only at the "
           "tickets the callout is about. Unset: every ticket of the tenant.", per_source=True),
    Option("REALERT_ON_REOPEN", False, bool,
           "A resolved ticket that comes back with an open status creates a new alert; see "
           "[lifecycle.md](lifecycle.md#transitions).", per_source=True),
    Option("RATE_LIMIT", "600/minute", str,
           "Flood guard: at most this many callouts (and, separately, webhooks) per source; more are "
           "answered 429 with `Retry-After`, before anything is read or recorded. Limits syntax, e.g. "
           "`3000/minute`, `;` between several. The default, 600 a minute, is far above what one "
           "tenant sends, and keeps a leaked token from paging for every made-up ticket; raise it "
           "if a mass outage of yours could go over it. `off` turns the guard off.",
           per_source=True, check=RateLimit()),
    Option("AUTOTASK_WEBHOOK_SECRET", None, str,
           "Turns on [Autotask webhooks](autotask-webhooks.md) for this source: the `secretKey` of its "
           "`TicketWebhook`, which signs every delivery to `{prefix}/autotask-webhook/<callout token>`. "
           "Needs the `AUTOTASK_*` credentials (a status arrives as a picklist id). Unset: that endpoint "
           "answers 404 for this source.",
           per_source=True, secret=True, check=SecretText(16, 64)),
    Option("SUMMARY_TEMPLATE", None, str,
           "The alert's summary, as a Jinja2 template (sandboxed) over `ticket`, `company`, `contact`, "
           "`resource`, `callout` and `source`, e.g. `{{ company.companyName }}: {{ ticket.title }}`; "
           "see [alert-text.md](alert-text.md). Checked at startup. Unset: `[<number>] <title>`.",
           per_source=True, check=JinjaText()),
    Option("DETAILS_TEMPLATE", None, str,
           "The alert's details, as a template like `SUMMARY_TEMPLATE`. Unset: the ticket's description.",
           per_source=True, check=JinjaText()),
    Option("CUSTOM_DETAILS", None, "json",
           "Extra keys of the alert's custom details, each a template like `SUMMARY_TEMPLATE`, e.g. "
           "`{\"company\": \"{{ company.companyName }}\"}`. They are added to the default ones.",
           per_source=True, check=JinjaMapping()),
    Option("ROUTES", None, "json",
           "Routing rules, first match wins: each sends the tickets it matches (by queue, priority, "
           "company, issue type, sub-issue type, ticket type, source, and time) to its own "
           "`integration_key`, optionally with its own `priority` and templates; a ticket no rule "
           "matches goes to `ILERT_INTEGRATION_KEY`. See [routing.md](routing.md). Holds secrets.",
           per_source=True, secret=True, check=Rules()),
    # -- ilert -> Autotask (bidirectional sync), per alert source --------------------------
    # (docs: BIDIRECTIONAL and every per-source option after it go in the sync table)
    Option("BIDIRECTIONAL", False, bool,
           "Alert status changes in ilert (accepted, resolved) are written back to the ticket, through the "
           "webhook endpoint `{prefix}/ilert/<token>` (or `{prefix}/ilert`). Off: that endpoint answers "
           "404 for this source.",
           per_source=True),
    Option("WEBHOOK_TOKEN", None, "tokens",
           "The secret in the ilert webhook URL, `{prefix}/ilert/<token>`. Same rules as `CALLOUT_TOKEN` "
           "(a list for rotation), and different from every callout and webhook token.",
           per_source=True, only_with=SYNC, secret=True, check=Token()),
    Option("WEBHOOK_HEADER_NAME", None, str,
           "A static header that ilert sends with the webhook (the alert action's custom headers). When "
           "set, webhooks must carry it with the value below; without a token it identifies the source on "
           "`{prefix}/ilert`.",
           per_source=True, only_with=SYNC),
    Option("WEBHOOK_HEADER_VALUE", None, str, "The value of `WEBHOOK_HEADER_NAME`: at least 16 printable "
           "characters, like a token. The two are set together or not at all.",
           per_source=True, only_with=SYNC, secret=True, check=Secret()),
    Option("WEBHOOK_USERNAME", None, str, "When set, webhooks must carry these HTTP Basic credentials (in "
           "ilert, as `https://user:password@host/...` in the URL); without a token they identify the "
           "source on `{prefix}/ilert`.",
           per_source=True, only_with=SYNC),
    Option("WEBHOOK_PASSWORD", None, str, "The password for `WEBHOOK_USERNAME`: at least 16 printable "
           "characters, like a token. The two are set together or not at all.",
           per_source=True, only_with=SYNC, secret=True, check=Secret()),
    Option("ACCEPT_STATUS", "In Progress", str,
           "Status label a ticket whose last known class is `NEW` is set to when its alert is accepted in "
           "ilert. Resolved through the tenant's `Tickets.status` picklist. Must be of class `IN_PROGRESS` "
           "or `WAITING` (`STATUS_LABELS`), or `init_app` refuses it.",
           per_source=True, only_with=SYNC),
    Option("RESOLVE_STATUS", "Complete", str,
           "Status label a ticket is set to when its alert is resolved in ilert (unless its last known "
           "class is `CLOSED`). Must be of class `CLOSED` (`STATUS_LABELS`), or `init_app` refuses it; "
           "see [sync.md](sync.md#what-it-does).", per_source=True, only_with=SYNC),
    Option("NOTE_TITLE", "ilert", str, "Title of the ticket notes the bridge adds. May use the fields "
           "below.",
           per_source=True, only_with=SYNC, check=Template(NOTE_FIELDS)),
    Option("ACCEPT_NOTE", "Alert {alert_id} accepted in ilert by {who} at {when}.", str,
           "Text of the note added when an alert is accepted in ilert. Fields: `{who}`, `{when}`, "
           "`{alert_id}`, `{alert_url}` ([sync.md](sync.md#what-it-does)).",
           per_source=True, only_with=SYNC, check=Template(NOTE_FIELDS)),
    Option("RESOLVE_NOTE", "Alert {alert_id} resolved in ilert by {who} at {when}.", str,
           "Text of the note added when an alert is resolved in ilert; the same fields.",
           per_source=True, only_with=SYNC, check=Template(NOTE_FIELDS)),
    Option("NOTE_TYPE", None, str,
           "Note type label, from the tenant's `TicketNotes.noteType` picklist. Unset: the tenant's "
           "default note type.", per_source=True, only_with=SYNC),
    Option("NOTE_PUBLISH", None, str,
           "Publish label, from the tenant's `TicketNotes.publish` picklist (for example `Internal Only`). "
           "Unset: the tenant's default.",
           per_source=True, only_with=SYNC),
    Option("TICKET_UPDATER", None, "object",
           "Replaces the Autotask write: a callable, a class (instantiated once per process), or the "
           "import path of either, `package.module:name`. It receives a `TicketUpdate`; see "
           "[sync.md](sync.md#ticket_updater-replacing-the-autotask-write). With it, a bidirectional "
           "source needs no Autotask credentials.", per_source=True, only_with=SYNC, check=IsCallable()),
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
    "list": _parse_tokens,
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
    rate_limit: str | None = None
    #: Signs Autotask's webhook deliveries to this source; None: webhooks are off for it.
    webhook_secret: str | None = field(default=None, repr=False)
    #: Extra Autotask query conditions of the reconciliation sweep (RECONCILE_FILTER).
    reconcile_filter: tuple[Mapping[str, Any], ...] = ()
    #: The source's own alert text (SUMMARY_TEMPLATE, ...), None for the default text.
    templates: AlertTemplates | None = field(default=None, repr=False)
    #: ROUTES, in order (routing.py).
    routes: tuple[Route, ...] = field(default=(), repr=False)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret value of this source, for redaction."""
        values = [*self.callout_tokens, self.ilert_integration_key, self.callout_password or "",
                  *(route.integration_key for route in self.routes)]
        if self.autotask:
            values += [self.autotask.secret, self.autotask.integration_code]
        if self.sync:
            values += self.sync.secrets
        if self.webhook_secret:
            values.append(self.webhook_secret)
        return tuple(v for v in values if v)


@dataclass(frozen=True)
class Settings:
    """The application-wide options, one field each (see ``Option.setting``), and the sources."""

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
    enrich_deadline_ms: int
    http_connect_timeout: float
    http_read_timeout: float
    autotask_zone_lookup_url: str
    autotask_concurrency: int
    autotask_threshold_share: float
    autotask_threshold_check_ms: int
    sources: Mapping[str, SourceConfig]
    metrics_token: str | None = field(default=None, repr=False)
    metrics_include_process: bool = False
    ready_heartbeat_seconds: float = 30.0
    ready_queue_age_seconds: float = 300.0
    log_format: str = "text"
    autotask_allowed_hosts: tuple[str, ...] = ("autotask.net",)
    reconcile_interval_seconds: float = 300.0
    entity_cache_ms: int = 3_600_000
    clock_skew_ms: int = 300_000

    @property
    def http_timeout(self) -> tuple[float, float]:
        """(connect, read), as requests takes them."""
        return (self.http_connect_timeout, self.http_read_timeout)

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
            if name and expected and same_secret(header(name) or "", expected):
                found = source
        return found

    @property
    def secrets(self) -> tuple[str, ...]:
        values = [s for source in self.sources.values() for s in source.secrets]
        return (*values, self.metrics_token) if self.metrics_token else tuple(values)


def _priority(value: Any) -> Priority:
    return value if isinstance(value, Priority) else Priority(str(value).strip().upper())


def same_secret(given: str, expected: str) -> bool:
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
            if same_secret(given, token):
                found = source
    return found


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigurationError(message)


def _check(option: Option, value: Any, name: str) -> None:
    """Raise when ``value`` breaks the option's constraint; ``name`` is how the message names it."""
    problem = option.problem(value)
    _require(problem is None, f"{name} {problem}")


def _build_source(name: str, raw: Mapping[str, Any]) -> SourceConfig:
    """One source from its merged values: each option checked, then the rules across options."""
    where = f"source {name!r}"

    def value(option_name: str) -> Any:
        return raw.get(option_name.lower(), OPTIONS_BY_NAME[option_name].default)

    _require(bool(_SOURCE_NAME.match(name)),
             f"{where}: a name is 1-64 letters, digits, '_', '.' or '-'")
    for option in OPTIONS:
        if option.per_source and (option.only_with is None or value(option.only_with)):
            _check(option, value(option.name), f"{where}: {option.name}")
    tokens = value("CALLOUT_TOKEN") or ()
    _require(bool(tokens), f"{where}: set a callout token ({PREFIX}CALLOUT_TOKEN or "
                           "'callout_token' in the source)")
    key = value("ILERT_INTEGRATION_KEY")
    _require(bool(key), f"{where}: set the ilert integration key ({PREFIX}ILERT_INTEGRATION_KEY)")
    username, password = value("CALLOUT_USERNAME"), value("CALLOUT_PASSWORD")
    _require(bool(username) == bool(password),
             f"{where}: CALLOUT_USERNAME and CALLOUT_PASSWORD go together")
    rate_limit = value("RATE_LIMIT") or None
    if rate_limit is not None and str(rate_limit).strip().lower() == "off":
        rate_limit = None

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

    webhook_secret = value("AUTOTASK_WEBHOOK_SECRET") or None
    _require(webhook_secret is None or autotask is not None,
             f"{where}: AUTOTASK_WEBHOOK_SECRET needs the AUTOTASK_* credentials (Autotask webhooks "
             "send the status as a picklist id, which is read from the tenant)")

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
    reconcile_filter = value("RECONCILE_FILTER") or []
    _require(isinstance(reconcile_filter, list)
             and all(isinstance(c, Mapping) and "op" in c for c in reconcile_filter),
             f"{where}: RECONCILE_FILTER must be a list of Autotask query conditions "
             "(objects with an \"op\")")

    text = {"summary_template": value("SUMMARY_TEMPLATE"), "details_template": value("DETAILS_TEMPLATE"),
            "custom_details": value("CUSTOM_DETAILS")}
    try:
        templates = build(*text.values())
    except TemplateProblem as exc:
        raise ConfigurationError(f"{where}: {exc}") from None
    try:
        routes = parse_routes(value("ROUTES"), text)
    except ValueError as exc:
        raise ConfigurationError(f"{where}: ROUTES {exc}") from None

    sync = _build_sync(where, value, autotask is not None) if value(SYNC) else None
    if sync is not None:
        problems = written_label_problems(classify, sync.accept_status, sync.resolve_status)
        _require(not problems, f"{where}: {'; '.join(problems)}")
    return SourceConfig(
        reconcile_filter=tuple(reconcile_filter),
        templates=templates,
        routes=routes,
        sync=sync,
        name=name,
        callout_tokens=tuple(tokens),
        callout_username=username,
        callout_password=password,
        ilert_api_url=str(value("ILERT_API_URL")).rstrip("/"),
        ilert_integration_key=str(key),
        ilert_rate_limit=value("ILERT_RATE_LIMIT"),
        ilert_rate_window=value("ILERT_RATE_WINDOW_SECONDS"),
        autotask=autotask,
        classify=classify,
        priority=priority,
        realert_on_reopen=_parse_bool(value("REALERT_ON_REOPEN")),
        rate_limit=str(rate_limit) if rate_limit is not None else None,
        webhook_secret=webhook_secret,
    )


def _build_sync(where: str, value: Callable[[str], Any], has_autotask: bool) -> SyncSettings:
    tokens = tuple(value("WEBHOOK_TOKEN") or ())
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
    _require(has_autotask or updater is not None,
             f"{where}: BIDIRECTIONAL writes to Autotask: set the AUTOTASK_* credentials or a "
             "TICKET_UPDATER")
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
    """Settings from constructor options, then app.config, then defaults; invalid -> ConfigurationError.

    Each application-wide option is checked and put into its Settings field;
    the sources are built from the flat per-source values and each source's own.
    """
    unknown = sorted(k for k in overrides if k.upper() not in OPTIONS_BY_NAME)
    _require(not unknown, f"unknown AutotaskIlert option(s): {', '.join(unknown)}")
    unknown = sorted(k for k in config if k.startswith(PREFIX)
                     and k[len(PREFIX):] not in OPTIONS_BY_NAME)
    _require(not unknown, f"unknown config key(s): {', '.join(unknown)}")

    def get(option: Option) -> Any:
        if option.name.lower() in overrides:
            return parse(option, overrides[option.name.lower()])
        return parse(option, config.get(option.key, option.default))

    values = {option.name: get(option) for option in OPTIONS}
    fields: dict[str, Any] = {}
    for option in OPTIONS:
        if option.per_source:
            continue
        value = values[option.name]
        _check(option, value, option.key)
        if option.setting is not None:
            fields[option.setting] = option.convert(value) if option.convert else value
    sources = _load_sources(values)
    _check_autotask_urls(fields["autotask_allowed_hosts"], fields["autotask_zone_lookup_url"],
                         sources.values())
    return Settings(**fields, sources=sources)


def _load_sources(values: Mapping[str, Any]) -> dict[str, SourceConfig]:
    """Every source, from the flat values (the ``default`` source's, inherited by all) and its own."""
    flat = {o.name.lower(): values[o.name] for o in OPTIONS if o.per_source}
    sources_raw: dict[str, Any] = {}
    if values["CALLOUT_TOKEN"] or values["ILERT_INTEGRATION_KEY"]:
        sources_raw[DEFAULT_SOURCE] = {}
    if values["SOURCES_FILE"]:
        sources_raw.update(_read_sources_file(values["SOURCES_FILE"]))
    sources_raw.update(values["SOURCES"] or {})
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
    return sources


def _check_autotask_urls(
    suffixes: tuple[str, ...], lookup_url: str, sources: Iterable[SourceConfig]
) -> None:
    """Every configured Autotask URL must be https under an allowed suffix (or on loopback).

    The zone lookup URL counts only for a source that looks its zone up: it
    receives the API user's name.
    """
    urls: list[tuple[str, str, str | None]] = []
    for source in sources:
        if source.autotask is not None:
            urls += [("AUTOTASK_API_URL", f"source {source.name!r}: ", source.autotask.api_url),
                     ("AUTOTASK_WEB_URL", f"source {source.name!r}: ", source.autotask.web_url)]
            if not source.autotask.api_url:
                urls.append(("AUTOTASK_ZONE_LOOKUP_URL", "", lookup_url))
    for name, where, url in urls:
        problem = url and url_problem(url, suffixes)
        _require(not problem,
                 f"{where}{PREFIX}{name}: {problem}; the Autotask credentials go only to "
                 f"https hosts under {PREFIX}AUTOTASK_ALLOWED_HOSTS "
                 f"({', '.join(suffixes) or 'none'}), or to loopback addresses")
