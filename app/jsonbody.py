"""Strict decoding of JSON request bodies, shared by SCIM and GraphQL.

`json.loads` accepts more than RFC 8259 allows and fails in ways a client can provoke: NaN and
Infinity, a duplicate key silently overwriting the first, 5,000-digit integers (ValueError),
lone UTF-16 surrogates that no database can store, and nesting deep enough to exhaust the
recursion of every function that walks the result. Each of these is an `InvalidSyntax` here, with
a message that names the problem, before any other code sees the document.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from app.errors import InvalidSyntax

MAX_DEPTH = 32  # SCIM documents nest 4 deep, GraphQL variables a little more
MAX_NUMBER_CHARS = 40  # integers beyond 128 bits and floats beyond double precision mean nothing here

# A surrogate can only reach a decoded string through a \uD800-\uDFFF escape: strict UTF-8 has none.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')  # a JSON string, escapes included
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def decode(raw: bytes, *, fold_key_case: bool = False, what: str = "the request body") -> Any:
    """Decode `raw` as one JSON value. `fold_key_case`: keys that differ only in case are duplicates
    too (SCIM attribute names are case-insensitive, RFC 7643 §2.1)."""
    if not raw.strip():
        raise InvalidSyntax(f"{what} is empty; a JSON object is required")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidSyntax(f"{what} is not UTF-8; JSON must be UTF-8 encoded (RFC 8259 §8.1)") from None
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH:
        # Cheap bound first: only a body with many brackets can nest too deep.
        _check_depth(text, what)
    try:
        value = json.loads(
            text,
            object_pairs_hook=_unique_keys(fold_key_case, what),
            parse_int=_number(int, what),
            parse_float=_number(float, what),
            parse_constant=_no_constant(what),
        )
    except InvalidSyntax:
        raise
    except json.JSONDecodeError as exc:
        raise InvalidSyntax(f"{what} is not valid JSON: {exc}") from None
    except (ValueError, RecursionError) as exc:  # defensive: nothing above should let these through
        raise InvalidSyntax(f"{what} is not valid JSON: {type(exc).__name__}") from None
    if _SURROGATE_ESCAPE.search(raw) and _has_lone_surrogate(value):
        raise InvalidSyntax(f"{what} contains a lone UTF-16 surrogate escape (\\uD800-\\uDFFF) that is not a character")
    return value


def _check_depth(text: str, what: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH, counting brackets outside strings (no recursion). The
    strings and everything but brackets are cut out by regular expressions first, so a 5 MB group
    document costs a walk over its brackets, not over every character."""
    depth = 0
    for char in _NOT_BRACKET.sub("", _STRING.sub("", text)):
        if char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise InvalidSyntax(f"{what} nests deeper than {MAX_DEPTH} levels")
        else:
            depth -= 1


def _unique_keys(fold_key_case: bool, what: str) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    def build(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(pairs)
        if len(result) == len(pairs) and not fold_key_case:
            return result
        seen: set[str] = set()
        for key, _ in pairs:
            folded = key.lower() if fold_key_case else key
            if folded in seen:
                raise InvalidSyntax(
                    f"{what} has the key {key!r} more than once" + (" (keys are case-insensitive)" if fold_key_case else "")
                )
            seen.add(folded)
        return result

    return build


def _number(kind: Callable[[str], Any], what: str) -> Callable[[str], Any]:
    def parse(literal: str) -> Any:
        if len(literal) > MAX_NUMBER_CHARS:
            raise InvalidSyntax(f"{what} has a number of {len(literal)} characters; at most {MAX_NUMBER_CHARS} are accepted")
        number = kind(literal)
        if isinstance(number, float) and not math.isfinite(number):
            raise InvalidSyntax(f"{what} has a number out of range: {literal}")
        return number

    return parse


def _no_constant(what: str) -> Callable[[str], Any]:
    def refuse(name: str) -> Any:
        raise InvalidSyntax(f"{what} is not valid JSON: {name} is not a JSON value")

    return refuse


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if any("\ud800" <= c <= "\udfff" for c in item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
