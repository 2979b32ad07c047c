"""The signature of an Autotask webhook delivery, checked the three ways Autotask may have made it.

Autotask signs a delivery with ``X-Hook-Signature: sha1=<base64(HMAC-SHA1(secret, text))>``,
but the text it signs is not always the body it sends: it serialises the JSON
with .NET's default encoder, which writes ``& < > ' " ` +`` and every non-ASCII
UTF-16 unit inside strings as ``\\uXXXX`` (upper-case hex). Which text goes
into the HMAC is not documented, so a signature is accepted when it matches
any of:

1. the raw body, as received;
2. the raw body with every string literal written as .NET writes it (the
   layout, the spaces and the key order stay as received);
3. the compact re-serialisation of the parsed body, strings written as .NET
   writes them.

Every candidate is computed and compared with :func:`hmac.compare_digest`, so
the time taken does not say which one (if any) came close. Pure: no Flask, no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from contextlib import suppress
from typing import Any

HEADER = "X-Hook-Signature"
SCHEME = "sha1"

#: What .NET's default JavaScriptEncoder escapes among ASCII characters, and how: a table for
#: str.translate, so a long string costs one pass in C rather than a call per character.
_ASCII_ESCAPES: dict[int, str] = {
    **{code: f"\\u{code:04X}" for code in (*range(0x20), 0x7F, *map(ord, "&<>'\"+`"))},
    **{ord(char): text for char, text in
       {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r", "\\": "\\\\"}.items()},
}
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")
#: A JSON string literal (the body is valid JSON when this is used, so it matches in linear time).
_STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


def _utf16_units(match: re.Match[str]) -> str:
    """A run of non-ASCII characters as .NET writes it: each UTF-16 unit as upper-case ``\\uXXXX``."""
    units = match.group().encode("utf-16-be", "surrogatepass")
    return "\\u" + units.hex("/", 2).upper().replace("/", "\\u")  # a "/" between 2-byte units


def net_string(text: str) -> str:
    """A JSON string literal as .NET's default encoder writes it."""
    escaped = text.translate(_ASCII_ESCAPES)
    if not escaped.isascii():
        escaped = _NON_ASCII_RUN.sub(_utf16_units, escaped)
    return '"' + escaped + '"'


def _literal(match: re.Match[str]) -> str:
    literal = match.group()
    return net_string(json.loads(literal) if "\\" in literal else literal[1:-1])


def net_json(value: Any) -> str:
    """Compact JSON of a parsed value, strings as .NET writes them (the order of keys kept)."""
    if isinstance(value, str):
        return net_string(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{net_string(str(k))}:{net_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(net_json(item) for item in value) + "]"
    return json.dumps(value)  # numbers, true, false, null


def net_escape_text(text: str) -> str:
    """The JSON text as received, with each string literal written as .NET writes it.

    ``text`` must be valid JSON (the caller has parsed it).
    """
    return _STRING_LITERAL.sub(_literal, text)


def sign(secret: str, text: bytes) -> str:
    """The header value for ``text``: ``sha1=`` and the base64 of its HMAC-SHA1."""
    digest = hmac.new(secret.encode("utf-8"), text, hashlib.sha1).digest()
    return f"{SCHEME}=" + base64.b64encode(digest).decode("ascii")


#: Bodies with more quote characters than this are checked in their raw form only. Each
#: string costs a step in Python when escaped; a delivery (a few dozen fields) has a few
#: hundred strings at most, while a hostile body at the size limit can have 16,000.
MAX_ESCAPED_QUOTES = 4096


#: Likewise for bodies with more characters that .NET escapes (``& < > ' +`` and the backtick,
#: each written as six): a delivery's few fields hold a handful, a hostile body 60,000.
MAX_ESCAPED_CHARACTERS = 4096
_ESCAPED_BYTES = tuple(c.encode() for c in "&<>'+`")


def candidates(body: bytes, parsed: Any | None) -> list[bytes]:
    """The texts a valid signature may cover: the raw body, then (for JSON) the two escaped forms."""
    texts = [body]
    if (parsed is not None and body.count(b'"') <= MAX_ESCAPED_QUOTES
            and sum(body.count(c) for c in _ESCAPED_BYTES) <= MAX_ESCAPED_CHARACTERS):
        with suppress(UnicodeError, ValueError):  # not UTF-8, or a literal json.loads refuses
            texts.append(net_escape_text(body.decode("utf-8")).encode("ascii"))
        texts.append(net_json(parsed).encode("ascii"))
    return texts


def verify(secret: str, header: str | None, body: bytes, parsed: Any | None) -> bool:
    """Whether ``header`` signs the body (in one of the three forms) with ``secret``.

    ``parsed`` is the body's JSON value, or None if it is not JSON (then only the
    raw body can match, as for a body of more than MAX_ESCAPED_QUOTES quotes).
    """
    given = (header or "").strip()
    scheme, _, _ = given.partition("=")
    given = f"{SCHEME}={given[len(scheme) + 1:]}" if scheme.lower() == SCHEME else ""
    matched = False
    for text in candidates(body, parsed):
        same = hmac.compare_digest(sign(secret, text).encode("ascii"), given.encode("utf-8"))
        matched = matched or same
    return bool(given) and matched
