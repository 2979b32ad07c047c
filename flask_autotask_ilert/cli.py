"""``flask autotask-ilert ...``: the commands an operator runs."""

from __future__ import annotations

import json
import signal
import threading
from typing import Any

import click
from flask.cli import with_appcontext

from .extension import get_bridge


@click.group("autotask-ilert")
def cli_group() -> None:
    """The Autotask -> ilert bridge."""


@cli_group.command("worker")
@click.option("--threads", type=int, default=None, help="Delivery threads (default: WORKER_THREADS).")
@click.option("--burst", is_flag=True, help="Deliver what is due now, then exit.")
@with_appcontext
def worker_command(threads: int | None, burst: bool) -> None:
    """Deliver queued events to ilert until stopped (SIGTERM or Ctrl-C).

    Run as many workers as you like, on as many hosts as you like: they share
    the work through Redis, and per-ticket order holds.
    """
    from .worker import Worker

    bridge = get_bridge()
    worker = Worker(bridge, threads=threads)
    if burst:
        count = worker.drain(timeout=3600)
        click.echo(f"delivered or settled {count} queued item(s)")
        return
    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        click.echo(f"worker: signal {signum}, finishing the events in hand", err=True)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    sources = ", ".join(bridge.settings.sources)
    click.echo(f"worker: {worker.threads} thread(s), source(s) {sources}", err=True)
    worker.run(stop)


@cli_group.command("queue")
@with_appcontext
def queue_command() -> None:
    """Tickets with undelivered events, how overdue the oldest is, and dead letters."""
    click.echo(json.dumps(get_bridge().store.queue_stats(), indent=2))
