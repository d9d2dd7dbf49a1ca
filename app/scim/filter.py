"""SCIM filter expressions (RFC 7644 §3.4.2.2): tokenizer, recursive-descent parser and renderer.

Grammar (operators and keywords case-insensitive):

    filter    = or
    or        = and *("or" and)
    and       = unary *("and" unary)
    unary     = "not" unary / "(" filter ")" / atom
    atom      = attrPath "[" filter "]" / attrPath "pr" / attrPath compareOp compValue

Leniency for Microsoft Entra ID: values may be unquoted (`id eq 5b6c…`); a bare word that is not
true/false/null or a number is read as a string. `+` as a space is undone by URL decoding already.
Every failure is an `InvalidFilter`; nothing else escapes the parser.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from app.errors import InvalidFilter
from app.validation import has_nul

COMPARE_OPS = ("eq", "ne", "co", "sw", "ew", "gt", "lt", "ge", "le")
MAX_FILTER_LENGTH = 4096
MAX_DEPTH = 32

Value = str | int | float | bool | None


@dataclass(frozen=True)
class AttrPath:
    """`attr`, `attr.sub` or `urn:…:attr[.sub]`, as written (resolution happens later)."""

    path: str


@dataclass(frozen=True)
class Compare:
    attr: AttrPath
    op: str
    value: Value


@dataclass(frozen=True)
class Present:
    attr: AttrPath


@dataclass(frozen=True)
class And:
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Or:
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Not:
    expr: Expr


@dataclass(frozen=True)
class ValuePath:
    """`attr[filter]`: elements of a multi-valued attribute that match `filter`."""

    attr: AttrPath
    filter: Expr


Expr = Compare | Present | And | Or | Not | ValuePath

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<punct>[()\[\]])
  | (?P<word>[^\s()\[\]"]+)
    """,
    re.VERBOSE,
)
_ATTR_PATH = re.compile(r"^(?:urn:[A-Za-z0-9:._\-]+:)?[A-Za-z$][\w$\-]*(?:\.[A-Za-z$][\w$\-]*)?$", re.IGNORECASE)
_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?$")
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class _Token:
    kind: str  # string, punct, word
    text: str
    pos: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:  # an unterminated string literal
            raise InvalidFilter(f"unterminated string starting at position {pos + 1}")
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(_Token(kind, match.group(), pos))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def next(self, expected: str) -> _Token:
        token = self.peek()
        if token is None:
            raise InvalidFilter(f"unexpected end of filter, expected {expected}")
        self.i += 1
        return token

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == "word" and token.text.lower() == word:
            self.i += 1
            return True
        return False

    def punct(self, char: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == "punct" and token.text == char:
            self.i += 1
            return True
        return False

    def expect_punct(self, char: str) -> None:
        if not self.punct(char):
            token = self.peek()
            where = f"'{token.text}' at position {token.pos + 1}" if token else "end of filter"
            raise InvalidFilter(f"expected '{char}' but found {where}")

    def parse(self, *, inside_value_path: bool = False) -> Expr:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise InvalidFilter(f"filter is nested more than {MAX_DEPTH} levels deep")
        left = self.parse_and(inside_value_path)
        while self.keyword("or"):
            left = Or(left, self.parse_and(inside_value_path))
        self.depth -= 1
        return left

    def parse_and(self, inside: bool) -> Expr:
        left = self.parse_unary(inside)
        while self.keyword("and"):
            left = And(left, self.parse_unary(inside))
        return left

    def parse_unary(self, inside: bool) -> Expr:
        if self.keyword("not"):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise InvalidFilter(f"filter is nested more than {MAX_DEPTH} levels deep")
            negated = Not(self.parse_unary(inside))
            self.depth -= 1
            return negated
        if self.punct("("):
            expr = self.parse(inside_value_path=inside)
            self.expect_punct(")")
            return expr
        return self.parse_atom(inside)

    def parse_atom(self, inside: bool) -> Expr:
        token = self.next("an attribute name")
        if token.kind != "word" or not _ATTR_PATH.match(token.text):
            raise InvalidFilter(f"expected an attribute name at position {token.pos + 1}, found '{token.text}'")
        attr = AttrPath(token.text)
        if self.punct("["):
            if inside:
                raise InvalidFilter("value filters cannot be nested")
            inner = self.parse(inside_value_path=True)
            self.expect_punct("]")
            return ValuePath(attr, inner)
        op_token = self.next("an operator")
        op = op_token.text.lower()
        if op_token.kind != "word" or (op != "pr" and op not in COMPARE_OPS):
            raise InvalidFilter(f"unknown operator '{op_token.text}' at position {op_token.pos + 1}")
        if op == "pr":
            return Present(attr)
        return Compare(attr, op, self.parse_value())

    def parse_value(self) -> Value:
        token = self.next("a value")
        if token.kind == "string":
            try:
                value = json.loads(token.text)
            except json.JSONDecodeError:
                raise InvalidFilter(f"invalid string literal at position {token.pos + 1}") from None
            _check_characters(value, f"the string at position {token.pos + 1}")
            return str(value)
        if token.kind != "word":
            raise InvalidFilter(f"expected a value at position {token.pos + 1}, found '{token.text}'")
        lowered = token.text.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        if lowered == "null":
            return None
        if _NUMBER.match(token.text):
            number = float(token.text)
            return int(number) if number.is_integer() and re.fullmatch(r"-?\d+", token.text) else number
        return token.text  # unquoted string (Entra's examples)


def _check_characters(text: str, where: str) -> None:
    """No database can store U+0000 or a lone UTF-16 surrogate (\\ud800 without its pair), so a
    filter value holding one could only fail in the database: it is refused here instead. A string
    literal's escapes are checked once decoded."""
    if has_nul(text):
        raise InvalidFilter(f"{where} contains a NUL character")
    surrogate = _SURROGATE.search(text)
    if surrogate is not None:
        raise InvalidFilter(f"{where} contains a lone UTF-16 surrogate (U+{ord(surrogate.group()):04X}); send the character itself")


def parse_filter(text: str) -> Expr:
    if not text or not text.strip():
        raise InvalidFilter("the filter is empty")
    _check_characters(text, "the filter")
    if len(text) > MAX_FILTER_LENGTH:
        raise InvalidFilter(f"the filter is longer than {MAX_FILTER_LENGTH} characters")
    parser = _Parser(text)
    expr = parser.parse()
    token = parser.peek()
    if token is not None:
        raise InvalidFilter(f"unexpected '{token.text}' at position {token.pos + 1}")
    return expr


def render_value(value: Value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value)


def render(expr: Expr) -> str:
    """A canonical filter string; `parse_filter(render(e)) == e`."""
    if isinstance(expr, Compare):
        return f"{expr.attr.path} {expr.op} {render_value(expr.value)}"
    if isinstance(expr, Present):
        return f"{expr.attr.path} pr"
    if isinstance(expr, ValuePath):
        return f"{expr.attr.path}[{render(expr.filter)}]"
    if isinstance(expr, Not):
        return f"not ({render(expr.expr)})"
    if isinstance(expr, And):
        return f"({render(expr.left)}) and ({render(expr.right)})"
    return f"({render(expr.left)}) or ({render(expr.right)})"
