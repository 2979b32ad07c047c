"""What a valid value of one option is, as data: each option of ``config.OPTIONS`` names its constraint.

A constraint answers two questions. ``check(value)`` says what is wrong with a
value that has already been converted to the option's kind (``None`` when
nothing is): the text is a phrase that follows the option's name, such as
``must be > 0``, so ``load_settings`` can put it after the key or after the
source and option name. ``describe()`` is the same rule in markdown for the
"allowed" column of docs/configuration.md. Neither ever repeats the value,
since the value may be a secret.

Rules that span several options (pairs set together, tokens unique across
sources) are not constraints: they stay in ``config.load_settings``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from limits import RateLimitItem, parse_many

MIN_TOKEN_LENGTH = 16


class Constraint(Protocol):
    def check(self, value: Any) -> str | None:
        """What is wrong with ``value``, as a phrase after the option's name; None if it is valid."""

    def describe(self) -> str:
        """The rule, in markdown, for the configuration reference."""


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class AtLeast:
    """A number no lower than ``low`` (or, with ``exclusive``, above it)."""

    low: float
    exclusive: bool = False

    def check(self, value: Any) -> str | None:
        ok = _number(value) and (value > self.low if self.exclusive else value >= self.low)
        return None if ok else f"must be {'>' if self.exclusive else '>='} {_show(self.low)}"

    def describe(self) -> str:
        return f"{'>' if self.exclusive else '≥'} {_show(self.low)}"


@dataclass(frozen=True)
class Positive(AtLeast):
    """Greater than 0: sizes, counts and durations for which 0 would mean "nothing" or "never"."""

    low: float = 0
    exclusive: bool = True


@dataclass(frozen=True)
class Between:
    """A number from ``low`` to ``high``, both included unless ``low_exclusive``."""

    low: float
    high: float
    low_exclusive: bool = False

    def check(self, value: Any) -> str | None:
        above = _number(value) and (value > self.low if self.low_exclusive else value >= self.low)
        if above and value <= self.high:
            return None
        if self.low_exclusive:
            return f"must be > {_show(self.low)} and <= {_show(self.high)}"
        return f"must be from {_show(self.low)} to {_show(self.high)}"

    def describe(self) -> str:
        if self.low_exclusive:
            return f"> {_show(self.low)}, ≤ {_show(self.high)}"
        return f"{_show(self.low)} to {_show(self.high)}"


@dataclass(frozen=True)
class OneOf:
    """One of a few words, compared in lower case (the option's value is folded before)."""

    choices: tuple[str, ...]

    def check(self, value: Any) -> str | None:
        if isinstance(value, str) and value.strip().lower() in self.choices:
            return None
        return f"must be {_either(self.choices)}"

    def describe(self) -> str:
        return _either(tuple(f"`{c}`" for c in self.choices), quote=False)


@dataclass(frozen=True)
class StartsWith:
    """Text that begins with ``prefix`` (a URL path, for instance)."""

    prefix: str

    def check(self, value: Any) -> str | None:
        return None if isinstance(value, str) and value.startswith(self.prefix) else (
            f"must start with {self.prefix!r}"
        )

    def describe(self) -> str:
        return f"starts with `{self.prefix}`"


@dataclass(frozen=True)
class Token:
    """A secret that appears in a URL: long enough not to be guessed, one path segment.

    A list of tokens (rotation) is valid when every token is.
    """

    def check(self, value: Any) -> str | None:
        tokens = value if isinstance(value, list | tuple) else (value,)
        if all(isinstance(t, str) and _good_token(t) for t in tokens):
            return None
        return (
            f"must be at least {MIN_TOKEN_LENGTH} printable characters without '/' "
            "(each one, if several; make one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )

    def describe(self) -> str:
        return f"{MIN_TOKEN_LENGTH}+ printable characters, no `/`"


@dataclass(frozen=True)
class Secret:
    """A secret sent in a header or as a password: as hard to guess as a token."""

    def check(self, value: Any) -> str | None:
        if isinstance(value, str) and len(value) >= MIN_TOKEN_LENGTH and value.isprintable():
            return None
        return (f"must be at least {MIN_TOKEN_LENGTH} printable characters, like a token (use e.g. "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`)")

    def describe(self) -> str:
        return f"{MIN_TOKEN_LENGTH}+ printable characters"


def _good_token(token: str) -> bool:
    return len(token) >= MIN_TOKEN_LENGTH and token.isprintable() and "/" not in token


def parse_rate_limit(value: str) -> list[RateLimitItem]:
    """The limits of a ``RATE_LIMIT`` string ("100/second;3000/minute"); ValueError if invalid."""
    items = parse_many(value)
    if not items or any(item.amount < 1 for item in items):
        raise ValueError(f"{value!r}: give one or more limits such as '100/second', each above 0")
    return items


@dataclass(frozen=True)
class RateLimit:
    """A limit string of the ``limits`` package, each limit above 0, or ``off``."""

    def check(self, value: Any) -> str | None:
        if str(value).strip().lower() == "off":
            return None
        try:
            parse_rate_limit(str(value))
        except ValueError as exc:
            return f"is not a rate limit: {exc}"
        return None

    def describe(self) -> str:
        return "limits such as `100/second`, `;` between several; `off`"


@dataclass(frozen=True)
class Template:
    """Text for ``str.format`` that may use only the named fields."""

    fields: tuple[str, ...]

    def check(self, value: Any) -> str | None:
        try:
            str(value).format(**dict.fromkeys(self.fields, "x"))
        except (KeyError, IndexError, ValueError) as exc:
            return f"may use only {' '.join('{' + f + '}' for f in self.fields)} ({exc!r})"
        return None

    def describe(self) -> str:
        return "may use " + ", ".join(f"`{{{f}}}`" for f in self.fields)


@dataclass(frozen=True)
class IsCallable:
    """Something to call: a function, a class, or an object with ``__call__``."""

    def check(self, value: Any) -> str | None:
        return None if callable(value) else "must be a callable or a class"

    def describe(self) -> str:
        return "a callable or a class"


@dataclass(frozen=True)
class SecretText:
    """A shared secret the other side also stores: long enough not to be guessed, no longer than it allows."""

    low: int
    high: int

    def check(self, value: Any) -> str | None:
        ok = isinstance(value, str) and self.low <= len(value) <= self.high and value.isprintable()
        return None if ok else f"must be {self.low} to {self.high} printable characters"

    def describe(self) -> str:
        return f"{self.low} to {self.high} printable characters"


def _show(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def _either(words: Sequence[str], quote: bool = True) -> str:
    shown = [repr(w) if quote else w for w in words]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]
