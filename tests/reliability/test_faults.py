"""The faults of issue 4, each over real processes: the example app under gunicorn (2 workers),
separate worker processes, a real redis-server and the simulators of ilert and Autotask.

Every scenario ends by comparing ilert's (and, where it writes, Autotask's) final
state with the independent model of tests/reliability/model.py, and by scanning
everything the deployment wrote or answered for the distinctive secrets it was
configured with. Counts and times are scaled down to keep the whole file within a
few minutes on two cores; docs/reliability.md lists what each one tried.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from flask_autotask_ilert.config import OPTIONS_BY_NAME
from flask_autotask_ilert.testing.autotask_sim import AutotaskState, create_autotask_simulator
from flask_autotask_ilert.testing.servers import ServerThread
from tests.deployment import Deployment, wait_until

from .harness import (
    AT_USER,
    CALLOUT_USER,
    SCANS,
    SECRETS,
    Clock,
    Driver,
    OwnRedis,
    Sent,
    ZoneDiscoveryDeployment,
    callout_urls,
    compare_ilert,
    dead_letters,
    in_threads,
    make_deployment,
    metrics_text,
    scan_for_secrets,
    settle,
    store_client,
)
from .model import WALK_LABELS, Model
from .report import Figure, Stopwatch, figures, record

pytestmark = pytest.mark.realprocess

Start = Callable[..., Deployment]
AUTH = (CALLOUT_USER, SECRETS.callout_password)
FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}
KEYS = {"default": SECRETS.ilert_key}


@pytest.fixture
def start(redis_server: str, redis_prefix: str, tmp_path: Path) -> Iterator[Start]:
    """Start a deployment (stopped after the test); ``before`` runs before the processes start."""
    made: list[Deployment] = []

    def factory(
        *,
        workers: int = 2,
        redis_url: str | None = None,
        extra_env: dict[str, str] | None = None,
        before: Callable[[Deployment], None] | None = None,
        cls: type[Deployment] = Deployment,
    ) -> Deployment:
        d = make_deployment(redis_url or redis_server, redis_prefix, tmp_path, extra_env=extra_env, cls=cls)
        made.append(d)
        d.autotask.fire_callouts = False  # the driver sends the callouts (and retries them)
        if before is not None:
            before(d)
        d.start(workers=0)
        for _ in range(workers):
            d.start_worker(threads=4)
        return d

    yield factory
    for d in made:
        d.stop()


def walks(rng: random.Random, tickets: range, callouts: int) -> dict[int, list[str]]:
    """Random status walks, ``callouts`` long in all, most starting with New."""
    out = {tid: ["New" if rng.random() < 0.85 else rng.choice(WALK_LABELS)] for tid in tickets}
    ids = list(tickets)
    for _ in range(callouts - len(ids)):
        out[rng.choice(ids)].append(rng.choice(WALK_LABELS))
    return out


def create_tickets(d: Deployment, ids: list[int], prefix: str = "Outage") -> None:
    for tid in ids:
        d.autotask.create_ticket(
            f"{prefix} {tid}", priority_label=random.choice(["Low", "High"]), ticket_id=tid
        )


def play(
    driver: Driver,
    clock: Clock,
    plan: dict[int, list[str]],
    threads: int = 8,
    source: str = "default",
    pause: float = 0.0,
) -> None:
    def one(tid: int) -> None:
        for label in plan[tid]:
            driver.callout(source, tid, label, clock.tick())
            if pause:
                time.sleep(pause)

    in_threads(threads, list(plan), one)


def play_while(
    driver: Driver,
    clock: Clock,
    tickets: range,
    faults: threading.Thread,
    *,
    seed: int,
    threads: int = 6,
    pause: float = 0.0,
) -> None:
    """Random status walks, sent until the ``faults`` thread has ended and then one round more.

    A plan of fixed length can end before its faults begin on a fast machine; this one
    cannot, so every fault lands in the middle of the burst. Each thread walks its own
    tickets (the callouts of one ticket: one thread), most starting with New.
    """

    def one(part: int) -> None:
        rng = random.Random(seed * 100 + part)
        own = list(tickets)[part::threads]
        sent: set[int] = set()
        finished = False
        while not finished:
            finished = not faults.is_alive()
            for tid in own:
                first = tid not in sent
                label = "New" if first and rng.random() < 0.85 else rng.choice(WALK_LABELS)
                driver.callout("default", tid, label, clock.tick())
                sent.add(tid)
                if pause:
                    time.sleep(pause)

    in_threads(threads, range(threads), one)


def finish(
    d: Deployment,
    driver: Driver,
    model: Model,
    *,
    key: str,
    what: str,
    watch: Stopwatch,
    keys: dict[str, str] = KEYS,
    settle_seconds: float = 60,
    allow_resent: bool = False,
    allow_503: bool = False,
    outcome: str = "",
    extra_requests: int = 0,
    extra_events: int = 0,
) -> Figure:
    """Compare with the model, scan for secrets, record the report's row."""
    settle(d, model, keys, settle_seconds)
    time.sleep(0.5)  # a repeat sent by a worker whose lease ran out would land now
    result = compare_ilert(d, model, keys)
    dead = dead_letters(d)
    codes = driver.codes()
    server_errors = sum(
        n for c, n in codes.items() if c is not None and c >= 500 and not (allow_503 and c == 503)
    )
    scan = scan_for_secrets(d, [t for s in driver.sent for t in s.texts])
    SCANS.append((key, scan))
    assert result.problems == [], result.problems[:10]
    assert (result.lost, result.duplicated) == (0, 0)
    assert dead == [], dead[:3]
    assert server_errors == 0, codes
    assert scan.found == {}, f"secrets found: {scan.found}"
    if not allow_resent:
        assert result.resent == 0, "an event reached ilert twice"
    figure = Figure(
        key=key,
        what=what,
        requests=driver.requests + extra_requests,
        events=model.event_count() + extra_events,
        lost=result.lost,
        duplicated=result.duplicated,
        server_errors=server_errors,
        resent=result.resent,
        seconds=watch.seconds,
        outcome=outcome,
    )
    record(figure)
    return figure


# -- 1. ilert refuses connections, then answers 503 ------------------------------------------------

REFUSED_SECONDS = 5.0
UNAVAILABLE_SECONDS = 30.0


def test_1_ilert_refuses_then_answers_503_while_callouts_arrive(start: Start) -> None:
    watch = Stopwatch()
    rng = random.Random(1)
    d = start()
    plan = walks(rng, range(1, 71), 200)
    create_tickets(d, list(plan))
    model, clock = Model(), Clock()
    driver = Driver({"default": callout_urls(d)}, model, AUTH)
    ilert = d._ilert_server

    ilert.stop()  # connections refused
    done = threading.Event()

    def outage() -> None:
        time.sleep(REFUSED_SECONDS)
        d.ilert.configure_faults({"fail_rate": 1.0, "fail_modes": ["503"]})
        ilert.start()
        time.sleep(UNAVAILABLE_SECONDS)
        d.ilert.configure_faults({"fail_rate": 0.0})
        done.set()

    thread = threading.Thread(target=outage)
    thread.start()
    play(driver, clock, plan, threads=4, pause=(REFUSED_SECONDS + UNAVAILABLE_SECONDS) / 60)
    thread.join()
    refused_503 = sum(1 for e in d.ilert.events() if e.status_code == 503)
    finish(
        d,
        driver,
        model,
        key="fault-1",
        watch=watch,
        what=f"ilert refuses connections for {REFUSED_SECONDS:.0f} s, then answers 503 for "
        f"{UNAVAILABLE_SECONDS:.0f} s, while the callouts arrive",
        outcome=f"{refused_503} sends answered 503 by ilert and every send during the refusal "
        "failed; all delivered afterwards, once, in order",
    )


# -- 2. ilert flaky: 30% 5xx or reset, 200 ms latency -----------------------------------------------


def test_2_ilert_fails_30_percent_with_latency(start: Start) -> None:
    watch = Stopwatch()
    rng = random.Random(2)
    d = start()
    d.ilert.configure_faults(
        {"fail_rate": 0.3, "fail_modes": ["500", "503", "reset"], "latency": 0.2, "seed": 2}
    )
    plan = walks(rng, range(1, 71), 200)
    create_tickets(d, list(plan))
    model, clock = Model(), Clock()
    driver = Driver({"default": callout_urls(d)}, model, AUTH)
    play(driver, clock, plan)
    figure_wait = 90
    settle(d, model, KEYS, figure_wait)
    failed = [e for e in d.ilert.events() if e.status_code is None or e.status_code >= 500]
    total = len(d.ilert.events())
    assert failed, "the fault injection did not fail anything"
    finish(
        d,
        driver,
        model,
        key="fault-2",
        watch=watch,
        what="ilert answers 30% of sends with 500, 503 or a reset connection, 200 ms latency",
        outcome=f"{len(failed)} of {total} sends failed ({len(failed) / total:.0%}) and were "
        "retried; all delivered once, in order",
    )


# -- 3. ilert's rate limit ---------------------------------------------------------------------------


def test_3_ilert_rate_limit_is_paced_not_hit(start: Start) -> None:
    watch = Stopwatch()
    rng = random.Random(3)
    d = start(
        extra_env={"AUTOTASK_ILERT_ILERT_RATE_LIMIT": "10", "AUTOTASK_ILERT_ILERT_RATE_WINDOW_SECONDS": "2"}
    )
    d.ilert.configure_faults({"rate_limit": {"events": 10, "per_seconds": 2}})
    plan = walks(rng, range(1, 26), 60)
    create_tickets(d, list(plan))
    model, clock = Model(), Clock()
    driver = Driver({"default": callout_urls(d)}, model, AUTH)
    play(driver, clock, plan)
    settle(d, model, KEYS, 90)
    sends = d.ilert.events()
    refused = sum(1 for e in sends if e.status_code == 429)
    assert refused <= 0.10 * len(sends), f"{refused} of {len(sends)} sends answered 429"
    # Never more than 10 accepted in any 2 s: the bridge paced them.
    times = sorted(e.at for e in sends if e.status_code is not None and e.status_code < 300)
    busiest = max(sum(1 for t in times if s <= t < s + 2.0) for s in times)
    assert busiest <= 10, busiest
    finish(
        d,
        driver,
        model,
        key="fault-3",
        watch=watch,
        what="ilert enforces 10 events per 2 s per key (50/min scaled down); the bridge paces",
        outcome=f"{refused} of {len(sends)} sends answered 429 ({refused / len(sends):.0%}, at most 10% "
        f"allowed); at most {busiest} accepted in any 2 s",
    )


# -- 7. duplicated and reordered callouts ------------------------------------------------------------


def test_7_shuffled_replay_with_duplicates_follows_last_activity(start: Start) -> None:
    watch = Stopwatch()
    rng = random.Random(7)
    d = start()
    plan = walks(rng, range(1, 41), 150)
    create_tickets(d, list(plan))
    clock = Clock()
    recorded = [(tid, label, clock.tick()) for tid, labels in plan.items() for label in labels]
    stream = recorded + rng.sample(recorded, k=len(recorded) * 3 // 10)
    rng.shuffle(stream)
    model = Model()
    driver = Driver({"default": callout_urls(d)}, model, AUTH)
    for tid, label, at in stream:  # one at a time: the order the bridge sees is the model's
        driver.callout("default", tid, label, at)
    actions: dict[str, int] = {}
    for sent in driver.sent:
        assert sent.final is not None
        actions[sent.final.action] = actions.get(sent.final.action, 0) + 1
    assert actions.get("stale", 0) > 0
    finish(
        d,
        driver,
        model,
        key="fault-7",
        watch=watch,
        what=f"a recorded stream of {len(recorded)} callouts replayed shuffled, with "
        f"{len(stream) - len(recorded)} duplicates",
        outcome=", ".join(f"{n} {a}" for a, n in sorted(actions.items())) + "; every answer as the model",
    )


# -- 8. two alert sources with overlapping ticket ids -----------------------------------------------


def test_8_two_sources_with_the_same_ticket_ids_never_mix(start: Start) -> None:
    watch = Stopwatch()
    rng = random.Random(8)
    user_b = "reliability-api-user-b@example.com"
    tenant_b = AutotaskState()
    tenant_b.credentials = {user_b: (SECRETS.autotask_secret_b, SECRETS.autotask_code_b)}
    tenant_b.users = {user_b}
    tenant_b.fire_callouts = False
    server_b = ServerThread(create_autotask_simulator(tenant_b)).start()
    try:
        sources = {
            "team-b": {
                "callout_token": SECRETS.callout_token_b,
                "ilert_integration_key": SECRETS.ilert_key_b,
                "autotask_username": user_b,
                "autotask_secret": SECRETS.autotask_secret_b,
                "autotask_integration_code": SECRETS.autotask_code_b,
                "autotask_api_url": f"{server_b.url}/atservicesrest",
            }
        }
        d = start(
            extra_env={"AUTOTASK_ILERT_SOURCES": json.dumps(sources)},
            before=lambda dep: dep.ilert.integration_keys.add(SECRETS.ilert_key_b),
        )
        ids = list(range(1, 31))
        plan_a, plan_b = walks(rng, range(1, 31), 90), walks(rng, range(1, 31), 90)
        for tid in ids:
            d.autotask.create_ticket(f"Team A ticket {tid}", ticket_id=tid)
            tenant_b.create_ticket(f"Team B ticket {tid}", ticket_id=tid)
        model, clock = Model(), Clock()
        base = f"{d.base_url}/autotask-ilert/callout/"
        driver = Driver({"default": callout_urls(d), "team-b": [base + SECRETS.callout_token_b]}, model, AUTH)
        threads = [
            threading.Thread(target=play, args=(driver, clock, plan, 4, src))
            for src, plan in (("default", plan_a), ("team-b", plan_b))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        keys = {"default": SECRETS.ilert_key, "team-b": SECRETS.ilert_key_b}
        settle(d, model, keys, 60)
        # Each alert was built from its own tenant's ticket, and each store record is its own.
        client = store_client(d)
        try:
            for src, ikey, title in (
                ("default", SECRETS.ilert_key, "Team A"),
                ("team-b", SECRETS.ilert_key_b, "Team B"),
            ):
                for tid in ids:
                    alert = d.ilert.alert_for(f"autotask-{tid}", ikey)
                    if alert is not None:
                        assert alert.summary.endswith(f"{title} ticket {tid}"), (src, tid, alert.summary)
                    raw = client.hget(f"{d.redis_prefix}map:{src}:{tid}", "s")
                    want = model.tickets[(src, tid)]
                    assert (raw.split("|")[0] if raw else "NONE") == want.state, (src, tid)
        finally:
            client.close()
        finish(
            d,
            driver,
            model,
            key="fault-8",
            watch=watch,
            keys=keys,
            what="two alert sources (two Autotask tenants, two ilert keys) with the same ticket ids 1-30",
            outcome="each alert built from its own tenant's ticket; every record and alert as its own "
            "source's model",
        )
    finally:
        server_b.stop()


# -- 4. Autotask misbehaves: 500, Thread Threshold Exceeded, 401 (zone moved), hangs -----------------

THREAD_THRESHOLD = {"status": 500, "body": {"errors": ["Thread Threshold Exceeded"]}}
HANG = 3.0  # past the read timeout of 2 s this scenario gives the bridge
S4_ENV = {
    "AUTOTASK_ILERT_BIDIRECTIONAL": "1",
    "AUTOTASK_ILERT_WEBHOOK_TOKEN": SECRETS.webhook_token,
    "AUTOTASK_ILERT_HTTP_CONNECT_TIMEOUT": "1",
    "AUTOTASK_ILERT_HTTP_READ_TIMEOUT": "2",
    "AUTOTASK_ILERT_WORKER_LEASE_SECONDS": "10",  # well above a delivery's requests and timeouts
}


class ZoneMove:
    """The tenant moves to another zone: the old zone answers 401 to everything, and the
    zone lookup (served by the old address, as Autotask's is) names the new one."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.moved = False

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if self.moved and "zoneInformation" not in environ.get("PATH_INFO", ""):
            start_response("401 Unauthorized", [("Content-Type", "application/json")])
            return [b'{"errors": ["Unauthorized"]}']
        return self.app(environ, start_response)


def test_4_autotask_failures_never_stop_paging_and_writes_land_once(start: Start) -> None:
    watch = Stopwatch()
    zone_move: list[ZoneMove] = []

    def before(dep: Deployment) -> None:
        dep.autotask.fire_callouts = (
            True  # the tenant's workflow rule, echoes of the bridge's writes included
        )
        zone_move.append(ZoneMove(dep._autotask_server.app))
        dep._autotask_server.app = zone_move[0]

    d = start(extra_env=S4_ENV, cls=ZoneDiscoveryDeployment, before=before)
    d.ilert.webhook_url = f"{d.base_url}/autotask-ilert/ilert/{SECRETS.webhook_token}"
    at = d.autotask
    new_zone = ServerThread(create_autotask_simulator(at)).start()
    model = Model()
    try:
        # Phase A: every Autotask request fails (each kind in turn, then at random): alerts go out
        # with the callout's data once ENRICH_ATTEMPTS reads failed, in bounded time.
        at.force(
            THREAD_THRESHOLD,
            {"status": 500},
            {"hang": HANG},
            {"reset": True},
            THREAD_THRESHOLD,
            {"hang": HANG, "status": 503},
        )
        at.configure_faults({"fail_rate": 1.0, "fail_modes": ["500", "503", "reset"]})
        unread, created_at = [], {}
        for n in range(10):
            ticket, answer = at.create_ticket(f"Unreadable {n}", priority_label="High")
            assert answer is not None and answer.status_code == 202
            model.callout("default", ticket["id"], "New")
            unread.append(ticket["id"])
            created_at[ticket["id"]] = time.monotonic()
        wait_until(
            lambda: all(d.ilert.alert_for(f"autotask-{t}") for t in unread),
            45,
            what="alerts built from the callouts alone",
        )
        slowest = max(
            e.at - created_at[int(e.body["alertKey"].split("-")[1])]
            for e in d.ilert.events()
            if e.body.get("eventType") == "ALERT"
        )
        for tid in unread:
            alert = d.ilert.alert_for(f"autotask-{tid}")
            assert alert is not None and f"Autotask ticket {tid} (New)" in alert.summary, alert
            assert "callout alone" in alert.details

        # Phase B: Autotask is back: alerts carry the ticket's own data again.
        at.clear_faults()
        read = []
        for n in range(10):
            ticket, _ = at.create_ticket(f"Readable {n}", priority_label="Low")
            model.callout("default", ticket["id"], "New")
            read.append(ticket["id"])
        wait_until(lambda: all(d.ilert.alert_for(f"autotask-{t}") for t in read), 30, what="enriched alerts")
        for n, tid in enumerate(read):
            alert = d.ilert.alert_for(f"autotask-{tid}")
            assert alert is not None and alert.summary.endswith(f"Readable {n}") and alert.priority == "LOW"
        d.ilert.wait_idle(5)

        # Phase C: people accept and resolve in ilert while Autotask fails every request for a
        # while, and the tenant moves to another zone meanwhile.
        at.force(
            THREAD_THRESHOLD,
            {"hang": HANG, "status": 503},
            {"status": 500},
            {"reset": True},
            THREAD_THRESHOLD,
        )
        at.configure_faults({"fail_rate": 1.0, "fail_modes": ["500", "503", "reset"]})
        at.zone_url = new_zone.url
        zone_move[0].moved = True
        calls_before = len(at.calls())
        tickets = unread + read
        accepted_ids, resolved_ids = tickets[::2], tickets[::4]
        for tid in accepted_ids:
            d.ilert.accept(f"autotask-{tid}", by="jdoe")
            model.webhook("default", tid, "ACCEPTED")
        for tid in resolved_ids:
            d.ilert.resolve(f"autotask-{tid}", by="jdoe")
            model.webhook("default", tid, "RESOLVED")
        time.sleep(5)
        failed_calls = [c for c in at.calls()[calls_before:] if c.status_code != 200]
        assert failed_calls and not [c for c in at.calls_matching("PATCH") if c.status_code == 200]
        assert dead_letters(d) == []
        at.clear_faults()

        want_status = {t: "In Progress" for t in accepted_ids} | {t: "Complete" for t in resolved_ids}
        wait_until(
            lambda: (
                all(at.status_label(t) == s for t, s in want_status.items())
                and all(len(at.notes(t)) == len(model.tickets[("default", t)].writes) for t in tickets)
            ),
            60,
            what="every ticket write to land",
        )
        d.ilert.wait_idle(5)
        at.wait_idle(5)
        time.sleep(1.0)
        landed = [c for c in at.calls_matching("PATCH") if c.status_code == 200]
        per_ticket = {t: [c.json_body["status"] for c in landed if c.json_body["id"] == t] for t in tickets}
        # One status change per thing a person did in ilert (the model's writes that set a status):
        # In Progress (8) for an accept, Complete (5) for a resolve, each exactly once, in order.
        value = {"accept": 8, "resolve": 5}
        want_patches = {
            t: [value[w] for w, sets in model.tickets[("default", t)].writes if sets] for t in tickets
        }
        assert per_ticket == want_patches, "each status change is written exactly once"
        for tid in tickets:
            notes = [n["description"] for n in at.notes(tid)]
            alert = d.ilert.alert_for(f"autotask-{tid}")
            assert alert is not None
            want = [f"Alert {alert.id} {w} in ilert" for w, _ in model.tickets[("default", tid)].writes]
            assert [n.split(" by ")[0] for n in notes] == [
                w.replace("accept", "accepted").replace("resolve", "resolved") for w in want
            ], (tid, notes)
        assert all(at.status_label(t) == "New" for t in tickets if t not in want_status)
        assert all(w.ok for w in d.ilert.webhooks()), [w for w in d.ilert.webhooks() if not w.ok][:3]
        new_zone_calls = [c for c in at.calls()[calls_before:] if c.path.endswith("/Notes")]
        assert new_zone_calls, "the writes went to the new zone"
    finally:
        new_zone.stop()

    callouts = at.callouts()
    assert all(c.status_code in (200, 202) for c in callouts), [
        c for c in callouts if c.status_code not in (200, 202)
    ]
    driver = Driver({"default": callout_urls(d)}, Model(), AUTH)
    for callout_ in callouts:
        driver.sent.append(
            Sent(
                callout_.ticket_id,
                callout_.status,
                codes=[callout_.status_code],
                texts=[json.dumps(callout_.body_json)],
            )
        )
    writes = model.write_count()
    finish(
        d,
        driver,
        model,
        key="fault-4",
        watch=watch,
        extra_requests=len(d.ilert.webhooks()),
        extra_events=writes,
        what="Autotask answers 500, Thread Threshold Exceeded, hangs past the timeout or resets, "
        "first every ticket read, then every ticket write while the tenant moves zone (401)",
        outcome=f"10 alerts paged with the callout's data (slowest {slowest:.1f} s after the callout), "
        f"10 with Autotask's; {len(failed_calls)} Autotask calls failed during the writes, then "
        f"all {writes} writes landed once (one PATCH per status change, one note each)",
    )


# -- 5. SIGKILL of worker processes mid-delivery and gunicorn workers mid-request -------------------


def test_5_sigkill_of_workers_and_gunicorn_workers_loses_nothing(start: Start) -> None:
    watch = Stopwatch()
    d = start()
    d.ilert.latency = 0.15  # sends are in flight when the kills come
    tickets = range(1, 61)
    create_tickets(d, list(tickets))
    model, clock = Model(), Clock()
    # Slow clients (the body in two halves, 80 ms apart) keep both gunicorn workers inside requests.
    driver = Driver({"default": callout_urls(d)}, model, AUTH, slow=0.08)
    kills: list[str] = []
    stop = threading.Event()

    def killer() -> None:
        for n in range(8):
            if stop.wait(0.5):
                return
            if n % 2 == 0:
                victim = d.workers[-1 if n % 4 == 0 else 0]
                d.kill(victim, signal.SIGKILL)
                d.workers.remove(victim)
                d.start_worker(threads=4)
                kills.append("worker")
            else:
                pids = d.web_worker_pids()
                if pids:
                    os.kill(pids[0], signal.SIGKILL)
                    kills.append("gunicorn")

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        play_while(driver, clock, tickets, thread, seed=5, threads=6)
    finally:
        stop.set()
        thread.join()
    dropped = sum(1 for s in driver.sent for c in s.codes if c is None)
    assert kills.count("worker") >= 3 and kills.count("gunicorn") >= 3, kills
    assert dropped, "no kill landed mid-request"
    finish(
        d,
        driver,
        model,
        key="fault-5",
        watch=watch,
        allow_resent=True,
        settle_seconds=90,
        what=f"SIGKILL of a worker process {kills.count('worker')} times (mid-delivery, 150 ms sends) "
        f"and of a gunicorn worker {kills.count('gunicorn')} times (mid-request)",
        outcome=f"{dropped} requests cut by a kill were sent again; every accepted callout delivered",
    )


# -- 6. Redis restarted (AOF) during a burst --------------------------------------------------------

OUTAGE = 2.5


def test_6_redis_restarts_during_a_burst(start: Start, tmp_path: Path) -> None:
    watch = Stopwatch()
    own = OwnRedis(tmp_path, appendfsync="always")
    own.start()
    try:
        d = start(redis_url=own.url)
        web_pids = sorted(d.web_worker_pids())
        worker_pids = [w.pid for w in d.workers]
        tickets = range(1, 51)
        create_tickets(d, list(tickets))
        model, clock = Model(), Clock()
        driver = Driver({"default": callout_urls(d)}, model, AUTH)
        down: list[tuple[float, float]] = []
        health_during: list[int] = []

        def outages() -> None:
            for crash, fsync in ((signal.SIGKILL, "everysec"), (signal.SIGTERM, "always")):
                time.sleep(1.5)
                own.stop(crash)  # a crash (with appendfsync always), then a clean shutdown
                began = time.monotonic()
                health_during.append(
                    requests.get(f"{d.base_url}/autotask-ilert/healthz", timeout=5).status_code
                )
                time.sleep(OUTAGE)
                own.appendfsync = fsync
                down.append((began, time.monotonic()))
                own.start()

        thread = threading.Thread(target=outages)
        thread.start()
        play_while(driver, clock, tickets, thread, seed=6, threads=6, pause=0.15)
        thread.join()

        during = [
            (code, ra, end - begin)
            for s in driver.sent
            for code, ra, (begin, end) in zip(s.codes, s.retry_after, s.spans, strict=True)
            if any(b <= begin and end <= e for b, e in down)
        ]
        assert during, "no callout arrived while Redis was down"
        assert all(code == 503 and ra for code, ra, _ in during), [c for c in during if c[0] != 503][:5]
        slowest = max(seconds for _, _, seconds in during)
        # A 503 must not wait for the Redis socket timeout (2 s, extension.py). Measured: the slowest
        # of 32-35 503s took 72 ms at load average 6 on 2 cores, 85 and 119 ms with two more busy
        # loops (load average 8-12): 2.5 s is a margin of 20x over the worst of them.
        assert slowest < 2.5, f"a 503 took {slowest:.2f} s"
        assert health_during == [503, 503]
        finish(
            d,
            driver,
            model,
            key="fault-6",
            watch=watch,
            allow_resent=True,
            allow_503=True,
            settle_seconds=90,
            what=f"Redis (AOF) killed with SIGKILL, then stopped with SIGTERM, during a burst; "
            f"each time down {OUTAGE:.1f} s and restarted",
            outcome=f"{len(during)} callouts during the outages, all 503 with Retry-After (slowest "
            f"{slowest * 1000:.0f} ms), none 2xx; every callout answered 2xx delivered",
        )
        # Nothing was restarted but Redis: same gunicorn workers, same worker processes.
        assert sorted(d.web_worker_pids()) == web_pids
        assert [w.pid for w in d.workers if w.poll() is None] == worker_pids
    finally:
        own.close()


# -- secrets: none in any log, answer, metric or dead letter ------------------------------------------


def test_9_no_secret_in_logs_answers_metrics_or_dead_letters(start: Start) -> None:
    """Every scenario above scans what it produced; this one also makes dead letters on purpose,
    from ilert and Autotask answers that echo the secrets back, and sends wrong credentials."""
    watch = Stopwatch()
    d = start(
        extra_env={
            "AUTOTASK_ILERT_BIDIRECTIONAL": "1",
            "AUTOTASK_ILERT_WEBHOOK_TOKEN": SECRETS.webhook_token,
            "AUTOTASK_ILERT_ENRICH_ATTEMPTS": "1",
        }
    )
    d.ilert.webhook_url = f"{d.base_url}/autotask-ilert/ilert/{SECRETS.webhook_token}"
    echo_key = {
        "status": 400,
        "body": {
            "status": 400,
            "code": "BAD_REQUEST",
            "message": f"no alert source for key {SECRETS.ilert_key}",
        },
    }
    echo_autotask = {
        "status": 400,
        "body": {
            "errors": [
                f"user {AT_USER} secret {SECRETS.autotask_secret} code {SECRETS.autotask_code} refused"
            ]
        },
    }
    d.ilert.force(echo_key, echo_key, echo_key)
    d.autotask.force(*[echo_autotask] * 3)
    model, clock = Model(), Clock()
    driver = Driver({"default": callout_urls(d)}, model, AUTH)
    ids = list(range(1, 7))
    create_tickets(d, ids)
    for tid in ids:
        driver.callout("default", tid, "New", clock.tick())
    wait_until(
        lambda: len(dead_letters(d)) == 3 and len(d.ilert.alerts()) == 3,
        30,
        what="3 alerts and 3 dead letters",
    )
    d.ilert.wait_idle(5)
    d.autotask.force(*[echo_autotask] * 20)  # every ticket write is refused, echoing the secrets
    for alert in d.ilert.alerts():
        d.ilert.accept(alert.key or "", by="jdoe")
    wait_until(lambda: len(dead_letters(d)) == 6, 30, what="3 ticket writes dead-lettered")
    reasons = [json.loads(r)["reason"] for r in dead_letters(d)]
    assert all("***" in r for r in reasons), reasons

    # Wrong credentials of every kind, answered and logged.
    base = f"{d.base_url}/autotask-ilert"
    probes = [
        requests.post(
            f"{base}/callout/{SECRETS.callout_token}x",
            data="id=1&status=New",
            headers=FORM_HEADERS,
            auth=AUTH,
            timeout=5,
        ),
        requests.post(
            f"{base}/callout/{SECRETS.callout_token}",
            data="id=1&status=New",
            headers=FORM_HEADERS,
            auth=(CALLOUT_USER, SECRETS.callout_password + "x"),
            timeout=5,
        ),
        requests.post(f"{base}/ilert/{SECRETS.webhook_token[:-1]}", json={"status": "ACCEPTED"}, timeout=5),
        requests.post(f"{base}/ilert", json={"status": "ACCEPTED"}, timeout=5),
        requests.get(
            f"{base}/metrics", headers={"Authorization": f"Bearer {SECRETS.metrics_token}x"}, timeout=5
        ),
    ]
    assert [p.status_code for p in probes][:4] == [404, 401, 404, 401]
    texts = [f"{p.status_code} {dict(p.headers)!r} {p.text}" for p in probes]
    scan = scan_for_secrets(d, texts + [t for s in driver.sent for t in s.texts])
    SCANS.append(("secrets", scan))
    # The scan would see them: ilert is sent its key, and the metrics were read.
    assert SECRETS.ilert_key in json.dumps([e.body for e in d.ilert.events()])
    if "METRICS_TOKEN" in OPTIONS_BY_NAME:
        assert "autotask" in metrics_text(d)
    assert scan.found == {}, scan.found
    scanned = {key for key, _ in SCANS}
    total = sum(s.scanned_bytes for _, s in SCANS)
    found = sum(sum(s.found.values()) for _, s in SCANS)
    record(
        Figure(
            key="secrets",
            what=f"{len(SECRETS.values())} distinctive secrets (tokens, old token, Basic password, "
            "ilert keys, Autotask secrets and codes, webhook and metrics tokens) searched in every scenario",
            # Everything the scanned scenarios sent and delivered, this one's included.
            requests=driver.requests
            + len(probes)
            + sum(f.requests for k, f in figures().items() if k in scanned),
            events=len(ids) + sum(f.events for k, f in figures().items() if k in scanned),
            seconds=watch.seconds,
            outcome=f"{len(SCANS)} scans, {total / 1e6:.1f} MB of logs, answers, metrics, dead letters "
            f"({len(reasons)} made on purpose from answers echoing the secrets), Redis values and "
            f"what ilert and Autotask were sent: {found} occurrences",
        )
    )
