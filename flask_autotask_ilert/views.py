"""HTTP in: the callout endpoint and health. Thin on purpose.

A callout goes: token -> alert source (404 if none), Basic credentials if the
source wants them (401), size (413), content type (415), body -> schema (400),
then ``callouts.handle_callout`` records it in one Redis round trip and the
answer goes back at once. Nothing here calls ilert or Autotask.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from typing import Any
from urllib.parse import parse_qsl

from flask import Blueprint, Response, current_app, jsonify, request
from marshmallow import ValidationError
from werkzeug.exceptions import (
    HTTPException,
    NotFound,
    RequestEntityTooLarge,
    Unauthorized,
    UnsupportedMediaType,
)

from . import signals
from .callouts import handle_callout
from .config import Settings, SourceConfig
from .errors import InvalidPayload, StoreUnavailable
from .schemas import load_alert_webhook, load_callout
from .sync import handle_webhook

logger = logging.getLogger("flask_autotask_ilert")

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
MAX_FORM_FIELDS = 64


def _bridge() -> Any:
    return current_app.extensions["autotask_ilert"]


def _basic_matches(username: str | None, password: str | None) -> bool:
    """Constant-time check of the request's Basic credentials against a configured pair."""
    auth = request.authorization
    basic = auth is not None and auth.type == "basic"
    given_user = ((auth.username if basic and auth else "") or "").encode("utf-8", "surrogateescape")
    given_pw = ((auth.password if basic and auth else "") or "").encode("utf-8", "surrogateescape")
    user_ok = hmac.compare_digest(given_user, (username or "").encode())
    password_ok = hmac.compare_digest(given_pw, (password or "").encode())
    return bool(username) and user_ok and password_ok


def _check_basic_auth(source: SourceConfig) -> None:
    if source.callout_username and not _basic_matches(
        source.callout_username, source.callout_password
    ):
        raise Unauthorized(www_authenticate=_basic_challenge())


def _basic_challenge() -> Any:
    from werkzeug.datastructures import WWWAuthenticate

    return WWWAuthenticate("basic", {"realm": "autotask-ilert"})


def _read_body(limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge()
    data = request.stream.read(limit + 1)
    if len(data) > limit:
        raise RequestEntityTooLarge()
    return data


def _decode(data: bytes) -> dict[str, Any]:
    """Form (what Autotask sends) or JSON, into a flat dict; anything else is 415/400."""
    mimetype = request.mimetype
    if mimetype not in (FORM, JSON):
        raise UnsupportedMediaType(f"Send {FORM} or {JSON}.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidPayload("The body is not valid UTF-8.") from None
    if mimetype == JSON:
        try:
            body = json.loads(text)
        except (ValueError, RecursionError):
            raise InvalidPayload("The body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise InvalidPayload("The body must be a JSON object.")
        return body
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except ValueError:
        raise InvalidPayload(f"Too many fields (at most {MAX_FORM_FIELDS}).") from None
    fields: dict[str, Any] = {}
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


def callout(token: str) -> tuple[Response, int]:
    started = time.perf_counter()
    bridge = _bridge()
    settings: Settings = bridge.settings
    source = settings.source_for_token(token)
    if source is None:
        raise NotFound()
    _check_basic_auth(source)
    body = _decode(_read_body(settings.max_body_bytes))
    try:
        parsed = load_callout(body)
    except ValidationError as exc:
        raise InvalidPayload("The callout is not valid.", _messages(exc)) from None
    answer = handle_callout(settings, bridge.store, source, parsed)
    if answer.http_status == 202:
        signals.send(signals.alert_scheduled, bridge.sender, source=source.name,
                     ticket=answer.ticket, action=answer.action, state=answer.state.value,
                     status=parsed.status)
    elif answer.action == "reject":
        signals.send(signals.callout_rejected, bridge.sender, source=source.name,
                     ticket=answer.ticket, status=parsed.status)
    logger.info(
        "callout source=%s ticket=%s status=%r action=%s state=%s->%s answer=%s ms=%.1f",
        source.name,
        answer.ticket,
        parsed.status,
        answer.action,
        answer.previous.value,
        answer.state.value,
        answer.http_status,
        (time.perf_counter() - started) * 1000,
    )
    return jsonify(answer.body()), answer.http_status


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
            raise Unauthorized(www_authenticate=_basic_challenge())
        source = found
    sync = source.sync
    assert sync is not None
    header_ok = not sync.header_name or settings.source_for_webhook_header(request.headers.get) is source
    basic_ok = not sync.username or _basic_matches(sync.username, sync.password)
    if not (header_ok and basic_ok):
        raise Unauthorized(www_authenticate=_basic_challenge())
    return source


def ilert_webhook(token: str | None = None) -> tuple[Response, int]:
    """ilert's alert-action webhook: alert status changes flow back into the ticket."""
    started = time.perf_counter()
    bridge = _bridge()
    settings: Settings = bridge.settings
    source = _webhook_source(settings, token)
    body = _read_body(settings.max_body_bytes)
    if request.mimetype != JSON:
        raise UnsupportedMediaType(f"Send {JSON}.")
    try:
        parsed = load_alert_webhook(_decode(body))
    except ValidationError as exc:
        raise InvalidPayload("The webhook is not valid.", _messages(exc)) from None
    answer = handle_webhook(settings, bridge.store, source, parsed)
    logger.info(
        "webhook source=%s alert=%s ticket=%s status=%s event=%s action=%s answer=%s ms=%.1f",
        source.name,
        parsed.alert_id,
        answer.ticket,
        parsed.status,
        parsed.event_type,
        answer.action,
        answer.http_status,
        (time.perf_counter() - started) * 1000,
    )
    return jsonify(answer.body()), answer.http_status


def _messages(exc: ValidationError) -> dict[str, Any]:
    messages = exc.messages
    return messages if isinstance(messages, dict) else {"_schema": messages}


def healthz() -> tuple[Response, int]:
    try:
        _bridge().store.ping()
    except StoreUnavailable:
        return jsonify({"status": "unavailable", "redis": "unreachable"}), 503
    return jsonify({"status": "ok", "redis": "ok"}), 200


# -- errors: registered on the blueprint only, never app-wide ------------------------


def _error_body(code: str, message: str, errors: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "errors": errors or {}}


def _invalid(exc: InvalidPayload) -> tuple[Response, int]:
    return jsonify(_error_body("invalid_payload", exc.description or "", exc.errors)), 400


def _unavailable(exc: StoreUnavailable) -> Response:
    logger.warning("store unavailable, request not recorded: %s", exc.reason)
    retry_after = _bridge().settings.retry_after_seconds
    response = jsonify(_error_body("store_unavailable", exc.description or ""))
    response.status_code = 503
    response.headers["Retry-After"] = str(retry_after)
    return response


def _http_error(exc: HTTPException) -> Any:
    """JSON for our own 401/413/415; 404 keeps the app's look so a bad token reveals nothing."""
    if isinstance(exc, NotFound) or exc.code is None:
        return exc
    response = jsonify(_error_body(exc.name.lower().replace(" ", "_"), exc.description or ""))
    response.status_code = exc.code
    for header, value in exc.get_headers():
        if header.lower() == "www-authenticate":
            response.headers[header] = value
    return response


def create_blueprint(settings: Settings) -> Blueprint:
    blueprint = Blueprint("autotask_ilert", __name__, url_prefix=settings.url_prefix)
    blueprint.add_url_rule("/callout/<token>", view_func=callout, methods=["POST"])
    blueprint.add_url_rule("/ilert/<token>", view_func=ilert_webhook, methods=["POST"])
    blueprint.add_url_rule("/ilert", view_func=ilert_webhook, methods=["POST"])
    blueprint.add_url_rule("/healthz", view_func=healthz, methods=["GET"])
    blueprint.register_error_handler(InvalidPayload, _invalid)
    blueprint.register_error_handler(StoreUnavailable, _unavailable)
    for code in (401, 413, 415):
        blueprint.register_error_handler(code, _http_error)
    return blueprint
