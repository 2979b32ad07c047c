"""Every console example in README.md and docs/*.md is run, so the docs cannot drift from the code.

The convention (CONTRIBUTING.md, "Console examples in the docs"):

- A command shown WITH its output is a ```console block: each command line
  starts with ``$ ``, and the lines up to the next ``$ `` are its output.
  Every ``flask ... autotask-ilert ...`` command in it is run, in order,
  against the example portal (``examples.msp_portal`` loaded through
  ``FLASK_APP``, whatever ``--app`` the page names) with a real Redis under a
  key prefix of its own, and its output (stdout and stderr, as a terminal shows
  them) must match the documented lines. JSON output is compared structurally:
  the same keys (in any order), list lengths and values.
- Values that vary are written as placeholders, each matching its kind of text
  on that line: ``<n>`` a number, ``<time>`` a timestamp as the commands print
  them, ``<duration>`` a duration such as ``24 s`` or ``3 min``, ``<id>`` an
  id, ``<url>`` a URL, ``<text>`` any text. A line that is only ``...`` stands
  for any number of lines. Any other ``<...>`` is literal text. A progress bar
  ending a line (``[####]  100%``) is what a terminal shows; it is dropped
  before comparing, since the commands here do not run on a terminal.
- The state a block needs (a ticket being retried, dead letters, ilert and
  Autotask answers faked at the HTTP level, a served app) is prepared by the setup named in an
  HTML comment on the line before the fence: ``<!-- console: setup=NAME -->``,
  or ``setup=A,B`` for several in that order (the names are the keys of
  ``SETUPS`` below). ``https://portal.example.com``
  in a block with ``setup=serve`` stands for the app the test serves.
- A plain ``curl URL`` (a GET, no options) in a block with ``setup=serve`` is
  run too, against the served example portal.
- A console block holding any other command (pip, make, gunicorn, redis-cli,
  curl with options or to another host) is not run, and must say so:
  ``<!-- console: not-run (why) -->``. The not-run blocks are counted and
  listed in the test report, so nothing is skipped silently.
- Commands without output stay in ```sh blocks. They are not run, only
  parsed: a ``flask ... autotask-ilert COMMAND ...`` line must name a real
  command with options and arguments that click accepts.
- A ```sh or ```text block whose lines start with ``$ `` is refused: it is a
  console example in the wrong fence.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import pytest
import requests
import responses
from click.testing import CliRunner
from flask import Flask
from flask.cli import cli as flask_cli

from flask_autotask_ilert.cli import cli_group
from flask_autotask_ilert.extension import get_bridge
from flask_autotask_ilert.testing.servers import ServerThread

from .conftest import Clock, data_text, free_port

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TOKEN = "docs-console-callout-token-0123456789"
KEY = "il1api-docs-console-integration-key"
PORTAL = "https://portal.example.com"
FORM = "application/x-www-form-urlencoded"

# -- reading the pages ---------------------------------------------------------------------------

_FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
_MARKER = re.compile(r"^\s*<!--\s*console:\s*(.*?)\s*-->\s*$")


@dataclass
class Block:
    """One fenced block of a page: where it starts, its language, lines and console marker."""

    page: Path
    line: int  # of the opening fence, 1-based
    lang: str
    lines: list[str]
    marker: str | None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def setup(self) -> list[str] | None:
        """The setups named by ``setup=a,b``, run in that order."""
        if self.marker and self.marker.startswith("setup="):
            return [name.strip() for name in self.marker.removeprefix("setup=").split(",")]
        return None

    @property
    def not_run(self) -> str | None:
        """The reason given in a not-run marker ("" when the marker has none)."""
        if self.marker and self.marker.startswith("not-run"):
            return self.marker.removeprefix("not-run").strip().strip("()").strip()
        return None


def blocks(page: Path) -> list[Block]:
    found = []
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, lang = opening.group(1), opening.group(2)
        end = i + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        body = [line[len(indent):] if line.startswith(indent) else line.lstrip() for line in lines[i + 1:end]]
        before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = _MARKER.match(before)
        found.append(Block(page, i + 1, lang, body, marker.group(1) if marker else None))
        i = end + 1
    return found


ALL = [b for page in PAGES for b in blocks(page)]
CONSOLE = [b for b in ALL if b.lang == "console"]
SHELL = [b for b in ALL if b.lang in ("sh", "bash", "shell")]


@dataclass
class Example:
    """One ``$ `` command of a console block and the output documented under it."""

    line: int
    command: str
    output: list[str] = field(default_factory=list)


def examples(block: Block) -> list[Example]:
    found: list[Example] = []
    for n, line in enumerate(block.lines, block.line + 1):
        if line.startswith("$ "):
            found.append(Example(n, line[2:].strip()))
        elif found:
            found[-1].output.append(line)
        elif line.strip():
            raise AssertionError(f"{block.where}: output before the first `$ ` command: {line!r}")
    return found


def bridge_args(command: str) -> list[str] | None:
    """The arguments after ``autotask-ilert`` of a ``flask [--app X] autotask-ilert ...`` line,
    None for any other command. A trailing ``# comment`` is dropped."""
    try:
        words = shlex.split(command, comments=True)
    except ValueError:
        return None
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
        words = words[1:]  # VAR=value before the command
    if not words or words[0] != "flask":
        return None
    words = words[1:]
    if words[:1] == ["--app"]:
        words = words[2:]
    elif words and words[0].startswith("--app="):
        words = words[1:]
    if words[:1] != ["autotask-ilert"]:
        return None
    return words[1:]


# -- placeholders ----------------------------------------------------------------------------------

PLACEHOLDERS = {
    "n": r"-?\d+(?:\.\d+)?",
    "time": r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:\.\d+)?(?: UTC|[+-]\d\d:\d\d|Z)?",
    "duration": r"\d+(?:\.\d+)? (?:s|min|h|days)",
    "id": r"[0-9A-Za-z._-]+",
    "url": r"https?://[^\s)]+",
    "text": r".+?",
}
_TOKEN = re.compile("<(" + "|".join(PLACEHOLDERS) + ")>")
_SENTINEL = "\x00placeholder:"


#: A click progress bar, as a terminal leaves it; the commands run here print none (no tty).
_PROGRESS_BAR = re.compile(r"\s+\[[#\- ]*\]\s+\d+%\s*$")


def line_pattern(documented: str) -> re.Pattern[str]:
    documented = _PROGRESS_BAR.sub("", documented)
    parts, at = [], 0
    for token in _TOKEN.finditer(documented):
        parts.append(re.escape(documented[at:token.start()]))
        parts.append(f"(?:{PLACEHOLDERS[token.group(1)]})")
        at = token.end()
    parts.append(re.escape(documented[at:]))
    return re.compile("".join(parts))


def _trimmed(lines: list[str]) -> list[str]:
    lines = [line.rstrip() for line in lines]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    return lines


def text_difference(documented: list[str], actual: list[str]) -> str | None:
    """None when the actual lines match the documented ones, else what first differed."""
    want, got = _trimmed(documented), _trimmed(actual)
    patterns = [None if w.strip() == "..." else line_pattern(w) for w in want]

    def match(i: int, j: int) -> bool:
        if i == len(want):
            return j == len(got)
        pattern = patterns[i]
        if pattern is None:
            return any(match(i + 1, k) for k in range(j, len(got) + 1))
        return j < len(got) and pattern.fullmatch(got[j]) is not None and match(i + 1, j + 1)

    if match(0, 0):
        return None
    # Point at the first documented line that has no match where it should be.
    j = 0
    for i, pattern in enumerate(patterns):
        if pattern is None:
            following = patterns[i + 1] if i + 1 < len(patterns) else None
            while j < len(got) and following is not None and not following.fullmatch(got[j]):
                j += 1
            continue
        if j >= len(got):
            return f"documented line {want[i]!r} is missing (the output ended)"
        if not pattern.fullmatch(got[j]):
            return f"documented {want[i]!r}\n     actual {got[j]!r}"
        j += 1
    return f"the output goes on after the documented lines: {got[j] if j < len(got) else ''!r}"


def _json_with_placeholders(text: str) -> Any:
    """The documented JSON, parsed: a placeholder standing for a whole value becomes a
    sentinel string; one inside a string stays there (the string is then a pattern)."""
    out, i, in_string = [], 0, False
    while i < len(text):
        char = text[i]
        if in_string:
            out.append(text[i:i + 2] if char == "\\" else char)
            i += 2 if char == "\\" else 1
            in_string = char != '"'
            continue
        token = _TOKEN.match(text, i)
        if token:
            out.append(json.dumps(_SENTINEL + token.group(1)))
            i = token.end()
            continue
        out.append(char)
        in_string = char == '"'
        i += 1
    return json.loads("".join(out))


def json_difference(documented: Any, actual: Any, path: str = "$") -> str | None:
    """None when ``actual`` has the documented structure, keys and values (placeholders allowed)."""
    if isinstance(documented, str) and documented.startswith(_SENTINEL):
        kind = documented.removeprefix(_SENTINEL)
        if actual is None or not re.fullmatch(PLACEHOLDERS[kind], str(actual)):
            return f"{path}: documented <{kind}>, actual {json.dumps(actual)}"
        return None
    if isinstance(documented, str) and _TOKEN.search(documented) and isinstance(actual, str):
        if line_pattern(documented).fullmatch(actual) is None:
            return f"{path}: documented {json.dumps(documented)}, actual {json.dumps(actual)}"
        return None
    if isinstance(documented, dict) and isinstance(actual, dict):
        missing, extra = sorted(set(documented) - set(actual)), sorted(set(actual) - set(documented))
        if missing or extra:
            return f"{path}: keys documented but missing {missing}, printed but undocumented {extra}"
        for key in documented:
            found = json_difference(documented[key], actual[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(documented, list) and isinstance(actual, list):
        if len(documented) != len(actual):
            return f"{path}: documented {len(documented)} item(s), actual {len(actual)}"
        for n, (want, got) in enumerate(zip(documented, actual, strict=True)):
            found = json_difference(want, got, f"{path}[{n}]")
            if found:
                return found
        return None
    if documented != actual or type(documented) is not type(actual):
        return f"{path}: documented {json.dumps(documented)}, actual {json.dumps(actual)}"
    return None


def output_difference(documented: list[str], actual: str) -> str | None:
    want = _trimmed(documented)
    if want and want[0].lstrip().startswith(("{", "[")):
        try:
            expected = _json_with_placeholders("\n".join(want))
        except ValueError as exc:
            return f"the documented output is not JSON (placeholders aside): {exc}"
        try:
            got = json.loads(actual)
        except ValueError:
            return f"documented JSON, the command printed:\n{actual}"
        return json_difference(expected, got)
    return text_difference(want, actual.splitlines())


# -- the state each example needs ---------------------------------------------------------------------


class Scene:
    """The environment one console block runs in: configuration, a setup app on the same
    Redis prefix, and the replacements for hosts that stand for something local."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, redis_url: str, prefix: str,
                 stack: list[Any]) -> None:
        self.monkeypatch = monkeypatch
        self.config: dict[str, str] = {
            "CALLOUT_TOKEN": TOKEN,
            "ILERT_INTEGRATION_KEY": KEY,
            "ILERT_API_URL": "http://ilert.invalid",
            "REDIS_URL": redis_url,
            "REDIS_PREFIX": prefix,
        }
        self.replace: dict[str, str] = {}
        self._stack = stack

    def enter(self, context: Any) -> Any:
        value = context.__enter__()
        self._stack.append(context)
        return value

    def app(self, clock: Clock | None = None) -> Flask:
        """The example portal as the commands will load it, for preparing state."""
        from examples.msp_portal import create_app

        self.apply()
        app = create_app({"TESTING": True})
        if clock is not None:
            bridge = get_bridge(app)
            bridge.clock = clock
            bridge.store._clock = clock
        return app

    def apply(self) -> None:
        """The configuration into the environment, where the example portal reads it."""
        for name in [k for k in os.environ if k.startswith("AUTOTASK_ILERT_")]:
            if name.removeprefix("AUTOTASK_ILERT_") not in self.config:
                self.monkeypatch.delenv(name)
        for name, value in self.config.items():
            self.monkeypatch.setenv(f"AUTOTASK_ILERT_{name}", value)


def _post(app: Flask, ticket: int, status: str) -> int:
    response = app.test_client().post(f"/autotask-ilert/callout/{TOKEN}",
                                      data=f"id={ticket}&status={status}", content_type=FORM)
    return int(response.status_code)


def _drain(app: Flask) -> int:
    from flask_autotask_ilert.worker import Worker

    return Worker(get_bridge(app), threads=1).drain(timeout=10)


def _ilert_answers(status: int, body: dict[str, Any]) -> responses.RequestsMock:
    mock = responses.RequestsMock(assert_all_requests_are_fired=False)
    mock.post("http://ilert.invalid/api/events", status=status, json=body)
    return mock


def setup_redis_down(scene: Scene) -> None:
    scene.config["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"


def setup_no_source(scene: Scene) -> None:
    scene.config.clear()


def setup_check(scene: Scene) -> None:
    """Two sources with an Autotask API user; ilert knows the key of `servers` only.

    ilert and Autotask are faked at the HTTP level with their recorded answers (a tenant
    with 12 queues, 12% of its hourly budget used), so the hosts the output names are
    the real ones a user sees.
    """
    api_user = {"autotask_username": "api@example.com", "autotask_secret": "at-docs-secret",
                "autotask_integration_code": "AT-DOCS-CODE"}
    scene.config = {key: value for key, value in scene.config.items()
                    if key in ("REDIS_URL", "REDIS_PREFIX")}
    scene.config["SOURCES"] = json.dumps({
        "servers": {"callout_token": TOKEN, "ilert_integration_key": KEY, **api_user},
        "backups": {"callout_token": TOKEN[::-1], "ilert_integration_key": KEY[::-1], **api_user},
    })

    def ilert(request: Any) -> tuple[int, dict[str, str], str]:
        if json.loads(request.body)["integrationKey"] == KEY:
            return 400, {}, json.dumps({"code": "NO_OPEN_ALERT_WITH_KEY", "message": "no open alert"})
        return 404, {}, json.dumps({"code": "NO_ALERT_SOURCE_FOUND",
                                    "message": "No alert source found for the integration key"})

    mock = scene.enter(responses.RequestsMock(assert_all_requests_are_fired=False))
    mock.add_callback(responses.POST, "https://api.ilert.com/api/events", callback=ilert)
    mock.get(re.compile(r"https://webservices\.autotask\.net/atservicesrest/v1\.0/zoneInformation.*"),
             json=json.loads(data_text("autotask-zone.json")))
    zone = "https://webservices5.autotask.net/atservicesrest/v1.0"
    mock.get(f"{zone}/ThresholdInformation",
             json={"externalRequestThreshold": 10000, "currentTimeframeRequestCount": 1200})
    fields = json.loads(data_text("autotask-ticket-fields.json"))
    fields["fields"].append({"name": "queueID", "isPickList": True, "picklistValues": [
        {"value": str(29683354 + n), "label": f"Queue {n}", "isActive": True} for n in range(12)]})
    mock.get(f"{zone}/Tickets/entityInformation/fields", json=fields)


def setup_ticket_retrying(scene: Scene) -> None:
    """Ticket 7865: its alert create failed four times (ilert answers 503) and is waiting for
    the next try; the ticket went to Waiting Customer meanwhile, so an accept waits behind it."""
    scene.config["RETRY_BASE_SECONDS"] = "30"  # the fourth failure's next try is 15 s away or more
    now = time.time()
    clock = Clock(now - 1000)  # tries 1 to 3 wait 210 s at most: all of it is in the past
    app = scene.app(clock)
    store = get_bridge(app).store
    with _ilert_answers(503, {"message": "unavailable"}):
        assert _post(app, 7865, "New") == 202
        for attempt in range(1, 5):
            if attempt == 4:
                clock.now = max(clock.now, now)
            _drain(app)
            due, _ = store.schedule("default", 7865)
            assert due is not None
            if attempt == 3:
                clock.advance(5)
                assert _post(app, 7865, "Waiting Customer") == 202
            if attempt < 4:
                clock.now = max(clock.now, due / 1000)
    assert store.queued("default", 7865)[0]["attempts"] == 4


def setup_dead_letter(scene: Scene) -> None:
    """Ticket 7867's alert create was refused by ilert for good.

    """
    app = scene.app()
    with _ilert_answers(400, {"code": "BAD_REQUEST", "message": "summary must not be blank"}):
        assert _post(app, 7867, "New") == 202
        _drain(app)
    assert len(get_bridge(app).store.dead_letters()) == 1


def setup_queue(scene: Scene) -> None:
    """A dead letter, ticket 7865 being retried, ticket 7866 just queued, two live workers."""
    setup_dead_letter(scene)  # first: once ilert's breaker opens on 7865, no other create is sent
    setup_ticket_retrying(scene)
    app = scene.app()
    assert _post(app, 7866, "New") == 202
    store = get_bridge(app).store
    for worker in ("portal-1:4211:0", "portal-2:3990:0"):
        store.heartbeat(worker, 60_000)


def setup_replay(scene: Scene) -> None:
    """Three alert creates died (ilert did not know the key); ticket 7890 was resolved since."""
    app = scene.app()
    with _ilert_answers(404, {"code": "NO_ALERT_SOURCE_FOUND", "message": "unknown key"}):
        for ticket in (7888, 7889, 7890):
            assert _post(app, ticket, "New") == 202
        _drain(app)
    with _ilert_answers(400, {"code": "NO_OPEN_ALERT_WITH_KEY", "message": "no open alert"}):
        assert _post(app, 7890, "Complete") == 202
        _drain(app)
    assert len(get_bridge(app).store.dead_letters()) == 3


def setup_serve(scene: Scene) -> None:
    """The example portal served on a loopback port, standing for https://portal.example.com."""
    server = scene.enter(ServerThread(scene.app()))
    scene.replace[PORTAL] = server.url


def setup_not_ready(scene: Scene) -> None:
    """No worker for 94 s, and 17 tickets waiting, the oldest for 412 s."""
    now = time.time()
    clock = Clock(now - 412)
    app = scene.app(clock)
    for ticket in range(7801, 7818):
        assert _post(app, ticket, "New") == 202
    clock.now = now - 94.2
    get_bridge(app).store.heartbeat("portal-1:4211:0", 3_600_000)


SETUPS: dict[str, Callable[[Scene], None]] = {
    "not-ready": setup_not_ready,
    "redis-down": setup_redis_down,
    "no-source": setup_no_source,
    "check": setup_check,
    "ticket-retrying": setup_ticket_retrying,
    "dead-letter": setup_dead_letter,
    "queue": setup_queue,
    "replay": setup_replay,
    "serve": setup_serve,
}

# -- the tests -----------------------------------------------------------------------------------

RUN = [b for b in CONSOLE if b.not_run is None]
NOT_RUN = [b for b in CONSOLE if b.not_run is not None]


@pytest.fixture
def scene(monkeypatch: pytest.MonkeyPatch, redis_server: str, redis_prefix: str) -> Iterator[Scene]:
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    stack: list[Any] = []
    yield Scene(monkeypatch, redis_server, redis_prefix, stack)
    for context in reversed(stack):
        context.__exit__(None, None, None)


def _answers(output: list[str]) -> str | None:
    """What the documented session typed at confirmation prompts (``[y/N]: y``)."""
    typed = [m.group(1) for line in output if (m := re.search(r"\[y/N\]: (\S+)\s*$", line))]
    return "".join(f"{answer}\n" for answer in typed) or None


@pytest.mark.parametrize("block", RUN, ids=[b.where for b in RUN])
def test_console_example_matches_the_example_app(block: Block, scene: Scene) -> None:
    assert block.marker is None or block.setup is not None, (
        f"{block.where}: unknown console marker {block.marker!r}")
    for name in block.setup or []:
        assert name in SETUPS, f"{block.where}: unknown setup {name!r}; known: {', '.join(SETUPS)}"
        SETUPS[name](scene)
    scene.apply()
    runnable = examples(block)
    assert runnable, f"{block.where}: a console block without a `$ ` command"
    for example in runnable:
        where = f"{block.page.relative_to(ROOT)}:{example.line}"
        command, output = example.command, example.output
        for stands_for, local in scene.replace.items():
            command = command.replace(stands_for, local)
            output = [line.replace(stands_for, local) for line in output]
        printed = run(command, output, scene)
        assert printed is not None, (
            f"{where}: the test cannot run `{example.command}` (it runs `flask autotask-ilert ...`, "
            "and `curl URL` with setup=serve); mark the block <!-- console: not-run (why) -->")
        assert "Traceback" not in printed, f"{where}: {printed}"
        difference = output_difference(output, printed)
        assert difference is None, (
            f"{where}: the output of `{example.command}` differs from the docs "
            f"({block.marker or 'no setup'}):\n{difference}\n--- the command printed:\n{printed}")


def run(command: str, output: list[str], scene: Scene) -> str | None:
    """What the command prints, as a terminal shows it; None if the test cannot run it."""
    args = bridge_args(command)
    if args is not None:
        assert args[:1] != ["worker"] or "--burst" in args or "--help" in args, (
            "a running worker never ends: show `worker --burst`, or mark the block not-run")
        result = CliRunner().invoke(flask_cli, ["autotask-ilert", *args],
                                    env={"FLASK_APP": "examples.msp_portal"},
                                    input=_answers(output))
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception  # a crash: its traceback says more than any difference
        return result.output
    words = shlex.split(command, comments=True)
    served = tuple(scene.replace.values())
    if len(words) == 2 and words[0] == "curl" and served and words[1].startswith(served):
        return requests.get(words[1], timeout=10).text
    return None


def test_console_blocks_not_run_say_why_and_are_counted(capsys: pytest.CaptureFixture[str]) -> None:
    assert CONSOLE, "no console block found: did the pages move?"
    for block in NOT_RUN:
        assert block.not_run, f"{block.where}: `not-run` needs a reason: <!-- console: not-run (why) -->"
    lines = [f"docs console examples: {len(RUN)} block(s) run, {len(NOT_RUN)} not run"]
    lines += [f"  not run: {b.where} ({b.not_run})" for b in NOT_RUN]
    with capsys.disabled():
        print("\n" + "\n".join(lines))


def test_commands_with_output_are_in_console_blocks() -> None:
    wrong = []
    for block in ALL:
        if block.lang == "console":
            continue
        if block.marker is not None:
            wrong.append(f"{block.where}: a console marker on a ```{block.lang} block")
        if any(line.startswith("$ ") for line in block.lines):
            wrong.append(f"{block.where}: ```{block.lang} block with `$ ` command lines: fence it "
                         "as ```console so the test runs it (or drop the `$ ` for commands only)")
    assert not wrong, "\n".join(wrong)


def shell_commands(block: Block) -> Iterator[tuple[int, str]]:
    """(line number, command) of a shell block, a command continued with ``\\`` joined up."""
    pending, first = "", 0
    for n, line in enumerate(block.lines, block.line + 1):
        if not pending:
            first = n
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        yield first, pending.strip()
        pending = ""
    if pending:
        yield first, pending.strip()


def parse_error(args: list[str]) -> str | None:
    """Why click would refuse ``flask autotask-ilert ARGS`` before running it, None if it would not.

    Subcommands of a group (``webhook install``) are followed down; the command's own
    parser then checks its options and arguments, as click does before calling it.
    """
    command: click.Command = cli_group
    path = ["autotask-ilert"]
    words = list(args)
    while isinstance(command, click.Group) and words and not words[0].startswith("-"):
        sub = command.commands.get(words[0])
        if sub is None:
            return (f"no command {' '.join([*path[1:], words[0]])!r}; there are "
                    f"{', '.join(sorted(command.commands))}")
        path.append(words.pop(0))
        command = sub
    try:
        command.make_context(" ".join(path), words)
    except click.exceptions.Exit:
        return None  # --help
    except click.ClickException as exc:
        return exc.format_message()
    return None


@pytest.mark.parametrize("block", SHELL, ids=[b.where for b in SHELL])
def test_shell_commands_name_real_commands_and_options(block: Block) -> None:
    for n, line in shell_commands(block):
        args = bridge_args(line)
        if args is None or "COMMAND" in args:
            continue  # not the bridge's CLI, or the synopsis `COMMAND [OPTIONS]`
        problem = parse_error(args)
        assert problem is None, f"{block.page.relative_to(ROOT)}:{n}: `{line}`: {problem}"


# -- the checker itself: it must catch what drifted --------------------------------------------------


def test_placeholders_match_their_kind_only() -> None:
    assert text_difference(["queued <time> (<duration> ago), <n> failed"],
                           ["queued 2026-05-04 09:12:40 UTC (3 min ago), 4 failed"]) is None
    assert text_difference(["at <time>"], ["at 2026-11-30T10:10:27.088962+00:00"]) is None
    assert text_difference(["next try in <duration>"], ["next try in soon"]) is not None
    assert text_difference(["<n> failed"], ["four failed"]) is not None
    assert text_difference(["a <ticket> b"], ["a <ticket> b"]) is None  # not a placeholder
    assert text_difference(["a <ticket> b"], ["a 7 b"]) is not None


def test_an_ellipsis_line_stands_for_any_lines_and_nothing_else() -> None:
    assert text_difference(["first", "...", "last"], ["first", "a", "b", "last"]) is None
    assert text_difference(["first", "...", "last"], ["first", "last"]) is None
    difference = text_difference(["first", "...", "last"], ["first", "a", "end"])
    assert difference is not None and "'last'" in difference
    assert text_difference(["one"], ["one", "two"]) is not None  # more output than documented
    assert text_difference(["one", "two"], ["one"]) is not None


def test_a_progress_bar_is_what_a_terminal_shows() -> None:
    assert text_difference(["Replaying 3 dead letter(s)  [#####]  100%"],
                           ["Replaying 3 dead letter(s)"]) is None
    assert text_difference(["Replaying 3 dead letter(s)  [#####]  100%"],
                           ["Replaying 2 dead letter(s)"]) is not None


def test_json_is_compared_by_structure() -> None:
    documented = ['{"tickets": 2,', ' "age_s": <n>, "oldest": [{"ticket": 7865}]}']
    actual = '{"tickets": 2, "age_s": 191.4, "oldest": [{"ticket": 7865}]}'
    assert output_difference(documented, actual) is None
    missing = output_difference(documented, '{"tickets": 2, "age_s": 1, "oldest": [], "workers": 0}')
    assert missing is not None and "undocumented ['workers']" in missing
    assert output_difference(documented, '{"oldest": [{"ticket": 7865}], "age_s": 1, "tickets": 2}') is None
    in_string = ['{"error": "no heartbeat for <n> s (limit 30 s)", "at": "<time>"}']
    assert output_difference(in_string, '{"error": "no heartbeat for 94.2 s (limit 30 s)", '
                                        '"at": "2026-05-04 09:12:40 UTC"}') is None
    assert output_difference(in_string, '{"error": "no heartbeat for 94.2 s (limit 60 s)", '
                                        '"at": "2026-05-04 09:12:40 UTC"}') is not None
    wrong = output_difference(documented, '{"tickets": 3, "age_s": 1, "oldest": [{"ticket": 7865}]}')
    assert wrong == "$.tickets: documented 2, actual 3"
    assert output_difference(documented, '{"tickets": 2, "age_s": null, "oldest": [{"ticket": 7865}]}')
    assert output_difference(['{"n": 1}'], "n=1") is not None


def test_shell_lines_are_checked_against_click() -> None:
    line = "flask --app yourapp autotask-ilert queue --limit 1  # note"
    assert bridge_args(line) == ["queue", "--limit", "1"]
    assert bridge_args('FLASK_APP=x flask --app "a:b()" autotask-ilert check') == ["check"]
    assert bridge_args("gunicorn -w 2 app") is None
    assert parse_error(["queue", "--limit", "1"]) is None
    assert parse_error(["status", "7865", "--json"]) is None
    assert parse_error(["worker", "--help"]) is None
    assert "no command 'nosuch'" in (parse_error(["nosuch"]) or "")
    assert "--since" in (parse_error(["queue", "--since", "1"]) or "")
    assert parse_error(["status"]) is not None  # TICKET is required
