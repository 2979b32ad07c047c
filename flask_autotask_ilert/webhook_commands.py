"""``flask autotask-ilert webhook install|remove``: the Autotask TicketWebhook that feeds a source.

``install`` makes in Autotask what docs/autotask-webhooks.md describes: a
TicketWebhook delivering to ``{prefix}/autotask-webhook/<callout token>``, signed
with the source's ``AUTOTASK_WEBHOOK_SECRET``, triggered by a ticket's creation
and by changes of its status or priority, with the status and ticket number in
every delivery, and the bridge's own API user excluded (its writes, from
bidirectional sync, would only come back as echoes). Everything it needs is
checked before anything is created, and a webhook left half made is deleted.
The URL names the source, through its callout token; like every command, these
print no secret (the token in the URL shows as ``***``).
"""

from __future__ import annotations

from contextlib import suppress
from urllib.parse import urlsplit

import click
from flask.cli import with_appcontext

from .autotask import AutotaskClient, AutotaskError
from .bridge import Bridge, get_bridge
from .config import SourceConfig
from .http import redact

PATH_MARK = "/autotask-webhook/"
#: (field, subscribed: a change triggers a delivery, always: sent with every delivery)
FIELDS = (("status", True, True), ("priority", True, False), ("ticketNumber", False, True))


@click.group("webhook")
def webhook_group() -> None:
    """Autotask REST webhooks (TicketWebhooks) for a source with AUTOTASK_WEBHOOK_SECRET."""


def _say(bridge: Bridge, text: str, err: bool = False) -> None:
    click.echo(redact(text, bridge.settings.secrets), err=err)


def _target(bridge: Bridge, url: str) -> tuple[SourceConfig, AutotaskClient]:
    """The source the URL delivers to (by its callout token), and that source's Autotask client."""
    path = urlsplit(url).path
    head, mark, token = path.rpartition(PATH_MARK)
    source = bridge.settings.source_for_token(token) if mark and token and "/" not in token else None
    if source is None:
        raise click.BadParameter(
            f"expected https://<host>{bridge.settings.url_prefix}{PATH_MARK}<callout token> with the "
            "callout token of a configured source", param_hint="--url")
    if not head.endswith(bridge.settings.url_prefix):
        raise click.BadParameter(f"the path must start with the bridge's URL prefix "
                                 f"({bridge.settings.url_prefix})", param_hint="--url")
    if source.webhook_secret is None:
        raise click.ClickException(f"source {source.name!r} has no AUTOTASK_WEBHOOK_SECRET: set it "
                                   "first (it is the webhook's secret key)")
    client = bridge.autotask(source)
    assert client is not None  # validated at init_app: a webhook secret needs the credentials
    return source, client


def _fail(bridge: Bridge, what: str, exc: AutotaskError) -> click.ClickException:
    return click.ClickException(redact(f"{what}: {exc.message}", bridge.settings.secrets))


@webhook_group.command("install")
@click.option("--url", required=True, metavar="URL",
              help="Where Autotask delivers: https://<host><prefix>/autotask-webhook/<callout token>.")
@click.option("--name", default=None, help="The webhook's name in Autotask (default: 'ilert bridge "
                                           "(<source>)').")
@click.option("--email", default=None, help="notificationEmailAddress: who Autotask tells when the "
                                            "webhook fails or is deactivated.")
@click.option("--exclude-resource", type=click.IntRange(min=1), default=None, metavar="ID",
              help="The resource whose changes are not delivered (default: the bridge's API user, "
                   "looked up by its username).")
@with_appcontext
def install_command(url: str, name: str | None, email: str | None, exclude_resource: int | None) -> None:
    """Create the TicketWebhook that delivers a source's tickets to this bridge.

    Subscribes to ticket creation and to status and priority changes; the
    status and the ticket number ride along with every delivery. Prints what it
    made; exits 1 and creates nothing if a webhook already delivers to the URL.
    """
    bridge = get_bridge()
    source, client = _target(bridge, url)
    if urlsplit(url).scheme != "https":
        _say(bridge, "warning: Autotask delivers webhooks over HTTPS only", err=True)
    try:
        existing = client.ticket_webhooks(url)
        resource = exclude_resource or client.own_resource_id()
        field_ids = {f: client.label_to_value("TicketWebhookFields", "fieldID", f) for f, _, _ in FIELDS}
    except AutotaskError as exc:
        raise _fail(bridge, "Autotask", exc) from None
    if existing:
        ids = ", ".join(str(w.get("id")) for w in existing)
        raise click.ClickException(f"a TicketWebhook already delivers to this URL (id {ids}); "
                                   "`webhook remove --url ...` it first")
    if resource is None:
        raise click.ClickException("the API user's resource id was not found; give it with "
                                   "--exclude-resource")
    missing = sorted(f for f, i in field_ids.items() if i is None)
    if missing:
        raise click.ClickException(f"Autotask offers no webhook field {', '.join(missing)}")
    title = name or f"ilert bridge ({source.name})"
    fields = {
        "name": title, "webhookUrl": url, "deactivationUrl": url, "secretKey": source.webhook_secret,
        "isActive": True, "isSubscribedToCreateEvents": True, "isSubscribedToUpdateEvents": True,
        "isSubscribedToDeleteEvents": False, "sendThresholdExceededNotification": bool(email),
    }
    if email:
        fields["notificationEmailAddress"] = email
    try:
        webhook_id = client.create_ticket_webhook(fields)
    except AutotaskError as exc:
        raise _fail(bridge, "creating the webhook", exc) from None
    try:
        for field_name, subscribed, always in FIELDS:
            field_id = field_ids[field_name]
            assert field_id is not None
            client.add_ticket_webhook_field(webhook_id, field_id, subscribed=subscribed, always=always)
        client.exclude_webhook_resource(webhook_id, resource)
    except AutotaskError as exc:
        with suppress(AutotaskError):
            client.delete_ticket_webhook(webhook_id)
        raise _fail(bridge, f"setting up webhook {webhook_id} (deleted again)", exc) from None
    _say(bridge, f"created TicketWebhook {webhook_id} {title!r} for source {source.name}")
    _say(bridge, f"  delivers to:       {url}")
    _say(bridge, "  on:                ticket created; status or priority changed")
    _say(bridge, "  fields:            status (triggers, always sent), priority (triggers), "
                 "ticketNumber (always sent)")
    _say(bridge, f"  excluded resource: {resource} (its changes are not delivered)")
    _say(bridge, "  signed with:       the source's AUTOTASK_WEBHOOK_SECRET")


@webhook_group.command("remove")
@click.option("--url", required=True, metavar="URL", help="The URL given to `webhook install`.")
@with_appcontext
def remove_command(url: str) -> None:
    """Delete the TicketWebhook(s) delivering to URL; exits 1 if there is none."""
    bridge = get_bridge()
    _, client = _target(bridge, url)
    try:
        existing = client.ticket_webhooks(url)
        if not existing:
            raise click.ClickException("no TicketWebhook delivers to this URL")
        for webhook in existing:
            client.delete_ticket_webhook(int(webhook["id"]))
            _say(bridge, f"deleted TicketWebhook {webhook['id']} {webhook.get('name')!r}")
    except AutotaskError as exc:
        raise _fail(bridge, "Autotask", exc) from None
