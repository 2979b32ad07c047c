"""The configuration reference in docs/configuration.md, generated from ``config.OPTIONS``.

``OPTIONS`` is the one place an option is defined: its name, default, kind,
the values it allows (its constraint's ``describe()``), whether it is a secret or
per source, and its documentation. The tables of
docs/configuration.md are written from it, between marker comments, and the
hand-written text around them is left as it is. ``tests/test_config_reference.py``
fails when the committed page differs from what this module generates, so a new
or changed option cannot go undocumented::

    python -m flask_autotask_ilert.config_reference            # print the tables
    python -m flask_autotask_ilert.config_reference --write    # rewrite docs/configuration.md
    python -m flask_autotask_ilert.config_reference --check    # exit 1 if it is out of date

(``make config-docs`` runs ``--write``.) Options go to three tables, in the order
of ``OPTIONS``: application-wide ones (not per source), per-source ones, and the
per-source options of bidirectional sync, which are ``BIDIRECTIONAL`` and every
per-source option declared after it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import OPTIONS, Option

SECTIONS = ("app", "source", "sync")
SYNC_FIRST = "BIDIRECTIONAL"
DEFAULT_PAGE = Path("docs") / "configuration.md"

_KINDS: dict[Any, str] = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "text",
    "json": "mapping (JSON)",
    "tokens": "token list",
    "list": "list",
    "object": "object or import path",
}
_BLOCK = re.compile(
    r"(?P<begin><!-- BEGIN generated options: (?P<section>\w+) .*?-->\n)"
    r".*?"
    r"(?P<end><!-- END generated options -->)",
    re.DOTALL,
)


def section_of(option: Option) -> str:
    """Which table an option goes in: ``app``, ``source`` or ``sync``."""
    if not option.per_source:
        return "app"
    names = [o.name for o in OPTIONS]
    if SYNC_FIRST in names and names.index(option.name) >= names.index(SYNC_FIRST):
        return "sync"
    return "source"


def _default(option: Option) -> str:
    value = option.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    if isinstance(value, (dict, list, tuple)):
        return f"`{json.dumps(value)}`"
    return f"`{value}`"


def allowed(option: Option) -> str:
    """The option's constraint in words; "any" when its kind is the only rule."""
    return option.check.describe() if option.check else "any"


def _cell(text: str) -> str:
    """Text for one table cell: on one line, with its pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def table(section: str) -> str:
    """The markdown table of one section, rows in the order of ``OPTIONS``."""
    if section not in SECTIONS:
        raise ValueError(f"unknown section {section!r}; expected one of {', '.join(SECTIONS)}")
    lines = ["| key | type | allowed | default | secret | meaning |", "|---|---|---|---|---|---|"]
    for option in OPTIONS:
        if section_of(option) == section:
            lines.append(
                f"| `{option.key}` | {_KINDS.get(option.kind, str(option.kind))} "
                f"| {_cell(allowed(option))} "
                f"| {_cell(_default(option))} | {'yes' if option.secret else 'no'} "
                f"| {_cell(option.doc)} |"
            )
    return "\n".join(lines) + "\n"


def render(page: str) -> str:
    """``page`` with every generated block rewritten from ``OPTIONS``; the rest is kept as is.

    Raises ``ValueError`` when a section's block is missing or appears twice, so
    that no option can silently drop out of the reference.
    """
    found = [m.group("section") for m in _BLOCK.finditer(page)]
    for section in SECTIONS:
        if found.count(section) != 1:
            raise ValueError(
                f"expected one generated block for section {section!r}, found {found.count(section)}: "
                f"<!-- BEGIN generated options: {section} ... --> ... <!-- END generated options -->"
            )
    return _BLOCK.sub(
        lambda m: m.group("begin") + table(m.group("section")) + m.group("end"), page
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flask_autotask_ilert.config_reference",
        description="Generate the option tables of docs/configuration.md from config.OPTIONS.",
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="rewrite the tables in the page")
    action.add_argument("--check", action="store_true", help="exit 1 if the page is out of date")
    parser.add_argument("page", nargs="?", type=Path, default=DEFAULT_PAGE,
                        help=f"the page holding the marked tables (default: {DEFAULT_PAGE})")
    args = parser.parse_args(argv)
    if not (args.write or args.check):
        for section in SECTIONS:
            print(f"<!-- {section} -->\n{table(section)}")
        return 0
    current = args.page.read_text(encoding="utf-8")
    try:
        wanted = render(current)
    except ValueError as exc:
        print(f"{args.page}: {exc}", file=sys.stderr)
        return 1
    if args.check:
        if wanted != current:
            print(f"{args.page} is out of date: run `make config-docs`", file=sys.stderr)
            return 1
        return 0
    if wanted != current:
        args.page.write_text(wanted, encoding="utf-8")
        print(f"rewrote the option tables of {args.page}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
