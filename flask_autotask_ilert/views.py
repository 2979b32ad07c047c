"""HTTP in: the callout endpoint and health. Thin on purpose.

A callout goes: token -> alert source (404 if none), Basic credentials if the
source wants them (401), size (413), content type (415), body -> schema (400),
then ``callouts.handle_callout`` records it in one Redis round trip and the
answer goes back at once. Nothing here calls ilert or Autotask, except that an
Autotask webhook's status id needs the tenant's picklist (cached by the client).
"""

from __future__ import annotations

import functools
import json
import logging
import re
import time
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any
from urllib.parse import parse_qsl

from flask import Blueprint, Response, g, jsonify, request
from marshmallow import ValidationError
from werkzeug.exceptions import (
    HTTPException,
    InternalServerError,
    NotFound,
    RequestEntityTooLarge,
    TooManyRequests,
    Unauthorized,
    UnsupportedMediaType,
)

import flask_autotask_ilert.logs as logs
import flask_autotask_ilert.metrics as metrics
import flask_autotask_ilert.signals as signals
import flask_autotask_ilert.signatures as signatures

from .autotask import AutotaskError
from .autotask_webhooks import handle_autotask_webhook
from .bridge import Bridge, get_bridge
from .callouts import handle_callout
from .config import Settings, SourceConfig, same_secret
from .errors import InvalidPayload, StoreUnavailable
from .health import readiness
from .lifecycle import State
from .schemas import DEACTIVATED, FORM, JSON, load_alert_webhook, load_autotask_webhook, load_callout
from .sync import handle_webhook

logger = logging.getLogger("flask_autotask_ilert")

MAX_FORM_FIELDS = 64
#: Deepest nesting of arrays and objects a JSON body may have. A callout is flat and
#: ilert's webhook nests two levels; checked before parsing, so the limit does not
#: rest on the parser's recursion guard.
MAX_JSON_DEPTH = 16
#: One token of the depth scan: a JSON string (an unterminated one runs to the end of the
#: text) or a bracket, captured. Letting an unterminated string end at the end, instead of
#: failing there, is what keeps the scan linear: a string pattern that can fail is tried
#: again from every later quote, rescanning the rest of the body each time.
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)|([\[\]{}])', re.DOTALL)
_DEPTH_STEP = {"": 0, "[": 1, "{": 1, "]": -1, "}": -1}


def _json_depth(text: str) -> int:
    """How deeply the arrays and objects of a JSON text nest (brackets in strings do not count).

    One pass over the text, with no backtracking across tokens, and the loops in C
    (re, map, accumulate): a hostile body at the size limit costs about what an
    ordinary one does.
    """
    steps = map(_DEPTH_STEP.__getitem__, _JSON_TOKEN.findall(text))
    return max(accumulate(steps, initial=0))


def _no_constant(name: str) -> Any:
    """NaN and Infinity are not JSON, whatever Python's parser allows."""
    raise ValueError(f"{name} is not JSON")


def _no_path_in_logs(view: Any) -> Any:
    """Log an unexpected error without the request path, which holds the source's token.

    Flask logs an unhandled exception as "Exception on <path>"; here it becomes a
    plain 500 (an HTTP error, which Flask does not log) after a line without the path.
    """

    @functools.wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except HTTPException:
            raise
        except Exception as exc:
            logger.exception("unexpected error in %s", request.endpoint)
            raise InternalServerError(original_exception=exc) from None

    return guarded


def _basic_matches(username: str | None, password: str | None) -> bool:
    """Constant-time check of the request's Basic credentials against a configured pair."""
    auth = request.authorization
    basic = auth is not None and auth.type == "basic"
    given_user = (auth.username if basic and auth else "") or ""
    given_pw = (auth.password if basic and auth else "") or ""
    user_ok = same_secret(given_user, username or "")
    password_ok = same_secret(given_pw, password or "")
    return bool(username) and user_ok and password_ok


def _check_basic_auth(source: SourceConfig) -> None:
    if source.callout_username and not _basic_matches(
        source.callout_username, source.callout_password
    ):
        raise Unauthorized(www_authenticate=_challenge("basic"))


def _challenge(scheme: str) -> Any:
    """The WWW-Authenticate answer of a 401 from these endpoints."""
    from werkzeug.datastructures import WWWAuthenticate

    return WWWAuthenticate(scheme, {"realm": "autotask-ilert"})


def _read_body(limit: int) -> bytes:
    length = request.content_length
    if length is not None and length > limit:
        raise RequestEntityTooLarge()
    data = request.stream.read(limit + 1)
    if len(data) > limit:
        raise RequestEntityTooLarge()
    return data


def _decode(data: bytes) -> dict[str, Any]:
    """Form (what Autotask sends) or JSON, into a flat dict; anything else is 415/400."""
    # The header as Autotask sends it needs no parsing (parameters, case) to be recognised.
    content_type = request.environ.get("CONTENT_TYPE")
    mimetype = content_type if content_type in (FORM, JSON) else request.mimetype
    if mimetype not in (FORM, JSON):
        raise UnsupportedMediaType(f"Send {FORM} or {JSON}.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidPayload("The body is not valid UTF-8.") from None
    if mimetype == JSON:
        if _json_depth(text) > MAX_JSON_DEPTH:
            raise InvalidPayload(f"The JSON body nests deeper than {MAX_JSON_DEPTH} levels.")
        try:
            body = json.loads(text, parse_constant=_no_constant)
        except (ValueError, RecursionError):
            raise InvalidPayload("The body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise InvalidPayload("The body must be a JSON object.")
        return body
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except ValueError:
        raise InvalidPayload(f"Too many fields (at most {MAX_FORM_FIELDS}).") from None
    fields: dict[str, Any] = dict(pairs)
    if len(fields) == len(pairs):  # no field given twice: nothing to compare
        return fields
    fields = {}
    repeated = set()
    for key, value in pairs:
        if key in fields and fields[key] != value:
            repeated.add(key)
        fields.setdefault(key, value)
    if repeated:
        raise InvalidPayload(
            "A field was given more than once with different values.",
            {key: ["Given more than once."] for key in sorted(repeated)},
        )
    return fields


def _check_rate(bridge: Bridge, source: SourceConfig, endpoint: str) -> None:
    """The source's RATE_LIMIT (600 a minute by default): over it, 429 before anything is read."""
    retry_after = bridge.rate_limiter.retry_after(source, endpoint)
    if retry_after is not None:
        raise TooManyRequests(f"Too many requests for this source; retry in {retry_after} s.",
                              retry_after=retry_after)


def _announce(
    bridge: Bridge, source: SourceConfig, http_status: int, ticket: int, action: str,
    state: State | None, status: str | None,
) -> None:
    """The host app's signal for a ticket change, however it came in (callout or Autotask webhook)."""
    if http_status == 202 and state is not None:
        signals.send(signals.alert_scheduled, bridge.sender, source=source.name,
                     ticket=ticket, action=action, state=state.value, status=status)
    elif action == "reject":
        signals.send(signals.callout_rejected, bridge.sender, source=source.name,
                     ticket=ticket, status=status)


@_no_path_in_logs
def callout(token: str) -> tuple[Response, int]:
    bridge = get_bridge()
    settings: Settings = bridge.settings
    source = settings.source_for_token(token)
    if source is None:
        raise NotFound()
    _note(source=source.name)
    _check_basic_auth(source)
    _check_rate(bridge, source, "callout")
    body = _decode(_read_body(settings.max_body_bytes))
    try:
        parsed = load_callout(body)
    except ValidationError as exc:
        raise InvalidPayload("The callout is not valid.", _messages(exc)) from None
    _note(ticket=parsed.ticket_id, status=parsed.status)
    answer = handle_callout(settings, bridge.store, source, parsed, request_id=_seen().request_id)
    http_status = answer.http_status
    _announce(bridge, source, http_status, answer.ticket, answer.action, answer.state, parsed.status)
    _note(action=answer.action, state=f"{answer.previous.value}->{answer.state.value}")
    return jsonify(answer.body()), http_status


def _webhook_source(settings: Settings, token: str | None) -> SourceConfig:
    """The bidirectional source a webhook belongs to, authenticated every way it asks for.

    With a token in the URL the token picks the source (unknown: an ordinary 404)
    and its header or Basic credentials, if configured, must match too. Without
    one, the static header or the Basic credentials pick the source (none: 401).
    """
    if token is not None:
        source = settings.source_for_webhook_token(token)
        if source is None:
            raise NotFound()
    else:
        found = settings.source_for_webhook_header(request.headers.get)
        if found is None:
            for candidate in settings.sources.values():
                sync = candidate.sync
                if sync and sync.username and _basic_matches(sync.username, sync.password):
                    found = candidate
        if found is None:
            raise Unauthorized(www_authenticate=_challenge("basic"))
        source = found
    sync = source.sync
    assert sync is not None
    header_ok = not sync.header_name or settings.source_for_webhook_header(request.headers.get) is source
    basic_ok = not sync.username or _basic_matches(sync.username, sync.password)
    if not (header_ok and basic_ok):
        raise Unauthorized(www_authenticate=_challenge("basic"))
    return source


@_no_path_in_logs
def ilert_webhook(token: str | None = None) -> tuple[Response, int]:
    """ilert's alert-action webhook: alert status changes flow back into the ticket."""
    bridge = get_bridge()
    settings: Settings = bridge.settings
    source = _webhook_source(settings, token)
    _note(source=source.name)
    _check_rate(bridge, source, "webhook")
    body = _read_body(settings.max_body_bytes)
    if request.mimetype != JSON:
        raise UnsupportedMediaType(f"Send {JSON}.")
    try:
        parsed = load_alert_webhook(_decode(body))
    except ValidationError as exc:
        raise InvalidPayload("The webhook is not valid.", _messages(exc)) from None
    _note(alert=parsed.alert_id, status=parsed.status, event_type=parsed.event_type)
    answer = handle_webhook(settings, bridge.store, source, parsed, request_id=_seen().request_id)
    _note(ticket=answer.ticket, action=answer.action,
          state=answer.state.value if answer.state else None)
    return jsonify(answer.body()), answer.http_status


def _json_or_problem(data: bytes) -> tuple[Any, str | None]:
    """The body's JSON value, or what is wrong with it (said only once the signature matched)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None, "The body is not valid UTF-8."
    if _json_depth(text) > MAX_JSON_DEPTH:
        return None, f"The JSON body nests deeper than {MAX_JSON_DEPTH} levels."
    try:
        return json.loads(text, parse_constant=_no_constant), None
    except (ValueError, RecursionError):
        return None, "The body is not valid JSON."


def _deactivation(parsed: Any) -> bool:
    action = parsed.get("Action", parsed.get("action")) if isinstance(parsed, dict) else None
    return isinstance(action, str) and action.strip().casefold() == DEACTIVATED.casefold()


@_no_path_in_logs
def autotask_webhook(token: str) -> tuple[Response, int]:
    """Autotask's TicketWebhook: the news of a callout, signed, as JSON (autotask_webhooks.py).

    The source's callout token picks it (no source, or no AUTOTASK_WEBHOOK_SECRET:
    404); the signature must match (401) before anything is read from the body.
    A ``Deactivated`` message, which Autotask may send unsigned, is only logged.
    """
    bridge = get_bridge()
    settings: Settings = bridge.settings
    source = settings.source_for_token(token)
    if source is None or source.webhook_secret is None:
        raise NotFound()
    _note(source=source.name)
    _check_rate(bridge, source, "autotask-webhook")
    raw = _read_body(settings.max_body_bytes)
    parsed, problem = _json_or_problem(raw)
    signed = signatures.verify(
        source.webhook_secret, request.headers.get(signatures.HEADER), raw, parsed
    )
    if _deactivation(parsed):
        _note(action="deactivated", signed=signed)
        logger.warning("Autotask deactivated a webhook of source %s (signed: %s): it delivers "
                       "nothing until it is active again in Autotask", source.name, signed)
        return jsonify({"action": "deactivated"}), 200
    if not signed:
        _note(reason="bad_signature")
        raise Unauthorized(f"The {signatures.HEADER} header is missing or does not sign this body.")
    if request.mimetype != JSON:
        raise UnsupportedMediaType(f"Send {JSON}.")
    if problem is not None:
        raise InvalidPayload(problem)
    if not isinstance(parsed, dict):
        raise InvalidPayload("The body must be a JSON object.")
    try:
        hook = load_autotask_webhook(parsed)
    except ValidationError as exc:
        raise InvalidPayload("The webhook delivery is not valid.", _messages(exc)) from None
    _note(ticket=hook.ticket_id, hook_action=hook.action, sequence=hook.sequence, person=hook.person_id)
    client = bridge.autotask(source)
    assert client is not None  # validated at init_app: webhooks need the Autotask credentials
    try:
        answer = handle_autotask_webhook(
            settings, bridge.store, source, hook, lambda: client.picklist("Tickets", "status"),
            request_id=_seen().request_id,
        )
    except AutotaskError as exc:
        _note(error="autotask_unavailable", reason=exc.message)
        response = jsonify(_error_body(
            "autotask_unavailable",
            "The tenant's status picklist could not be read from Autotask; nothing was recorded.",
        ))
        response.headers["Retry-After"] = str(settings.retry_after_seconds)
        return response, 503
    _announce(bridge, source, answer.http_status, answer.ticket, answer.action, answer.state, answer.status)
    state = (f"{answer.previous.value}->{answer.state.value}"
             if answer.previous is not None and answer.state is not None else None)
    _note(status=answer.status, action=answer.action, state=state, reason=answer.reason)
    return jsonify(answer.body()), answer.http_status


def _messages(exc: ValidationError) -> dict[str, Any]:
    messages = exc.messages
    return messages if isinstance(messages, dict) else {"_schema": messages}


def openapi_description() -> Response:
    """The OpenAPI description of these endpoints (openapi.py), built once per app."""
    bridge = get_bridge()
    spec = bridge.openapi
    if spec is None:
        from .openapi import build_spec

        spec = bridge.openapi = build_spec(bridge.settings)
    return jsonify(spec)


def healthz() -> tuple[Response, int]:
    try:
        get_bridge().store.ping()
    except StoreUnavailable:
        return jsonify({"status": "unavailable", "redis": "unreachable"}), 503
    return jsonify({"status": "ok", "redis": "ok"}), 200


def readyz() -> tuple[Response, int]:
    """Ready only when Redis answers, a worker is alive and the queue is not stuck."""
    bridge = get_bridge()
    ready, body = readiness(bridge.store, bridge.settings)
    return jsonify(body), 200 if ready else 503


def _bearer_matches(expected: str) -> bool:
    """Constant-time check of 'Authorization: Bearer <token>'."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    same = same_secret(given.strip(), expected)
    return scheme.lower() == "bearer" and same


def metrics_endpoint() -> Response:
    """Prometheus exposition; behind a Bearer token when METRICS_TOKEN is set."""
    bridge = get_bridge()
    token = bridge.settings.metrics_token
    if token and not _bearer_matches(token):
        raise Unauthorized(www_authenticate=_challenge("bearer"))
    body, content_type = metrics.render(bridge, request.headers.get("Accept"))
    return Response(body, content_type=content_type)


# -- one log line and one count per callout and webhook ---------------------------------

#: The endpoints that get a log line and a count, and what the line is called.
_OBSERVED = {"autotask_ilert.callout": "callout", "autotask_ilert.ilert_webhook": "webhook",
             "autotask_ilert.autotask_webhook": "autotask_webhook"}
_COUNT = {"callout": metrics.count_callout, "autotask_webhook": metrics.count_autotask_webhook}


@dataclass
class _Seen:
    """What is known about this request so far; the view and error handlers add to it."""

    request_id: str
    started: float
    fields: dict[str, Any] = field(default_factory=dict)


def _start() -> None:
    g.autotask_ilert_seen = _Seen(
        logs.request_id(request.headers.get(logs.REQUEST_ID_HEADER)), time.perf_counter()
    )


def _seen() -> _Seen:
    seen: _Seen | None = g.get("autotask_ilert_seen")
    if seen is None:  # a view called without the blueprint's hooks (not through a request)
        _start()
        seen = g.autotask_ilert_seen
    return seen


def _note(**fields: Any) -> None:
    _seen().fields.update(fields)


def _finish(response: Response) -> Response:
    """Log and count the request once, whatever answered it (view or error handler).

    The request id is echoed, except on a 404: an unknown token must look like
    any other unknown URL of the app.
    """
    seen: _Seen | None = g.get("autotask_ilert_seen")
    if seen is None:
        return response
    kind = _OBSERVED.get(request.endpoint or "")
    code = response.status_code
    if kind is not None:
        noted = seen.fields
        level = logging.WARNING if code >= 500 else logging.INFO
        if logs.logger.isEnabledFor(level):  # the line is only built when it is written
            fields = dict(noted)
            error, reason = fields.pop("error", None), fields.pop("reason", None)
            line = {"request_id": seen.request_id, **fields, "outcome": code,
                    "duration_ms": (time.perf_counter() - seen.started) * 1000,
                    "error": error, "reason": reason}
            logs.emit(level, kind, line, get_bridge().settings.log_format)
        count = _COUNT.get(kind, metrics.count_webhook)
        count(str(noted.get("source", "")), str(noted.get("action", "none")), code)
    if code != 404:
        response.headers[logs.REQUEST_ID_HEADER] = seen.request_id
    return response


# -- errors: registered on the blueprint only, never app-wide ------------------------


def _error_body(code: str, message: str, errors: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "errors": errors or {}}


def _invalid(exc: InvalidPayload) -> tuple[Response, int]:
    _note(error="invalid_payload")
    return jsonify(_error_body("invalid_payload", exc.description or "", exc.errors)), 400


def _unavailable(exc: StoreUnavailable) -> Response:
    _note(error="store_unavailable", reason=exc.reason)  # logged by _finish: not recorded
    retry_after = get_bridge().settings.retry_after_seconds
    response = jsonify(_error_body("store_unavailable", exc.description or ""))
    response.status_code = 503
    response.headers["Retry-After"] = str(retry_after)
    return response


def _http_error(exc: HTTPException) -> Any:
    """JSON for our own 401/413/415; 404 keeps the app's look so a bad token reveals nothing."""
    if isinstance(exc, NotFound) or exc.code is None:
        return exc
    code = exc.name.lower().replace(" ", "_")
    response = jsonify(_error_body(code, exc.description or ""))
    response.status_code = exc.code
    _note(error=code)
    for header, value in exc.get_headers():
        if header.lower() in ("www-authenticate", "retry-after"):
            response.headers[header] = value
    return response


def create_blueprint(settings: Settings) -> Blueprint:
    blueprint = Blueprint("autotask_ilert", __name__, url_prefix=settings.url_prefix)
    blueprint.add_url_rule("/callout/<token>", view_func=callout, methods=["POST"])
    blueprint.add_url_rule("/ilert/<token>", view_func=ilert_webhook, methods=["POST"])
    blueprint.add_url_rule("/ilert", view_func=ilert_webhook, methods=["POST"])
    blueprint.add_url_rule("/autotask-webhook/<token>", view_func=autotask_webhook, methods=["POST"])
    blueprint.add_url_rule("/healthz", view_func=healthz, methods=["GET"])
    blueprint.add_url_rule("/openapi.json", view_func=openapi_description, methods=["GET"])
    blueprint.add_url_rule("/readyz", view_func=readyz, methods=["GET"])
    blueprint.add_url_rule("/metrics", view_func=metrics_endpoint, methods=["GET"])
    blueprint.before_request(_start)
    blueprint.after_request(_finish)
    blueprint.register_error_handler(InvalidPayload, _invalid)
    blueprint.register_error_handler(StoreUnavailable, _unavailable)
    for code in (401, 413, 415, 429, 500):
        blueprint.register_error_handler(code, _http_error)
    return blueprint
