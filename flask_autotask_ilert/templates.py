"""Custom alert text: Jinja2 templates for an alert's summary, details and extra custom details.

Templates come from the configuration, which an MSP's staff edit, so they run
in Jinja2's sandboxed environment: a template can read the context it is given
and nothing else of the process. They are compiled once, when the settings are
loaded, and the top-level names each one uses are found there too
(``jinja2.meta.find_undeclared_variables``): an unknown name is a configuration
error, and the worker reads an extra Autotask entity (company, contact,
resource) only for a source whose templates name it.

Rendering never raises: a template that fails gives ``None`` for its field and
the error's text, and the alert goes out with the default text for that field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jinja2 import ChainableUndefined, Template, TemplateSyntaxError, meta
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

#: The names a template may use (docs/alert-text.md describes each).
CONTEXT_NAMES = ("ticket", "company", "contact", "resource", "callout", "source")
#: The context names that cost an Autotask read (cached), each with its entity.
ENTITY_NAMES = ("company", "contact", "resource")
#: The options that hold templates, and the metric label of each.
SUMMARY, DETAILS, CUSTOM_DETAILS = "summary", "details", "custom_details"
#: The largest text or list ``*`` may build, and the largest exponent of ``**``.
MAX_PRODUCT = 100_000
MAX_EXPONENT = 100


class _Sandbox(SandboxedEnvironment):
    """The sandbox, stricter in two ways, through its documented hooks.

    A reach for an unsafe attribute raises at once: missing fields render empty
    (below), and so, by default, would the sandbox's refusal; raised, it is
    logged and counted like any failed template. And ``*`` and ``**`` may not
    build huge values (``{{ "x" * 10**9 }}``), since a worker renders templates
    in the middle of delivering pages.
    """

    intercepted_binops = frozenset({"*", "**"})

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if not super().is_safe_attribute(obj, attr, value):
            raise SecurityError(f"access to attribute {attr!r} of a {type(obj).__name__!r} "
                                "object is unsafe")
        return True

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and _number(left) and _number(right) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"exponent above {MAX_EXPONENT}")
        if operator == "*":
            for sized, times in ((left, right), (right, left)):
                if isinstance(sized, str | list | tuple) and _number(times) \
                        and len(sized) * times > MAX_PRODUCT:
                    raise SecurityError(f"'*' would build a value of over {MAX_PRODUCT} items")
        return super().call_binop(context, operator, left, right)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# A missing field renders empty, also through a chain (``company.address.city``):
# tickets differ in which fields they fill, and a blank beats no page.
_ENV = _Sandbox(undefined=ChainableUndefined, autoescape=False)


class TemplateProblem(ValueError):
    """A template that cannot be used: its syntax, or a name the context does not have."""


def compile_text(text: Any) -> tuple[Template, frozenset[str]]:
    """The compiled template and the top-level names it uses; TemplateProblem if unusable."""
    if not isinstance(text, str) or not text.strip():
        raise TemplateProblem("must be non-empty template text")
    try:
        parsed = _ENV.parse(text)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(f"has a syntax error on line {exc.lineno}: {exc.message}") from None
    names = frozenset(meta.find_undeclared_variables(parsed))
    unknown = sorted(names - set(CONTEXT_NAMES))
    if unknown:
        raise TemplateProblem(
            f"uses unknown name(s) {', '.join(unknown)}; a template may use "
            + ", ".join(CONTEXT_NAMES)
        )
    return _ENV.from_string(text), names


@dataclass(frozen=True)
class JinjaText:
    """A constraint of ``config.OPTIONS``: one template, valid syntax, known names only."""

    def check(self, value: Any) -> str | None:
        try:
            compile_text(value)
        except TemplateProblem as exc:
            return str(exc)
        return None

    def describe(self) -> str:
        return "a Jinja2 template using " + ", ".join(f"`{n}`" for n in CONTEXT_NAMES)


@dataclass(frozen=True)
class JinjaMapping:
    """A constraint of ``config.OPTIONS``: a mapping of custom-detail keys to templates."""

    def check(self, value: Any) -> str | None:
        if not isinstance(value, Mapping):
            return "must be a mapping of keys to templates"
        for key, text in value.items():
            if not isinstance(key, str) or not key.strip():
                return "must have non-empty text keys"
            try:
                compile_text(text)
            except TemplateProblem as exc:
                return f"[{key!r}] {exc}"
        return None

    def describe(self) -> str:
        return "key -> Jinja2 template"


@dataclass(frozen=True)
class Rendered:
    """What the templates gave; ``None`` where there was no template or it failed."""

    summary: str | None = None
    details: str | None = None
    custom_details: Mapping[str, str] = field(default_factory=dict)
    #: (which option, why) for each template that failed.
    failures: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class AlertTemplates:
    """The templates of one source (or one routing rule), compiled."""

    summary: Template | None = None
    details: Template | None = None
    custom_details: tuple[tuple[str, Template], ...] = ()
    names: frozenset[str] = frozenset()

    @property
    def entities(self) -> frozenset[str]:
        """The Autotask entities these templates read (company, contact, resource)."""
        return self.names & frozenset(ENTITY_NAMES)

    def render(self, context: Mapping[str, Any]) -> Rendered:
        failures: list[tuple[str, str]] = []

        def one(what: str, template: Template | None) -> str | None:
            if template is None:
                return None
            try:
                return template.render(context)
            except Exception as exc:  # any error of any template: the default text goes out
                failures.append((what, f"{type(exc).__name__}: {exc}"))
                return None

        custom: dict[str, str] = {}
        for key, template in self.custom_details:
            text = one(CUSTOM_DETAILS, template)
            if text is not None:
                custom[key] = text
        return Rendered(one(SUMMARY, self.summary), one(DETAILS, self.details), custom,
                        tuple(failures))


def build(
    summary: Any = None, details: Any = None, custom_details: Mapping[str, Any] | None = None
) -> AlertTemplates | None:
    """Compile the templates of one source or rule; None when none is set. Raises TemplateProblem."""
    if not summary and not details and not custom_details:
        return None
    names: set[str] = set()

    def compiled(what: str, text: Any) -> Template | None:
        if not text:
            return None
        try:
            template, used = compile_text(text)
        except TemplateProblem as exc:
            raise TemplateProblem(f"{what} {exc}") from None
        names.update(used)
        return template

    custom = tuple(
        (str(key), template)
        for key, text in (custom_details or {}).items()
        if (template := compiled(f"CUSTOM_DETAILS[{key!r}]", text)) is not None
    )
    return AlertTemplates(
        summary=compiled("SUMMARY_TEMPLATE", summary),
        details=compiled("DETAILS_TEMPLATE", details),
        custom_details=custom,
        names=frozenset(names),
    )
