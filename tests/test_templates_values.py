"""Alert text templates, value by value: the sandbox's limits at their edges and the words of each failure."""

from __future__ import annotations

from typing import Any

import pytest

from flask_autotask_ilert.errors import ConfigurationError
from flask_autotask_ilert.templates import build

from .conftest import AppFactory

TICKET = {"ticket": {"title": "Disk full", "priority": "High"}}


def summary_of(text: str) -> tuple[str | None, tuple[tuple[str, str], ...]]:
    templates = build(text)
    assert templates is not None
    rendered = templates.render(TICKET)
    return rendered.summary, rendered.failures


@pytest.mark.parametrize(("text", "summary"), [
    ("{{ 2 ** 100 }}", "1267650600228229401496703205376"),
    ('{{ ("ab" * 50000) | length }}', "100000"),
    ("{{ (50000 * [1, 2]) | length }}", "100000"),
    ("{{ ticket.title.upper() }}", "DISK FULL"),  # a safe method of a value the context holds
])
def test_what_the_sandbox_allows_renders(text: str, summary: str) -> None:
    assert summary_of(text) == (summary, ())


@pytest.mark.parametrize(("text", "why"), [
    ("{{ 2 ** 101 }}", "SecurityError: exponent above 100"),
    ("{{ 2 ** -101 }}", "SecurityError: exponent above 100"),
    ('{{ "ab" * 50001 }}', "SecurityError: '*' would build a value of over 100000 items"),
    ('{{ 50001 * "ab" }}', "SecurityError: '*' would build a value of over 100000 items"),
    # dict is one of Jinja's globals: a template may name it, not reach into the type.
    ("{{ dict.mro }}", "SecurityError: access to attribute 'mro' of a 'type' object is unsafe"),
    ("{{ ticket.title.__class__ }}",
     "SecurityError: access to attribute '__class__' of a 'str' object is unsafe"),
    # Text is no number: ** over it is the type error it is, not a refused exponent.
    ("{{ ticket.title ** 200 }}", "TypeError: unsupported operand type(s) for ** or pow(): 'str' and 'int'"),
])
def test_what_the_sandbox_refuses_fails_with_its_reason(text: str, why: str) -> None:
    assert summary_of(text) == (None, (("summary", why),))


def test_a_failed_custom_detail_is_named_as_one_and_the_others_render() -> None:
    templates = build(None, None, {"broken": "{{ 1 / 0 }}", "site": "HQ {{ ticket.title }}"})
    assert templates is not None
    rendered = templates.render(TICKET)
    assert rendered.custom_details == {"site": "HQ Disk full"}
    assert rendered.failures == (("custom_details", "ZeroDivisionError: division by zero"),)


@pytest.mark.parametrize(("option", "value", "says"), [
    ("summary_template", "{{ tikcet.title }} {{ site }}",
     "SUMMARY_TEMPLATE uses unknown name(s) site, tikcet; a template may use ticket, company, contact, "
     "resource, callout, source"),
    ("custom_details", {"  ": "{{ ticket.id }}"}, "CUSTOM_DETAILS must have non-empty text keys"),
    ("custom_details", {7: "{{ ticket.id }}"}, "CUSTOM_DETAILS must have non-empty text keys"),
])
def test_each_refusal_of_a_template_option_says_what_is_wrong(
    make_app: AppFactory, option: str, value: Any, says: str
) -> None:
    with pytest.raises(ConfigurationError) as error:
        make_app(**{option: value})
    assert str(error.value) == f"source 'default': {says}"
