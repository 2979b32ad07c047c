"""What every fault scenario shares: a deployment with distinctive secrets, a callout
driver that keeps every answer, the comparison with the model, and the secret scan.

Everything talks to 127.0.0.1 only, and every loop is bounded in count and time.
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import redis
import requests

from flask_autotask_ilert.config import OPTIONS_BY_NAME
from tests.deployment import Deployment, free_port, wait_until

from .model import Answer, Model

ROOT = Path(__file__).resolve().parents[2]
FORM = {"Content-Type": "application/x-www-form-urlencoded"}

#: Distinctive secrets, new for every run: the scan looks for each of them everywhere.
AT_USER = "reliability-api-user@example.com"
CALLOUT_USER = "autotask-callouts"


@dataclass(frozen=True)
class Secrets:
    callout_token: str = field(default_factory=lambda: f"CALLOUT-TOKEN-{secrets.token_hex(10)}")
    callout_token_old: str = field(default_factory=lambda: f"CALLOUT-OLDTOKEN-{secrets.token_hex(10)}")
    callout_token_b: str = field(default_factory=lambda: f"CALLOUT-TOKEN-B-{secrets.token_hex(10)}")
    callout_password: str = field(default_factory=lambda: f"CALLOUT-PASSWORD-{secrets.token_hex(10)}")
    ilert_key: str = field(default_factory=lambda: f"ILERT-KEY-{secrets.token_hex(10)}")
    ilert_key_b: str = field(default_factory=lambda: f"ILERT-KEY-B-{secrets.token_hex(10)}")
    autotask_secret: str = field(default_factory=lambda: f"AT-SECRET-{secrets.token_hex(10)}")
    autotask_code: str = field(default_factory=lambda: f"AT-CODE-{secrets.token_hex(10)}")
    autotask_secret_b: str = field(default_factory=lambda: f"AT-SECRET-B-{secrets.token_hex(10)}")
    autotask_code_b: str = field(default_factory=lambda: f"AT-CODE-B-{secrets.token_hex(10)}")
    webhook_token: str = field(default_factory=lambda: f"WEBHOOK-TOKEN-{secrets.token_hex(10)}")
    metrics_token: str = field(default_factory=lambda: f"METRICS-TOKEN-{secrets.token_hex(10)}")

    def values(self) -> dict[str, str]:
        return dict(vars(self))

    def needles(self) -> dict[str, str]:
        """Every spelling under which a secret could leak: as is, URL- and JSON-escaped, Basic."""
        found: dict[str, str] = {}
        for name, value in self.values().items():
            for variant in {value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1]}:
                found[variant] = name
        basic = base64.b64encode(f"{CALLOUT_USER}:{self.callout_password}".encode()).decode()
        found[basic] = "callout_password (Basic header)"
        return found


SECRETS = Secrets()


def callout_time(micros: int) -> str:
    """Autotask's callout timestamp (8 fraction digits, offset with seconds) for a moment in µs."""
    moment = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=micros)
    local = moment.astimezone(timezone(timedelta(hours=-4)))
    return f"{local:%Y-%m-%dT%H:%M:%S}.{local.microsecond:06d}00-04:00:00"


def form(ticket: int, label: str, last_activity: int | None, number: str | None = None) -> str:
    pairs = [("id", str(ticket)), ("number", number or f"T20260101.{ticket:04d}"), ("status", label)]
    if last_activity is not None:
        pairs += [
            ("created_datetime", callout_time(0)),
            ("last_activity_datetime", callout_time(last_activity)),
        ]
    pairs.append(("domain", "RELIABILITY.EXAMPLE"))
    return "&".join(f"{k}={quote_plus(v, safe=':')}" for k, v in pairs)


@dataclass
class Sent:
    """One request and every answer it got until it was answered for good."""

    ticket: int
    label: str
    codes: list[int | None] = field(default_factory=list)  # None: no answer (connection error)
    seconds: list[float] = field(default_factory=list)
    final: Answer | None = None
    retry_after: list[str | None] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)  # answers as received, for the secret scan
    spans: list[tuple[float, float]] = field(default_factory=list)  # (sent, answered), monotonic


class Driver:
    """Posts callouts the way Autotask does, and retries what was not recorded.

    A 503, a 429 or a dropped connection means "not recorded, try again": the
    callout is sent again after Retry-After (at most 1 s here), up to a deadline,
    so that the model may count every callout as applied once, in order per ticket.
    """

    def __init__(
        self, urls: dict[str, list[str]], model: Model, auth: tuple[str, str] | None, slow: float = 0.0
    ) -> None:
        self.urls = urls  # source -> callout URLs (several tokens: used in turn)
        self.model = model
        self.auth = auth
        self.slow = slow  # > 0: the body is sent in two halves this far apart (a slow client)
        self.sent: list[Sent] = []
        self._lock = threading.Lock()
        self._turn = 0

    def url(self, source: str) -> str:
        with self._lock:
            self._turn += 1
            choices = self.urls[source]
            return choices[self._turn % len(choices)]

    def callout(
        self, source: str, ticket: int, label: str, last_activity: int | None, *, deadline: float = 60.0
    ) -> Sent:
        """Send until answered for good; the model follows (callouts of one ticket: one thread)."""
        body = form(ticket, label, last_activity)
        sent = Sent(ticket, label)
        stop = time.monotonic() + deadline
        while True:
            started = time.monotonic()
            try:
                data: Any = self._slowly(body) if self.slow else body
                answer = requests.post(self.url(source), data=data, headers=FORM, auth=self.auth, timeout=10)
            except requests.RequestException:
                sent.spans.append((started, time.monotonic()))
                sent.codes.append(None)
                sent.seconds.append(time.monotonic() - started)
                sent.retry_after.append(None)
                wait = 0.2
            else:
                sent.spans.append((started, time.monotonic()))
                sent.codes.append(answer.status_code)
                sent.seconds.append(time.monotonic() - started)
                sent.retry_after.append(answer.headers.get("Retry-After"))
                sent.texts.append(f"{answer.status_code} {dict(answer.headers)!r} {answer.text}")
                if answer.status_code not in (429, 503):
                    data = answer.json()
                    sent.final = Answer(answer.status_code, data.get("action", ""), data.get("state"))
                    break
                wait = min(float(answer.headers.get("Retry-After") or 1), 1.0)
            if time.monotonic() + wait > stop:
                raise AssertionError(f"callout {ticket} {label!r} not answered for good: {sent.codes}")
            time.sleep(wait)
        expected = self.model.callout(source, ticket, label, last_activity)
        if len(sent.codes) == 1:  # answered at once: the answer must be the model's
            assert sent.final == expected, (source, ticket, label, sent.final, expected)
        with self._lock:
            self.sent.append(sent)
        return sent

    def _slowly(self, body: str) -> Iterator[bytes]:
        half = len(body) // 2
        yield body[:half].encode()
        time.sleep(self.slow)
        yield body[half:].encode()

    @property
    def requests(self) -> int:
        return sum(len(s.codes) for s in self.sent)

    def codes(self) -> Counter[int | None]:
        return Counter(code for s in self.sent for code in s.codes)


class Clock:
    """Strictly increasing callout times per run (µs), as Autotask's last activity is."""

    def __init__(self) -> None:
        self._now = 1_000_000
        self._lock = threading.Lock()

    def tick(self) -> int:
        with self._lock:
            self._now += 1_000
            return self._now


class ZoneDiscoveryDeployment(Deployment):
    """No fixed Autotask zone: the bridge discovers it from the simulator (and again on a 401)."""

    def env(self) -> dict[str, str]:
        env = super().env()
        env["AUTOTASK_ILERT_AUTOTASK_API_URL"] = ""
        env["AUTOTASK_ILERT_AUTOTASK_ZONE_LOOKUP_URL"] = f"{self._autotask_server.url}/atservicesrest"
        return env


def make_deployment(
    redis_url: str,
    prefix: str,
    workdir: Path,
    *,
    extra_env: dict[str, str] | None = None,
    basic: bool = True,
    cls: type[Deployment] = Deployment,
) -> Deployment:
    """The example app as it really runs, with distinctive secrets and logs at INFO."""
    s = SECRETS
    env = {
        "AUTOTASK_ILERT_CALLOUT_TOKEN": f"{s.callout_token},{s.callout_token_old}",
        "AUTOTASK_ILERT_WORKER_LEASE_SECONDS": "3",
        "ACCESS_LOG": "-",  # gunicorn's access log too: it must not show the token
        "LOG_LEVEL": "INFO",
    }
    if basic:
        env["AUTOTASK_ILERT_CALLOUT_USERNAME"] = CALLOUT_USER
        env["AUTOTASK_ILERT_CALLOUT_PASSWORD"] = s.callout_password
    if "METRICS_TOKEN" in OPTIONS_BY_NAME:
        env["AUTOTASK_ILERT_METRICS_TOKEN"] = s.metrics_token
    env.update(extra_env or {})
    deployment = cls(
        redis_url=redis_url,
        redis_prefix=prefix,
        workdir=workdir,
        root=ROOT,
        token=s.callout_token,
        integration_key=s.ilert_key,
        extra_env=env,
    )
    deployment.autotask.credentials = {AT_USER: (s.autotask_secret, s.autotask_code)}
    deployment.autotask.users = {AT_USER}
    if basic:
        deployment.autotask.callout_auth = (CALLOUT_USER, s.callout_password)
    return deployment


def callout_urls(d: Deployment) -> list[str]:
    """Both tokens of the default source (rotation): the driver uses them in turn."""
    base = f"{d.base_url}/autotask-ilert/callout/"
    return [base + SECRETS.callout_token, base + SECRETS.callout_token_old]


# -- what ilert and the store show -----------------------------------------------------------


def accepted(d: Deployment) -> dict[tuple[str, str], list[str]]:
    """Event types per (integration key, alert key) that ilert took: 2xx, or 400 'no open alert'."""
    per_key: dict[tuple[str, str], list[str]] = {}
    for event in d.ilert.events():
        code = event.status_code
        taken = code is not None and (
            200 <= code < 300 or (code == 400 and event.body.get("eventType") in ("ACCEPT", "RESOLVE"))
        )
        if taken:
            key = (event.body.get("integrationKey", ""), event.body.get("alertKey", ""))
            per_key.setdefault(key, []).append(event.body["eventType"])
    return per_key


@dataclass
class Comparison:
    lost: int = 0
    duplicated: int = 0
    resent: int = 0
    problems: list[str] = field(default_factory=list)


def compare_ilert(d: Deployment, model: Model, keys: dict[str, str]) -> Comparison:
    """ilert's final state against the model: events in order per ticket, one alert each."""
    result = Comparison()
    got = accepted(d)
    expected = {
        (keys[src], f"autotask-{tid}"): events for (src, tid), events in model.expected_events().items()
    }
    for slot in set(got) | set(expected):
        sequence = got.get(slot, [])
        collapsed = [e for i, e in enumerate(sequence) if i == 0 or e != sequence[i - 1]]
        want = expected.get(slot, [])
        result.resent += len(sequence) - len(collapsed)
        if collapsed != want:
            missing = Counter(want) - Counter(collapsed)
            extra = Counter(collapsed) - Counter(want)
            result.lost += sum(missing.values())
            result.duplicated += sum(extra.values())
            if not missing and not extra:
                result.lost += 1  # same events, wrong order: count it as a loss of order
            result.problems.append(f"{slot}: got {sequence}, want {want}")
    alerts = Counter((a.integration_key, a.key) for a in d.ilert.alerts())
    for slot, count in alerts.items():
        if count > 1:
            result.duplicated += count - 1
            result.problems.append(f"{slot}: {count} alerts")
    for src, tid in model.tickets:
        status = model.expected_alert_status(src, tid)
        alert = d.ilert.alert_for(f"autotask-{tid}", keys[src])
        if (alert.status if alert else None) != status:
            result.problems.append(f"{src}/{tid}: alert {alert.status if alert else None}, want {status}")
            if status is not None and alert is None:
                result.lost += 1
    return result


def store_client(d: Deployment) -> redis.Redis:
    return redis.Redis.from_url(d.redis_url, decode_responses=True)


def settle(d: Deployment, model: Model, keys: dict[str, str], timeout: float) -> None:
    """Wait until ilert has every expected event and the queues are empty (bounded)."""
    want = model.event_count()
    client = store_client(d)

    def done() -> bool:
        got = sum(len(v) for v in accepted(d).values())
        return got >= want and client.zcard(f"{d.redis_prefix}ready") == 0

    try:
        wait_until(done, timeout, interval=0.2, what=f"{want} events at ilert and empty queues")
    finally:
        client.close()


def dead_letters(d: Deployment) -> list[str]:
    client = store_client(d)
    try:
        return list(client.lrange(f"{d.redis_prefix}dead", 0, -1))
    finally:
        client.close()


# -- secrets ----------------------------------------------------------------------------------


def redis_dump(d: Deployment) -> str:
    """Every key under the deployment's prefix, with its value, as text.

    Read as bytes: some values are binary (the audit trail's records); their
    ``repr`` still shows every printable character, so a secret cannot hide.
    """
    client = redis.Redis.from_url(d.redis_url)
    parts: list[str] = []
    try:
        for key in client.scan_iter(match=f"{d.redis_prefix}*", count=1000):
            kind = client.type(key).decode()
            value: Any
            if kind == "string":
                value = client.get(key)
            elif kind == "list":
                value = client.lrange(key, 0, -1)
            elif kind == "hash":
                value = client.hgetall(key)
            elif kind == "zset":
                value = client.zrange(key, 0, -1, withscores=True)
            elif kind == "set":
                value = sorted(client.smembers(key))
            else:
                value = kind
            parts.append(f"{key} {value!r}")
    finally:
        client.close()
    return "\n".join(parts)


def metrics_text(d: Deployment) -> str:
    """{prefix}/metrics, read with the metrics token.

    The secret scan covers what this returns, so a failure to read it is an
    error, never an empty text that would make the scan quietly cover less.
    """
    answer = requests.get(
        f"{d.base_url}/autotask-ilert/metrics",
        headers={"Authorization": f"Bearer {SECRETS.metrics_token}"},
        timeout=5,
    )
    if answer.status_code != 200 or "autotask_ilert" not in answer.text:
        raise AssertionError(
            f"cannot scan the metrics: GET /metrics answered {answer.status_code} "
            f"with {len(answer.text)} characters"
        )
    return answer.text


@dataclass
class Scan:
    scanned_bytes: int
    found: dict[str, int]


def scan_for_secrets(d: Deployment, texts: Iterable[str]) -> Scan:
    """Logs, answers, metrics, dead letters, every Redis value, what Autotask and ilert were sent."""
    corpus = [d.logs(), redis_dump(d), metrics_text(d), "\n".join(dead_letters(d)), *texts]
    for ticket in d.autotask.tickets():
        corpus.append(json.dumps(d.autotask.notes(ticket["id"])))
    corpus.append(json.dumps([c.to_json() for c in d.autotask.calls()]))
    corpus.append(json.dumps([w.to_json() for w in d.ilert.webhooks()]))
    # ilert needs its integration key in each event body; everything else of the body must be clean.
    corpus.append(
        json.dumps([{k: v for k, v in e.body.items() if k != "integrationKey"} for e in d.ilert.events()])
    )
    text = "\n".join(corpus)
    found: dict[str, int] = {}
    for needle, name in SECRETS.needles().items():
        count = text.count(needle)
        if count:
            found[name] = found.get(name, 0) + count
    return Scan(len(text.encode()), found)


#: Scans done by the scenarios of this run, for the report's secrets row.
SCANS: list[tuple[str, Scan]] = []


# -- a Redis of the test's own, with AOF ----------------------------------------------------------


class OwnRedis:
    """A redis-server this test starts and kills, never the shared one on 6379."""

    def __init__(self, workdir: Path, appendfsync: str = "always") -> None:
        self.dir = workdir / "redis-data"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.appendfsync = appendfsync
        self.process: subprocess.Popen[bytes] | None = None
        self._log = (workdir / "redis-server.txt").open("ab")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is needed (make test installs it)"
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--appendonly",
                "yes",
                "--appendfsync",
                self.appendfsync,
                "--save",
                "",
                "--protected-mode",
                "yes",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(self._answers, 15, what="the test's redis-server")

    def _answers(self) -> bool:
        try:
            client = redis.Redis.from_url(self.url, socket_connect_timeout=0.3)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except redis.RedisError:
            return False

    def stop(self, sig: int = signal.SIGKILL) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(sig)
            process.wait(15)
        self.process = None

    def close(self) -> None:
        self.stop(signal.SIGKILL)
        self._log.close()


def in_threads(count: int, work: Iterable[Any], fn: Any) -> None:
    """Run fn(item) for each item with ``count`` threads; re-raise the first failure."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(count) as pool:
        for future in [pool.submit(fn, item) for item in work]:
            future.result()
