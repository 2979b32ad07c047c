"""The whole path Autotask -> bridge -> ilert, on 127.0.0.1 only, from an installed package.

Run as ``python -m flask_autotask_ilert.testing.demo [--verbose]``. It needs no
account, no network and no Redis: ilert and Autotask are the simulators of
``flask_autotask_ilert.testing``, served on free local ports, and the bridge runs
in a minimal host app built here (``create_host_app``) on the in-process store
with its embedded worker. ``make demo`` runs the same story through the example
MSP portal instead (``examples/demo.py`` passes its ``create_app`` to ``main``).

The Autotask simulator plays the tenant's workflow rule, so every step below is
a real form-encoded callout over HTTP, answered by the real view, queued in the
real store and delivered by the real worker, which reads the ticket back from
the simulated REST API before it pages. Each step is checked, not just shown:
the exit code is 0 only if every answer and every ilert event was the expected
one, which is what lets ``tests/test_demo.py`` (and the wheel check of
``make dist-check``) keep this script honest.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from flask import Flask

from flask_autotask_ilert import AutotaskIlert, get_bridge
from flask_autotask_ilert.config import OPTIONS
from flask_autotask_ilert.testing.autotask_sim import (
    API_PREFIX,
    DEFAULT_CODE,
    DEFAULT_SECRET,
    DEFAULT_USER,
    AutotaskState,
    CalloutResult,
    create_autotask_simulator,
)
from flask_autotask_ilert.testing.ilert_sim import IlertState, ReceivedEvent, create_ilert_simulator
from flask_autotask_ilert.testing.servers import ServerThread

LIBRARY_LOGGER = "flask_autotask_ilert"
URL_PREFIX = "/autotask-ilert"
EVENT_TIMEOUT = 5.0  # an event normally arrives within a few worker polls (50 ms each)
SETTLE_SECONDS = 0.3  # how long "nothing arrived" is watched for after a no-op or a reject
_ID = re.compile(r"/\d+")
WORKER_THREAD_NAME = "autotask-ilert-worker"  # set by extension.start_embedded_worker
PROG = "python -m flask_autotask_ilert.testing.demo"

AppFactory = Callable[[dict[str, Any]], Flask]
"""Builds the host app from the demo's configuration (``AUTOTASK_ILERT_*`` keys)."""


def create_host_app(config: Mapping[str, Any]) -> Flask:
    """The smallest host app there is: a Flask app, its config, and the extension."""
    app = Flask("autotask_ilert_demo")
    app.config.update(config)
    AutotaskIlert(app)
    return app


# -- the script ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Ticket:
    """A ticket the demo creates in the simulated Autotask."""

    name: str
    title: str
    priority: str
    issue_type: str | None = None  # a label of the tenant's issueType picklist


@dataclass(frozen=True)
class Step:
    """One thing a person does in Autotask, and what must follow from it.

    A step either creates its ticket with a first status (``create``) or sets the
    status of the ticket created earlier; code, action and state are the bridge's
    expected answer to the callout that follows.
    """

    ticket: Ticket
    status: str
    create: bool
    caption: str
    code: int
    action: str
    state: str
    event: str | None  # the ilert eventType this step must cause, None for none


SERVER = Ticket("A", "Server DC01 unreachable", "Critical")
PRINTER = Ticket("B", "Printer on floor 2 offline", "Low")
QUOTE = Ticket("C", "Quote for a second firewall", "Medium")
VPN = Ticket("D", "VPN concentrator down", "Medium", issue_type="Network")

#: The demo's one routing rule, with its own alert text: network tickets page the network team.
#: ``integration_key`` is filled in by ``demo_config`` (it is a secret, made up per run).
NETWORK_RULE: dict[str, Any] = {
    "name": "network team",
    "match": {"issueType": ["Network"]},
    "summary_template": "{{ ticket.issueType }} ({{ ticket.queue }}): {{ ticket.title }}",
}
NETWORK_SUMMARY = "Network (Monitoring Alert): VPN concentrator down"

STEPS: tuple[Step, ...] = (
    Step(SERVER, "New", True, "", 202, "create", "PENDING", "ALERT"),
    Step(SERVER, "In Progress", False, "a technician starts work", 202, "accept", "ACCEPTED", "ACCEPT"),
    Step(SERVER, "In Progress", False, "Autotask delivers the same callout twice", 200, "nothing",
         "ACCEPTED", None),
    Step(SERVER, "Complete", False, "", 202, "resolve", "RESOLVED", "RESOLVE"),
    Step(PRINTER, "New", True, "", 202, "create", "PENDING", "ALERT"),
    Step(PRINTER, "Complete", False, "fixed before anyone accepted the alert", 202, "resolve",
         "RESOLVED", "RESOLVE"),
    Step(QUOTE, "Waiting Customer", True, "a ticket that starts out waiting never pages",
         400, "reject", "NONE", None),
    Step(VPN, "New", True, "issue type Network: routed to the network team, text from a template",
         202, "create", "PENDING", "ALERT"),
    Step(VPN, "Complete", False, "resolved where it was raised", 202, "resolve", "RESOLVED",
         "RESOLVE"),
)

# What ilert must hold at the end: final status, priority, event types in order.
EXPECTED_ALERTS: dict[str, tuple[str, str, list[str]]] = {
    SERVER.name: ("RESOLVED", "HIGH", ["ALERT", "ACCEPT", "RESOLVE"]),
    PRINTER.name: ("RESOLVED", "LOW", ["ALERT", "RESOLVE"]),
    VPN.name: ("RESOLVED", "HIGH", ["ALERT", "RESOLVE"]),
}


# -- output --------------------------------------------------------------------------------


class Story:
    """Prints the story and collects what went wrong.

    Every line goes through ``redact``: the callout token and the integration key
    must never reach a terminal or a CI log, even inside an error message (a
    failed callout's error names the URL, token included).
    """

    def __init__(self, secret_values: Sequence[str]) -> None:
        self._secrets = [s for s in secret_values if s]
        self.problems: list[str] = []

    def redact(self, text: str) -> str:
        for value in self._secrets:
            text = text.replace(value, "<secret>")
        return text

    def say(self, text: str = "") -> None:
        print(self.redact(text), flush=True)

    def check(self, ok: bool, problem: str) -> bool:
        """Record ``problem`` (and show it where it happened) unless ``ok``."""
        if not ok:
            self.problems.append(self.redact(problem))
            self.say(f"     !! {problem}")
        return ok


# -- running everything ----------------------------------------------------------------------


@dataclass
class Demo:
    """The running pieces, and what the steps learned along the way."""

    ilert: IlertState
    autotask: AutotaskState
    app: Flask
    story: Story
    ticket_ids: dict[str, int] = field(default_factory=dict)
    network_key: str = ""


def parse_args(argv: Sequence[str] | None, prog: str = PROG) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Play Autotask tickets through the bridge into a simulated ilert, locally.",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="also show request logs and the library's INFO logs (on stderr)",
    )
    return parser.parse_args(argv)


class _Redact(logging.Filter):
    """Keeps the token out of log lines too: werkzeug logs the request path, token included."""

    def __init__(self, secret_values: Sequence[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secret_values if s]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        for value in self._secrets:
            message = message.replace(value, "<secret>")
        record.msg, record.args = message, ()
        return True


@contextlib.contextmanager
def quiet_logs(verbose: bool, secret_values: Sequence[str]) -> Iterator[None]:
    """Silence werkzeug and the library's INFO lines unless ``--verbose``; restore afterwards.

    Logging is configured before a host app's own ``basicConfig`` runs (which then
    does nothing). Warnings and errors stay visible, as they would explain a
    failed step. Levels and filters are put back on exit so
    a test calling ``main()`` leaves logging as it found it.
    """
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    level = logging.INFO if verbose else logging.WARNING
    loggers = [logging.getLogger(name) for name in ("werkzeug", LIBRARY_LOGGER)]
    saved = [lg.level for lg in loggers]
    redact = _Redact(secret_values)
    for lg in loggers:
        lg.setLevel(level)
        lg.addFilter(redact)
    try:
        yield
    finally:
        for lg, old in zip(loggers, saved, strict=True):
            lg.removeFilter(redact)
            lg.setLevel(old)


@contextlib.contextmanager
def local_only() -> Iterator[None]:
    """Make sure requests to 127.0.0.1 never go through an HTTP proxy set in the environment.

    The README promises that nothing leaves the machine; a proxy variable without
    a matching NO_PROXY would otherwise send every local call through it.
    """
    saved = {name: os.environ.get(name) for name in ("NO_PROXY", "no_proxy")}
    for name, value in saved.items():
        os.environ[name] = ",".join(v for v in (value, "127.0.0.1", "localhost") if v)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def demo_config(
    ilert_url: str, autotask_url: str, token: str, integration_key: str, network_key: str = ""
) -> dict[str, Any]:
    """The host app's configuration for the demo.

    Every option starts from its default, so ``AUTOTASK_ILERT_*`` variables in the
    caller's environment (a real Redis URL, a real ilert key) cannot leak in. The
    Autotask zone is left to discovery, as in a real tenant, so the story shows
    that call too.
    """
    config: dict[str, Any] = {option.key: option.default for option in OPTIONS}
    config.update(
        {
            "AUTOTASK_ILERT_REDIS_URL": "memory://",  # the in-process store: one process, no Redis
            "AUTOTASK_ILERT_EMBEDDED_WORKER": True,
            "AUTOTASK_ILERT_WORKER_POLL_SECONDS": 0.05,
            "AUTOTASK_ILERT_WORKER_THREADS": 2,
            "AUTOTASK_ILERT_HTTP_READ_TIMEOUT": 5.0,
            "AUTOTASK_ILERT_CALLOUT_TOKEN": token,
            "AUTOTASK_ILERT_ILERT_INTEGRATION_KEY": integration_key,
            "AUTOTASK_ILERT_ILERT_API_URL": ilert_url,
            "AUTOTASK_ILERT_AUTOTASK_USERNAME": DEFAULT_USER,
            "AUTOTASK_ILERT_AUTOTASK_SECRET": DEFAULT_SECRET,
            "AUTOTASK_ILERT_AUTOTASK_INTEGRATION_CODE": DEFAULT_CODE,
            "AUTOTASK_ILERT_AUTOTASK_ZONE_LOOKUP_URL": f"{autotask_url}/atservicesrest",
        }
    )
    if network_key:
        config["AUTOTASK_ILERT_ROUTES"] = [{**NETWORK_RULE, "integration_key": network_key}]
    return config


def serve(stack: contextlib.ExitStack, app: Any, verbose: bool) -> ServerThread:
    """Start ``app`` on a free port; the stack stops it, last started first."""
    server = ServerThread(app, quiet=not verbose)
    return stack.enter_context(server)


def stop_bridge(app: Flask) -> None:
    """Stop the embedded worker and wait for it, then close the bridge's HTTP sessions.

    Without this the process never exits: the worker's pool threads are not
    daemons, and interpreter shutdown waits for them while nothing tells them to
    stop. ``stop_embedded_worker`` only signals, so the demo then waits (about one
    poll) for the thread, found by the name the bridge gives it.
    """
    bridge = get_bridge(app)
    bridge.stop_embedded_worker()
    for thread in threading.enumerate():
        if thread.name == WORKER_THREAD_NAME:
            thread.join(timeout=5.0)
    for source in bridge.settings.sources.values():
        bridge.ilert(source).session.close()
        client = bridge.autotask(source)
        if client is not None:
            client.session.close()


# -- one step ------------------------------------------------------------------------------


def perform(demo: Demo, step: Step) -> CalloutResult | None:
    """Do the step in Autotask; the simulator fires the callout and returns its answer."""
    if step.create:
        extra = {}
        if step.ticket.issue_type:
            extra["issueType"] = demo.autotask.picklist_value("issueType", step.ticket.issue_type)
        ticket, result = demo.autotask.create_ticket(step.ticket.title, step.ticket.priority, step.status,
                                                     extra=extra)
        demo.ticket_ids[step.ticket.name] = int(ticket["id"])
        return result
    return demo.autotask.set_status(demo.ticket_ids[step.ticket.name], step.status)


def wait_for_events(ilert: IlertState, count: int, timeout: float) -> list[ReceivedEvent]:
    """ilert's received events once there are ``count`` (or whatever arrived by the deadline)."""
    deadline = time.monotonic() + timeout
    events = ilert.events()
    while len(events) < count and time.monotonic() < deadline:
        time.sleep(0.02)
        events = ilert.events()
    return events


def show_callout(demo: Demo, step: Step, result: CalloutResult | None) -> None:
    """What Autotask sent (from the simulator's record of the POST) and what the bridge answered."""
    story = demo.story
    sent = demo.autotask.callouts()[-1] if demo.autotask.callouts() else None
    if sent is None or result is None:
        story.check(False, "Autotask sent no callout")
        return
    fields = {k: v[0] for k, v in parse_qs(sent.payload).items()}
    story.say(f"     Autotask sent   id={fields.get('id')} number={fields.get('number')} "
              f"status=\"{fields.get('status')}\"")
    if result.status_code is None:
        story.check(False, f"the bridge could not be reached: {result.error}")
        return
    body = result.body_json if isinstance(result.body_json, dict) else {}
    action, state = body.get("action"), body.get("state")
    story.say(f"     bridge answered {result.status_code} {action} (state {state})")
    story.check(
        (result.status_code, action, state) == (step.code, step.action, step.state),
        f"expected {step.code} {step.action} (state {step.state}), "
        f"got {result.status_code} {action} (state {state})",
    )


def show_delivery(demo: Demo, step: Step, seen_before: int) -> None:
    """What ilert received because of this step: exactly the expected event, or nothing."""
    story = demo.story
    key = f"autotask-{demo.ticket_ids[step.ticket.name]}"
    if step.event is None:
        time.sleep(SETTLE_SECONDS)
        new = demo.ilert.events()[seen_before:]
        queued = get_bridge(demo.app).store.queue_stats()["tickets"]
        if not new and not queued:
            story.say("     ilert received  nothing (as it should)")
        story.check(not new and not queued,
                    f"expected no ilert event, got {[e.body.get('eventType') for e in new]}, "
                    f"{queued} ticket(s) still queued")
        return
    new = wait_for_events(demo.ilert, seen_before + 1, EVENT_TIMEOUT)[seen_before:]
    if not story.check(bool(new), f"ilert received nothing within {EVENT_TIMEOUT:g} s"):
        return
    for event in new:
        story.say(f"     ilert received  {describe(event)}")
    first = new[0]
    story.check(
        len(new) == 1
        and first.accepted
        and first.body.get("eventType") == step.event
        and first.body.get("alertKey") == key,
        f"expected one accepted {step.event} for {key}",
    )


def describe(event: ReceivedEvent) -> str:
    """One event in a line, picked field by field: the body also holds the integration key."""
    body = event.body
    text = f"{body.get('eventType')} {body.get('alertKey')}"
    if body.get("eventType") == "ALERT":
        text += f" {body.get('priority')} \"{body.get('summary')}\""
    if not event.accepted:
        text += f" (ilert answered {event.status_code})"
    return text


def play(demo: Demo, number: int, step: Step) -> None:
    """One step: act in Autotask, show the callout's answer, then what reached ilert."""
    ticket = step.ticket
    if step.create:
        heading = (f"{number}. Ticket {ticket.name} created as {step.status}: "
                   f"\"{ticket.title}\", priority {ticket.priority}")
    else:
        heading = f"{number}. Ticket {ticket.name} -> {step.status}"
    if step.caption:
        heading += f" ({step.caption})"
    demo.story.say(heading)
    seen_before = len(demo.ilert.events())
    result = perform(demo, step)
    show_callout(demo, step, result)
    show_delivery(demo, step, seen_before)


# -- the end -------------------------------------------------------------------------------


def summarize(demo: Demo) -> None:
    """ilert's alerts as they ended, the Autotask API budget spent, and the final checks."""
    story = demo.story
    story.say()
    story.say("Alerts in ilert:")
    for name, ticket_id in demo.ticket_ids.items():
        key = f"autotask-{ticket_id}"
        alert = demo.ilert.alert_for(key)
        expected = EXPECTED_ALERTS.get(name)
        if alert is None:
            story.say(f"  {key:<16} none (ticket {name} was rejected)")
            story.check(expected is None, f"ilert has no alert for ticket {name}")
            continue
        story.say(f"  {key:<16} {alert.status:<9} {alert.priority:<5} \"{alert.summary}\"  "
                  f"[{', '.join(alert.history)}]")
        story.check(
            expected is not None and (alert.status, alert.priority, alert.history) == expected,
            f"ticket {name}: expected {expected}, ilert has "
            f"{(alert.status, alert.priority, alert.history)}",
        )
    wanted = sum(1 for step in STEPS if step.event)
    accepted = len(demo.ilert.accepted_events())
    story.check(accepted == wanted and len(demo.ilert.events()) == wanted,
                f"expected {wanted} ilert events, ilert received {len(demo.ilert.events())}")
    dead = get_bridge(demo.app).store.queue_stats()["dead_letters"]
    story.check(dead == 0, f"{dead} event(s) in the dead-letter list")

    calls = demo.autotask.calls()
    kinds = Counter(call_kind(c.method, c.path) for c in calls)
    detail = ", ".join(f"{kind} x{n}" for kind, n in kinds.items())
    story.say()
    story.say(f"Callouts sent by Autotask: {len(demo.autotask.callouts())}; "
              f"events received by ilert: {len(demo.ilert.events())}")
    story.say(f"Autotask API calls made: {len(calls)} ({detail})")
    failed = [c for c in calls if c.status_code is None or c.status_code >= 400]
    story.check(not failed, f"{len(failed)} Autotask API call(s) failed")
    check_route(demo)


def check_route(demo: Demo) -> None:
    """Ticket D's alert, and its RESOLVE, went to the network team's key with the rule's text."""
    ticket_id = demo.ticket_ids.get(VPN.name)
    if ticket_id is None:
        return
    events = [e.body for e in demo.ilert.events() if e.body.get("alertKey") == f"autotask-{ticket_id}"]
    keys = {body.get("integrationKey") for body in events}
    routed = bool(events) and keys == {demo.network_key}
    summary = events[0].get("summary") if events else None
    demo.story.say(f"Routing: ticket {VPN.name}'s events went to "
                   + ("the network team's key (rule 0)" if routed else "another key")
                   + f"; summary from the rule's template: \"{summary}\"")
    demo.story.check(routed and summary == NETWORK_SUMMARY,
                     f"ticket {VPN.name}: expected its events at the network team's key with "
                     f"summary {NETWORK_SUMMARY!r}")


def call_kind(method: str, path: str) -> str:
    """``GET Tickets/<id>`` for ``GET /atservicesrest/v1.0/Tickets/10001``: calls grouped by kind."""
    return f"{method} {_ID.sub('/<id>', path.removeprefix(API_PREFIX + '/'))}"


def main(
    argv: Sequence[str] | None = None,
    *,
    create_app: AppFactory = create_host_app,
    app_name: str = "minimal host app",
    prog: str = PROG,
) -> int:
    """Run the demo; 0 when every step did what it should, 1 otherwise.

    ``create_app`` builds the host app from the demo's configuration (by default
    the minimal one above; ``examples/demo.py`` passes the example portal's), and
    ``app_name`` is how the story names it.
    """
    args = parse_args(argv, prog)
    token = secrets.token_urlsafe(24)
    integration_key = f"il1api-demo-{secrets.token_hex(8)}"
    network_key = f"il1api-demo-network-{secrets.token_hex(8)}"
    story = Story([token, integration_key, network_key])
    ilert = IlertState([integration_key, network_key])
    autotask = AutotaskState()
    autotask.callout_timeout = 5.0

    with local_only(), quiet_logs(args.verbose, [token, integration_key, network_key]), \
            contextlib.ExitStack() as stack:
        ilert_server = serve(stack, create_ilert_simulator(ilert), args.verbose)
        autotask_server = serve(stack, create_autotask_simulator(autotask), args.verbose)
        app = create_app(demo_config(ilert_server.url, autotask_server.url, token, integration_key,
                                     network_key))
        app_server = serve(stack, app, args.verbose)
        stack.callback(stop_bridge, app)  # runs first: the worker stops before the servers do
        callout_path = f"{URL_PREFIX}/callout/"
        autotask.callout_url = f"{app_server.url}{callout_path}{token}"

        story.say("flask-autotask-ilert demo: Autotask -> bridge -> ilert, everything on 127.0.0.1")
        places = [
            ("ilert (simulated)", f"{ilert_server.url}/api/events"),
            ("Autotask (simulated)", f"{autotask_server.url}/atservicesrest (zone found by lookup)"),
            (f"bridge ({app_name})", f"{app_server.url}{callout_path}<token>"),
        ]
        width = max(len(label) for label, _ in places)
        for label, where in places:
            story.say(f"  {label:<{width}}  {where}")
        story.say("  store: in-process (no Redis, one process only); delivery: embedded worker")
        story.say()
        demo = Demo(ilert, autotask, app, story, network_key=network_key)
        for number, step in enumerate(STEPS, start=1):
            play(demo, number, step)
        autotask.wait_idle()
        summarize(demo)

    story.say()
    if story.problems:
        story.say(f"Demo FAILED: {len(story.problems)} thing(s) did not happen as expected:")
        for problem in story.problems:
            story.say(f"  - {problem}")
        return 1
    story.say("Demo OK: every answer and every ilert event was the expected one.")
    story.say("For a real Autotask tenant and ilert account, see README.md "
              "(\"Setting it up, in this order\") or the documentation site.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
