"""docs/configuration.md documents every option of ``config.OPTIONS``, as generated, one to one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flask_autotask_ilert import config_reference
from flask_autotask_ilert.config import OPTIONS

PAGE = Path(__file__).parents[1] / "docs" / "configuration.md"


def test_the_committed_reference_is_the_generated_one() -> None:
    current = PAGE.read_text(encoding="utf-8")
    assert config_reference.render(current) == current, (
        "docs/configuration.md is out of date with config.OPTIONS: run `make config-docs` "
        "(python -m flask_autotask_ilert.config_reference --write) and commit the result"
    )


def test_every_option_is_documented_exactly_once() -> None:
    keys = re.findall(r"^\| `(AUTOTASK_ILERT_\w+)` \|", PAGE.read_text(encoding="utf-8"), re.MULTILINE)
    assert sorted(keys) == sorted(o.key for o in OPTIONS)


def test_sections() -> None:
    sections = {o.name: config_reference.section_of(o) for o in OPTIONS}
    assert sections["REDIS_URL"] == "app"
    assert sections["CALLOUT_TOKEN"] == "source"
    assert sections["BIDIRECTIONAL"] == "sync"
    assert sections["TICKET_UPDATER"] == "sync"
    assert all(sections[o.name] == "app" for o in OPTIONS if not o.per_source)


def test_a_missing_block_is_an_error_not_a_silent_omission() -> None:
    page = PAGE.read_text(encoding="utf-8")
    broken = page.replace("<!-- BEGIN generated options: sync", "<!-- sync", 1)
    with pytest.raises(ValueError, match="sync"):
        config_reference.render(broken)


def test_hand_written_text_survives_and_stale_rows_are_replaced() -> None:
    page = PAGE.read_text(encoding="utf-8")
    stale = page.replace("| `AUTOTASK_ILERT_URL_PREFIX` |", "| `AUTOTASK_ILERT_URL_PREFIX_OLD` |", 1)
    assert stale != page
    assert config_reference.render(stale) == page


def test_check_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy = tmp_path / "configuration.md"
    copy.write_text(PAGE.read_text(encoding="utf-8").replace("| no |", "| maybe |", 1), encoding="utf-8")
    assert config_reference.main(["--check", str(copy)]) == 1
    assert "make config-docs" in capsys.readouterr().err
    assert config_reference.main(["--write", str(copy)]) == 0
    assert config_reference.main(["--check", str(copy)]) == 0
    assert copy.read_text(encoding="utf-8") == PAGE.read_text(encoding="utf-8")


def test_each_row_shows_the_options_constraint() -> None:
    rows = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^\| `(AUTOTASK_ILERT_\w+)` \| [^|]+ \| ((?:[^|\\]|\\.)+) \|",
                             PAGE.read_text(encoding="utf-8"), re.MULTILINE)
    }
    for option in OPTIONS:
        wanted = option.check.describe() if option.check else "any"
        assert rows[option.key].strip() == wanted.replace("|", "\\|"), option.name
    assert rows["AUTOTASK_ILERT_AUDIT_ENTRIES"].strip() == "0 to 100"
    assert rows["AUTOTASK_ILERT_LOG_FORMAT"].strip() == "`text` or `json`"
    assert rows["AUTOTASK_ILERT_ILERT_RATE_LIMIT"].strip() == "≥ 0"
