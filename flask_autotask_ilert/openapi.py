"""The OpenAPI description of the blueprint's endpoints, served at ``{prefix}/openapi.json``.

Generated with apispec from the same marshmallow schemas that validate the
bodies (``schemas.py``), plus the schemas of the answers below, so it cannot
drift from what the views accept. Every status an endpoint can answer is
listed (docs/lifecycle.md#http-answers and docs/sync.md list them in prose);
tests/test_hostile_input.py runs schemathesis against it.

The description names no token, key or credential: the path tokens are
described only as secrets.
"""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, fields, validate

from .config import Settings
from .lifecycle import Action, State, SyncAction
from .schemas import FORM, ILERT_STATUSES, JSON, AlertWebhookSchema, AutotaskWebhookSchema, CalloutSchema
from .version import __version__

_STATES = [s.value for s in State]
_CALLOUT_ACTIONS = [a.value for a in Action] + ["stale"]
_WEBHOOK_ACTIONS = [a.value for a in SyncAction] + ["ignored"]


class CalloutAnswerSchema(Schema):
    ticket = fields.Integer(required=True, metadata={"description": "The ticket id of the callout."})
    action = fields.String(required=True, validate=validate.OneOf(_CALLOUT_ACTIONS))
    state = fields.String(
        required=True, validate=validate.OneOf(_STATES),
        metadata={"description": "The ticket's stored state after the callout."},
    )


class WebhookAnswerSchema(Schema):
    ticket = fields.Integer(required=True, allow_none=True)
    action = fields.String(required=True, validate=validate.OneOf(_WEBHOOK_ACTIONS))
    state = fields.String(required=True, allow_none=True, validate=validate.OneOf(_STATES))


_HOOK_ACTIONS = [*_CALLOUT_ACTIONS, "duplicate", "ignored", "deactivated"]


class AutotaskWebhookAnswerSchema(Schema):
    ticket = fields.Integer(metadata={"description": "The ticket id of the delivery."})
    action = fields.String(required=True, validate=validate.OneOf(_HOOK_ACTIONS))
    state = fields.String(validate=validate.OneOf(_STATES),
                          metadata={"description": "The ticket's stored state, when it was applied."})
    reason = fields.String(metadata={"description": "Why an ignored delivery was ignored."})


class ErrorSchema(Schema):
    code = fields.String(required=True, metadata={"example": "invalid_payload"})
    message = fields.String(required=True)
    errors = fields.Dict(
        required=True, metadata={"description": "Field name -> messages (empty when not about fields)."}
    )


class HealthSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["ok", "unavailable"]))
    redis = fields.String(required=True, validate=validate.OneOf(["ok", "unreachable"]))


class ReadinessSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["ready", "not ready"]))
    checks = fields.Dict(
        required=True, metadata={"description": "redis, worker, queue: each with ok and, if not, error."}
    )


def _json(ref: str) -> dict[str, Any]:
    return {JSON: {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


def _error(description: str, **headers: str) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": _json("Error")}
    if headers:
        response["headers"] = {
            name: {"description": text, "required": True, "schema": {"type": "string"}}
            for name, text in headers.items()
        }
    return response


_NOT_FOUND = {
    "description": "No source has this token: the app's ordinary 404 answer, as for any unknown URL "
    "(its body and content type are the host app's).",
}
_TOKEN = {
    "name": "token",
    "in": "path",
    "required": True,
    "description": "The secret token of the alert source (never listed here).",
    "schema": {"type": "string"},
}
_RETRY_AFTER = "Seconds to wait before trying again."
_UNAUTHORIZED = _error(
    "HTTP Basic credentials (or the webhook header) are required and missing or wrong.",
    **{"WWW-Authenticate": "Basic realm=\"autotask-ilert\""},
)
_TOO_LARGE = _error("The body is larger than MAX_BODY_BYTES.")
_TOO_MANY = _error("RATE_LIMIT of this source is used up (600 a minute by default); "
                   "nothing was recorded.", **{"Retry-After": _RETRY_AFTER})
_UNAVAILABLE = _error("Redis cannot be reached: the request may not have been recorded (usually it was "
                      "not; after a Redis timeout it may have been). Sending it again is safe.",
                      **{"Retry-After": _RETRY_AFTER})


def _callout_operation() -> dict[str, Any]:
    callout = {"$ref": "#/components/schemas/Callout"}
    return {
        "summary": "An Autotask Extension Callout (ticket created or edited)",
        "operationId": "callout",
        "parameters": [_TOKEN],
        "requestBody": {
            "required": True,
            "content": {FORM: {"schema": callout}, JSON: {"schema": callout}},
        },
        "responses": {
            "202": {"description": "An ilert event was scheduled (create, accept or resolve).",
                    "content": _json("CalloutAnswer")},
            "200": {"description": "Nothing changes (nothing, or stale).",
                    "content": _json("CalloutAnswer")},
            "400": {
                "description": "The body is malformed or a field is invalid (an error), or a closed or "
                "waiting status for a ticket without an alert (action reject).",
                "content": {JSON: {"schema": {"anyOf": [
                    {"$ref": "#/components/schemas/Error"},
                    {"$ref": "#/components/schemas/CalloutAnswer"},
                ]}}},
            },
            "401": _UNAUTHORIZED,
            "404": _NOT_FOUND,
            "413": _TOO_LARGE,
            "415": _error("The content type is neither form-encoded nor JSON."),
            "429": _TOO_MANY,
            "503": _UNAVAILABLE,
        },
    }


def _webhook_operation(with_token: bool) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "202": {"description": "A ticket write was scheduled (accept-ticket or resolve-ticket).",
                "content": _json("WebhookAnswer")},
        "200": {"description": "Nothing changes, or the alert is not one of this source's tickets "
                "(ignored).", "content": _json("WebhookAnswer")},
        "400": _error("The body is not a valid alert webhook."),
        "401": _UNAUTHORIZED,
        "413": _TOO_LARGE,
        "415": _error("The content type is not JSON."),
        "429": _TOO_MANY,
        "503": _UNAVAILABLE,
    }
    if with_token:
        responses["404"] = {"description": "No bidirectional source has this webhook token: the app's "
                            "ordinary 404 answer."}
    operation: dict[str, Any] = {
        "summary": "ilert's Webhook alert action: an alert was accepted or resolved",
        "operationId": "ilert_webhook_token" if with_token else "ilert_webhook",
        "requestBody": {"required": True, "content": _json("AlertWebhook")},
        "responses": responses,
    }
    if with_token:
        operation["parameters"] = [_TOKEN]
    else:
        operation["description"] = ("Without a token in the URL, the static header or the Basic "
                                    "credentials pick the source.")
    return operation


def _autotask_webhook_operation() -> dict[str, Any]:
    signature = {
        "name": "X-Hook-Signature", "in": "header", "required": True, "schema": {"type": "string"},
        "description": "sha1= and the base64 HMAC-SHA1 of the body (or of its .NET-escaped form), "
        "keyed with the source's AUTOTASK_WEBHOOK_SECRET; a Deactivated message may lack it.",
    }
    answer = _json("AutotaskWebhookAnswer")
    return {
        "summary": "An Autotask TicketWebhook delivery (ticket created, status or priority changed)",
        "operationId": "autotask_webhook",
        "description": "See docs/autotask-webhooks.md. Whatever is deliberately not acted on is "
        "answered 200, since Autotask retries other answers and disables a failing webhook.",
        "parameters": [_TOKEN, signature],
        "requestBody": {"required": True, "content": _json("AutotaskWebhook")},
        "responses": {
            "202": {"description": "An ilert event was scheduled (create, accept or resolve).",
                    "content": answer},
            "200": {"description": "Nothing to send: nothing, stale, reject, a repeated delivery "
                    "(duplicate), ignored (with a reason) or a Deactivated message (only logged).",
                    "content": answer},
            "400": _error("The body is not a valid webhook delivery."),
            "401": _error("X-Hook-Signature is missing or does not sign the body; nothing was recorded."),
            "404": {"description": "No source has this callout token, or the source has no "
                    "AUTOTASK_WEBHOOK_SECRET: the app's ordinary 404 answer."},
            "413": _TOO_LARGE,
            "415": _error("The content type is not JSON."),
            "429": _TOO_MANY,
            "503": _error("Redis, or Autotask's status picklist, cannot be reached; nothing was "
                          "recorded.", **{"Retry-After": _RETRY_AFTER}),
        },
    }


def _post_process(spec: dict[str, Any]) -> dict[str, Any]:
    """What the marshmallow fields cannot say by themselves."""
    schemas = spec["components"]["schemas"]
    callout = schemas["Callout"]["properties"]
    callout["status"]["pattern"] = r"\S"
    callout["status"]["description"] = "The ticket's status label (not blank)."
    for name in ("created_datetime", "last_activity_datetime"):
        callout[name]["description"] = ("Autotask's timestamp; an unreadable one counts as absent "
                                        "and never causes a rejection.")
    webhook = schemas["AlertWebhook"]["properties"]
    webhook["status"]["description"] = (
        f"One of {', '.join(ILERT_STATUSES)}, compared case-insensitively. A custom body may use "
        "the template names alertStatus, alertId, alertSummary and alertUrl instead."
    )
    webhook["id"] = {
        "description": "ilert's alert id (a string or a number, at most 64 characters).",
        "nullable": True,
        "default": None,
    }
    return spec


def build_spec(settings: Settings) -> dict[str, Any]:
    """The OpenAPI 3.0 description of the endpoints under this app's URL prefix."""
    spec = APISpec(
        title="flask-autotask-ilert",
        version=__version__,
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": "Autotask callouts in, ilert webhooks in; see docs/lifecycle.md."},
    )
    spec.components.schema("Callout", schema=CalloutSchema)
    spec.components.schema("AlertWebhook", schema=AlertWebhookSchema)
    spec.components.schema("CalloutAnswer", schema=CalloutAnswerSchema)
    spec.components.schema("WebhookAnswer", schema=WebhookAnswerSchema)
    spec.components.schema("AutotaskWebhook", schema=AutotaskWebhookSchema)
    spec.components.schema("AutotaskWebhookAnswer", schema=AutotaskWebhookAnswerSchema)
    spec.components.schema("Error", schema=ErrorSchema)
    spec.components.schema("Health", schema=HealthSchema)
    spec.components.schema("Readiness", schema=ReadinessSchema)
    spec.components.security_scheme("basic", {"type": "http", "scheme": "basic"})
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    prefix = settings.url_prefix
    optional_basic: list[dict[str, list[str]]] = [{}, {"basic": []}]
    callout = _callout_operation()
    callout["security"] = optional_basic
    spec.path(path=f"{prefix}/callout/{{token}}", operations={"post": callout})
    with_token = _webhook_operation(True)
    with_token["security"] = optional_basic
    spec.path(path=f"{prefix}/ilert/{{token}}", operations={"post": with_token})
    without = _webhook_operation(False)
    without["security"] = optional_basic
    spec.path(path=f"{prefix}/ilert", operations={"post": without})
    spec.path(path=f"{prefix}/autotask-webhook/{{token}}",
              operations={"post": _autotask_webhook_operation()})
    spec.path(
        path=f"{prefix}/healthz",
        operations={"get": {
            "summary": "Whether this web process can reach Redis",
            "operationId": "healthz",
            "responses": {
                "200": {"description": "Redis answers.", "content": _json("Health")},
                "503": {"description": "Redis does not answer.", "content": _json("Health")},
            },
        }},
    )
    spec.path(
        path=f"{prefix}/readyz",
        operations={"get": {
            "summary": "Whether the bridge can deliver: Redis answers, a worker is alive, the queue moves",
            "operationId": "readyz",
            "responses": {
                "200": {"description": "Ready.", "content": _json("Readiness")},
                "503": {"description": "Not ready; each check says what is wrong.",
                        "content": _json("Readiness")},
            },
        }},
    )
    spec.path(
        path=f"{prefix}/metrics",
        operations={"get": {
            "summary": "Prometheus metrics (text exposition, or OpenMetrics when asked for)",
            "operationId": "metrics",
            "security": [{}, {"bearer": []}],
            "responses": {
                "200": {"description": "The metrics.", "content": {
                    "text/plain": {"schema": {"type": "string"}},
                    "application/openmetrics-text": {"schema": {"type": "string"}},
                }},
                "401": _error("METRICS_TOKEN is set and the Bearer token is missing or wrong.",
                              **{"WWW-Authenticate": "Bearer realm=\"autotask-ilert\""}),
            },
        }},
    )
    spec.path(
        path=f"{prefix}/openapi.json",
        operations={"get": {
            "summary": "This description",
            "operationId": "openapi",
            "responses": {"200": {"description": "The OpenAPI document.",
                                  "content": {JSON: {"schema": {"type": "object"}}}}},
        }},
    )
    return _post_process(spec.to_dict())
