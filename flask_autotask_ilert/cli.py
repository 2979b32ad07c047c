"""``flask autotask-ilert ...``: the commands an operator runs.

Every command prints what a person needs to act and exits non-zero when
something is wrong, so it can also be scripted. No command ever prints a
token, key, password or secret: all output passes through the same
redaction as the logs.
"""

from __future__ import annotations

import json
import signal
import threading
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import click
from flask.cli import with_appcontext

import flask_autotask_ilert.reconcile as reconcile
import flask_autotask_ilert.reports as reports

from .bridge import Bridge, get_bridge
from .checks import FAIL, Result, check_app, check_autotask, check_content, check_ilert, summary
from .config import SourceConfig
from .content import explain as explain_route
from .errors import AutotaskIlertError, StoreUnavailable
from .http import redact
from .metrics import serve
from .webhook_commands import webhook_group
from .worker import Worker


class _OneLineErrors(click.Group):
    """A Redis that does not answer ends any command with one line saying what to check and
    exit code 1, not a traceback. A broken configuration already does (ConfigurationError
    is a click error); ilert and Autotask failures are reported by the commands that call
    them (check, simulate), and a running worker retries them."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except StoreUnavailable as exc:
            raise click.ClickException(
                f"Redis does not answer ({exc.reason or 'no reason given'}): check "
                f"AUTOTASK_ILERT_REDIS_URL and that Redis is running") from None


@click.group("autotask-ilert", cls=_OneLineErrors)
def cli_group() -> None:
    """The Autotask -> ilert bridge."""


@cli_group.command("worker")
@click.option("--threads", type=int, default=None, help="Delivery threads (default: WORKER_THREADS).")
@click.option("--burst", is_flag=True, help="Deliver what is due now, then exit (no heartbeat).")
@click.option("--metrics-port", type=int, default=None,
              help="Serve this worker's Prometheus metrics on this port (default: not served).")
@click.option("--metrics-addr", default="127.0.0.1", show_default=True,
              help="Address for --metrics-port.")
@with_appcontext
def worker_command(
    threads: int | None, burst: bool, metrics_port: int | None, metrics_addr: str
) -> None:
    """Deliver queued events to ilert until stopped (SIGTERM or Ctrl-C).

    Run as many workers as you like, on as many hosts as you like: they share
    the work through Redis, and per-ticket order holds. A running worker writes
    a heartbeat to Redis every few seconds, which readyz checks.
    """
    bridge = get_bridge()
    worker = Worker(bridge, threads=threads)
    where = f"worker: redis {bridge.redis.describe()}"  # the password hidden
    if metrics_port is not None:
        serve(bridge, metrics_port, metrics_addr)
        click.echo(f"worker: metrics on http://{metrics_addr}:{metrics_port}/metrics", err=True)
    if burst:
        count = worker.drain(timeout=3600)  # an unreachable Redis ends it with one line
        click.echo(where, err=True)
        click.echo(f"delivered or settled {count} queued item(s)")
        return
    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        click.echo(f"worker: signal {signum}, finishing the events in hand", err=True)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    sources = ", ".join(bridge.settings.sources)
    click.echo(where, err=True)  # not pinged: a running worker waits for a Redis that is down
    click.echo(f"worker: {worker.threads} thread(s), source(s) {sources}", err=True)
    worker.run(stop)


@cli_group.command("queue")
@click.option("--limit", type=click.IntRange(min=0), default=10, show_default=True,
              help="How many of the oldest waiting tickets to list.")
@with_appcontext
def queue_command(limit: int) -> None:
    """Tickets with undelivered events, the oldest of them, workers and dead letters (JSON).

    tickets: tickets with undelivered events; most_overdue_ms: how long the most
    overdue one has been due without a worker taking it; oldest_event_age_s: age
    of the oldest undelivered event; workers: workers with a recent heartbeat;
    oldest: the tickets whose events have waited longest.
    """
    bridge = get_bridge()
    report = reports.queue_report(bridge.store, bridge.settings, limit)
    click.echo(_safe(bridge, json.dumps(report, indent=2)))


# -- helpers -------------------------------------------------------------------------------


def _safe(bridge: Bridge, text: str) -> str:
    """Every line a command prints passes here: no configured secret gets out."""
    return redact(text, bridge.settings.secrets)


def _when(ms: int | float | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ago(now_ms: int, ms: int) -> str:
    seconds = (now_ms - ms) / 1000
    if seconds < 0:
        return f"in {_duration(-seconds)}"
    return f"{_duration(seconds)} ago"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} days"


def _sources(bridge: Bridge, source: str | None) -> list[SourceConfig]:
    """The sources a command looks at: the one named, or all of them."""
    sources = bridge.settings.sources
    if source is None:
        return list(sources.values())
    if source not in sources:
        raise click.BadParameter(f"no alert source {source!r} (configured: "
                                 f"{', '.join(sorted(sources))})", param_hint="--source")
    return [sources[source]]


_source_option = click.option(
    "--source", default=None, metavar="NAME", help="Alert source (default: every source)."
)


# -- check -------------------------------------------------------------------------------


@cli_group.command("check")
@_source_option
@with_appcontext
def check_command(source: str | None) -> None:
    """Check the configuration against Redis, ilert and Autotask; PASS/FAIL per source.

    Per source: ilert is sent one RESOLVE event for an alert key no alert has
    (it proves the integration key and changes nothing, but counts against the
    key's 50 events a minute); Autotask is asked for the zone, the API usage
    (ThresholdInformation, which proves the credentials) and the ticket
    picklists, plus the note picklists for a bidirectional source. Alert text
    templates are rendered with a sample ticket, and each ROUTES rule's labels
    and key are checked the same way. Exits 1 if any check fails.
    """
    bridge = get_bridge()
    results: list[Result] = []

    def show(result: Result, indent: str = "") -> None:
        results.append(result)
        colour = {"PASS": "green", "FAIL": "red", "WARN": "yellow"}.get(result.status)
        status = click.style(f"{result.status:<4}", fg=colour, bold=result.status == FAIL)
        click.echo(f"{indent}{status}  {result.what:<22} {_safe(bridge, result.detail)}")

    for result in check_app(bridge):
        show(result)
    for config in _sources(bridge, source):
        click.echo(f"source {config.name}")
        show(check_ilert(bridge, config), "  ")
        for result in check_autotask(bridge, config):
            show(result, "  ")
        for result in check_content(bridge, config):
            show(result, "  ")
    failed, line = summary(results)
    click.echo(click.style(line, fg="red" if failed else "green", bold=True))
    if failed:
        raise SystemExit(1)


# -- one ticket ------------------------------------------------------------------------------


@cli_group.command("status")
@click.argument("ticket", type=click.IntRange(min=1))
@_source_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@with_appcontext
def status_command(ticket: int, source: str | None, as_json: bool) -> None:
    """What the bridge knows about one ticket: state, queued events, audit trail.

    The audit trail (newest first) answers "why did this ticket not page?":
    each callout and webhook with what it did, each delivery, retry and dead
    letter. Exits 1 if no source knows the ticket.
    """
    bridge = get_bridge()
    names = [c.name for c in _sources(bridge, source)]
    found = reports.ticket_reports(bridge.store, names, ticket)
    if as_json:
        click.echo(_safe(bridge, json.dumps(found, indent=2)))
    now = bridge.store.now_ms()
    for report in [] if as_json else found:
        click.echo(_safe(bridge, _ticket_text(report, ticket, now)))
    if not found:
        click.echo(f"ticket {ticket}: no record, queued event, dead letter or audit trail "
                   f"in source(s) {', '.join(names)}", err=True)
        raise SystemExit(1)


def _ticket_text(report: dict[str, Any], ticket: int, now: int) -> str:
    """One source's report of a ticket, as `status` prints it."""
    lines = [f"ticket {ticket} (source {report['source']})"]
    state = report["state"]
    if report["status_class"]:
        state += f" (last status class {report['status_class']})"
    lines.append(f"  state        {state}")
    if report["expires_in_s"] is not None:
        lines.append(f"  forgotten    in {_duration(report['expires_in_s'])} (resolved tickets expire)")
    if report["queued"]:
        if report["leased"]:
            when = "a worker has it now"
        elif report["next_try_at"] is not None and report["next_try_at"] > now:
            when = f"next try {_ago(now, report['next_try_at'])}"
        else:
            when = "due now"
        lines.append(f"  queue        {len(report['queued'])} event(s), {when}")
        for n, e in enumerate(report["queued"], 1):
            at = e["queued_at"]
            lines.append(f"    {n}. {e['target']} {e['action']}, queued {_when(at)}"
                         f" ({_ago(now, at) if at else '?'}), {e['attempts']} failed attempt(s)")
    else:
        lines.append("  queue        nothing waiting")
    if report["dead_letters"]:
        lines.append(f"  dead         {report['dead_letters']} dead letter(s): "
                     f"see `dead-letters --ticket {ticket}`, `replay {ticket}`")
    lines.append("  audit trail  (newest first)" if report["audit"] else "  audit trail  empty")
    lines += [f"    {_when(a['at'] * 1000)}  {a['what']}" for a in report["audit"]]
    return "\n".join(lines)


@cli_group.command("forget")
@click.argument("ticket", type=click.IntRange(min=1))
@_source_option
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
def forget_command(ticket: int, source: str | None, yes: bool) -> None:
    """Delete a ticket's record, audit trail and queued events.

    The next callout for the ticket is then treated as the first one, and
    events still queued for it are never sent (one a worker is sending at that
    moment may still go out). Its dead letters stay (see dead-letters). Asks
    first, unless --yes. Exits 1 if nothing was found.
    """
    bridge = get_bridge()
    store = bridge.store
    found = reports.forget_candidates(store, [c.name for c in _sources(bridge, source)], ticket)
    if not found:
        click.echo(f"ticket {ticket}: nothing to forget", err=True)
        raise SystemExit(1)
    for _, what in found:
        click.echo(f"ticket {ticket}, {what}")
    if not yes:
        click.confirm(f"Forget ticket {ticket}? Queued events will not be sent", abort=True)
    for name, _ in found:
        store.forget(name, ticket)
        click.echo(f"forgot ticket {ticket} of source {name}")


# -- dead letters ---------------------------------------------------------------------------


@cli_group.command("dead-letters")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True,
              help="Show at most this many (the most recent).")
@click.option("--ticket", type=int, default=None, help="Only this ticket's.")
@_source_option
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON.")
@with_appcontext
def dead_letters_command(limit: int, ticket: int | None, source: str | None, as_json: bool) -> None:
    """Events given up on (ilert refused them for good, or a ticket write failed for good).

    Oldest first, the most recent --limit of them. Re-send them with `replay`
    once the cause is fixed.
    """
    bridge = get_bridge()
    records = [r for r in bridge.store.dead_letters() if reports.dead_matches(r, source, ticket)]
    shown = records[-limit:]
    if as_json:
        click.echo(_safe(bridge, json.dumps(shown, indent=2)))
        return
    if not records:
        click.echo("no dead letters")
        return
    click.echo(f"{len(records)} dead letter(s); showing {len(shown)}, oldest first:")
    for record in shown:
        event = record.get("event") or {}
        status, reason = record.get("status"), str(record.get("reason") or "no reason given")
        if status and f"http {status}" not in reason:
            reason += f" (http {status})"
        click.echo(_safe(bridge, (
            f"  {record.get('at', '?')}  source {event.get('source')}  ticket {event.get('ticket')}  "
            f"{event.get('target')} {event.get('action')}  {reason}"
        )))




@cli_group.command("replay")
@click.argument("ticket", type=click.IntRange(min=1), required=False)
@click.option("--all", "replay_all", is_flag=True, help="Replay every dead letter.")
@_source_option
@click.option("--force", is_flag=True,
              help="Replay even events the ticket has moved past (e.g. a create for a ticket "
                   "resolved since).")
@with_appcontext
def replay_command(ticket: int | None, replay_all: bool, source: str | None, force: bool) -> None:
    """Send dead letters again: one ticket's (TICKET) or all of them (--all).

    Each event goes back to the tail of its ticket's queue, in the order it
    died, and leaves the dead list in the same atomic step. An alert create or
    accept for a ticket resolved since stays dead unless --force. Exits 1 if
    TICKET has no dead letters.
    """
    if (ticket is None) == (not replay_all):
        raise click.UsageError("give a TICKET or --all (not both)")
    bridge = get_bridge()
    store = bridge.store
    chosen = reports.dead_to_replay(store, [c.name for c in _sources(bridge, source)], ticket)
    if not chosen:
        click.echo(f"no dead letters{'' if ticket is None else f' for ticket {ticket}'}")
        if ticket is not None:
            raise SystemExit(1)
        return
    outcomes: dict[str, list[dict[str, Any]]] = {"replayed": [], "moved-on": [], "gone": []}
    with click.progressbar(chosen, label=f"Replaying {len(chosen)} dead letter(s)") as bar:
        for raw, event in bar:
            outcomes[reports.replay_dead(store, raw, event, force)].append(event)
    done, moved_on, gone = len(outcomes["replayed"]), outcomes["moved-on"], len(outcomes["gone"])
    click.echo(f"replayed {done} event(s): the worker sends them in order")
    for event in moved_on:
        click.echo(f"kept dead: ticket {event.get('ticket')} {event.get('target')} "
                   f"{event.get('action')} (the ticket has moved on; --force replays it anyway)")
    if gone:
        click.echo(f"{gone} record(s) had already left the dead list (replayed by someone else?)")


# -- simulate -------------------------------------------------------------------------------

#: A ticket id no tenant is likely to have: the default sample changes nothing anyone sees.
SAMPLE_TICKET = 999_999_999


@cli_group.command("simulate")
@click.option("--url", required=True, metavar="URL",
              help="Where the app is served, e.g. https://portal.example.com (the URL prefix "
                   "and the token are added).")
@click.option("--webhook", is_flag=True, help="Send an ilert webhook instead of an Autotask callout.")
@_source_option
@click.option("--ticket", type=click.IntRange(min=1), default=SAMPLE_TICKET, show_default=True,
              help="Ticket id of the sample.")
@click.option("--status", default=None,
              help="Ticket status of a callout (default Complete: rejected for an unknown "
                   "ticket, so nothing is paged) or alert status of a webhook (default ACCEPTED: "
                   "ignored for an unknown ticket).")
@with_appcontext
def simulate_command(url: str, webhook: bool, source: str | None, ticket: int,
                     status: str | None) -> None:
    """Send a sample callout (or webhook) to a running bridge and print its answer.

    For setup checks: it proves that the URL, the proxy in front of the app, the
    token, any Basic credentials, Redis and the lifecycle work together. The
    defaults are harmless (an unknown ticket, a status that pages nobody); a
    real ticket id and status act for real. With ROUTES, it first says which
    rule the ticket meets (read from Autotask). The token is never printed. Exits 0
    when the bridge decided on the sample (200, 202, or the lifecycle's 400),
    1 otherwise.
    """
    bridge = get_bridge()
    settings = bridge.settings
    if source is None:
        candidates = [c for c in settings.sources.values() if not webhook or c.sync]
        if not candidates:
            raise click.UsageError("no bidirectional source: there is no webhook endpoint")
        config = next((c for c in candidates if c.name == "default"), candidates[0])
    else:
        config = _sources(bridge, source)[0]
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter("an http:// or https:// URL", param_hint="--url")
    if webhook and config.sync is None:
        raise click.BadParameter(f"source {config.name!r} is not bidirectional", param_hint="--source")
    base = reports.base_url(parts, settings)
    sample = (reports.webhook_sample(base, config, ticket, (status or "ACCEPTED").upper()) if webhook
              else reports.callout_sample(base, config, ticket, status or "Complete"))
    click.echo(f"POST {base}{sample.shown}  ({sample.what}, source {config.name})")
    if config.routes and not webhook:
        click.echo(explain_route(config, bridge.autotask(config), ticket, datetime.now(timezone.utc)))
    _show_answer(bridge, reports.send_sample(sample, settings.http_timeout))


def _show_answer(bridge: Bridge, answer: reports.SampleAnswer) -> None:
    """Print the bridge's answer to a sample; exit 1 unless the bridge decided on it."""
    if answer.status is None:
        click.echo(f"no answer: {answer.failure}: is the app served at --url?", err=True)
        raise SystemExit(1)
    click.echo(f"-> {answer.status} {answer.reason}"
               + (f"  (X-Request-Id {answer.request_id})" if answer.request_id else ""))
    click.echo(_safe(bridge, answer.text))
    if answer.redirected:
        click.echo("redirected: use the URL it points to (is it https?); the token was not re-sent",
                   err=True)
    if not answer.decided:
        click.echo("the bridge did not take the sample: check the URL, the prefix, the token and "
                   "the credentials (see the answer above)", err=True)
        raise SystemExit(1)
    click.echo(f"the bridge decided: {answer.action}")


@cli_group.command("reconcile")
@click.option("--since", help="Start of the window (ISO 8601, UTC without an offset). "
                              "Default: the last sweep's mark.")
@click.option("--dry-run", is_flag=True, help="Say what the sweep would do; change nothing.")
@click.option("--resolve-unknown", is_flag=True,
              help="Also RESOLVE closed tickets the store has no record of.")
@click.option("--source", default=None, help="Only this alert source.")
@with_appcontext
def reconcile_command(since: str | None, dry_run: bool, resolve_unknown: bool, source: str | None) -> None:
    """One reconciliation sweep now: tickets changed in Autotask go through the lifecycle."""
    bridge = get_bridge()
    try:
        start = reconcile.parse_since(since) if since else None
        for config in reconcile.sources(bridge, source, required=True):
            report = reconcile.run(bridge, config, since=start, dry_run=dry_run,
                                   resolve_unknown=resolve_unknown, progress=reconcile.progress_bar)
            for line in reconcile.describe(report, config.name, dry_run):
                click.echo(_safe(bridge, line))
    except (AutotaskIlertError, StoreUnavailable) as exc:
        raise click.ClickException(_safe(bridge, str(exc))) from None


cli_group.add_command(webhook_group)  # webhook install|remove (webhook_commands.py)
