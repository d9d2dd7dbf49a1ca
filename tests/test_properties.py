"""Property-based tests: the filter parser and the PATCH path parser either parse or say precisely
why not (invalidFilter / invalidPath) — never another exception — and parsing round-trips."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.errors import InvalidFilter, InvalidPath
from app.scim.filter import COMPARE_OPS, AttrPath, Compare, Expr, Not, Present, ValuePath, parse_filter, render
from app.scim.filter import And as AndExpr
from app.scim.filter import Or as OrExpr
from app.scim.patch import parse_path
from app.scim.schema import GROUP, USER

EXAMPLES = int(os.environ.get("PROPERTY_MAX_EXAMPLES", "300"))
PROFILE = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text that looks like filters: the grammar's own words and punctuation, mixed with anything.
TOKENS = st.sampled_from(
    [
        "userName",
        "emails",
        "name.familyName",
        "urn:ietf:params:scim:schemas:core:2.0:User:userName",
        "value",
        "type",
        *COMPARE_OPS,
        "pr",
        "and",
        "or",
        "not",
        "(",
        ")",
        "[",
        "]",
        '"x"',
        '"a\\"b"',
        "true",
        "false",
        "null",
        "42",
        " ",
        ".",
    ]
)
FILTERISH = st.one_of(st.text(max_size=80), st.lists(st.one_of(TOKENS, st.text(max_size=5)), max_size=20).map(" ".join))

NAMES = st.sampled_from(["userName", "title", "emails", "name.givenName", "meta.lastModified", "members.value"])
VALUES = st.one_of(st.text(max_size=10).filter(lambda s: "\x00" not in s), st.integers(-1000, 1000), st.booleans(), st.none())


def expressions(depth: int = 3) -> st.SearchStrategy[Expr]:
    leaf = st.one_of(st.builds(Compare, NAMES.map(AttrPath), st.sampled_from(COMPARE_OPS), VALUES), st.builds(Present, NAMES.map(AttrPath)))
    if depth == 0:
        return leaf
    inner = expressions(depth - 1)
    return st.one_of(
        leaf,
        st.builds(AndExpr, inner, inner),
        st.builds(OrExpr, inner, inner),
        st.builds(Not, inner),
        st.builds(ValuePath, st.just(AttrPath("emails")), leaf),
    )


@PROFILE
@given(FILTERISH)
def test_any_text_parses_or_is_invalid_filter(text: str) -> None:
    try:
        parsed = parse_filter(text)
    except InvalidFilter:
        return
    assert parse_filter(render(parsed)) == parsed


@PROFILE
@given(expressions())
def test_render_then_parse_round_trips(expr: Expr) -> None:
    assert parse_filter(render(expr)) == expr


PATHISH = st.one_of(
    st.text(max_size=60),
    st.lists(st.one_of(TOKENS, st.sampled_from(["emails[", "]", ".value", 'members[value eq "1"]', "urn:x:y"])), max_size=8).map("".join),
)


@PROFILE
@given(PATHISH, st.sampled_from([USER, GROUP]))
def test_any_path_parses_or_is_invalid_path(text: str, resource: object) -> None:
    try:
        path = parse_path(text, resource)  # type: ignore[arg-type]
    except InvalidPath:
        return
    assert path.target.attribute is not None or path.target.is_extension
