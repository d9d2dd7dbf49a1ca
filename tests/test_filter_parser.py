from __future__ import annotations

import pytest

from app.errors import InvalidFilter
from app.scim.filter import And, AttrPath, Compare, Not, Or, Present, ValuePath, parse_filter, render


def test_comparison_operators_and_values() -> None:
    assert parse_filter('userName eq "bjensen"') == Compare(AttrPath("userName"), "eq", "bjensen")
    for op in ("eq", "ne", "co", "sw", "ew", "gt", "lt", "ge", "le"):
        assert parse_filter(f'title {op.upper()} "x"') == Compare(AttrPath("title"), op, "x")
    assert parse_filter("active eq true").value is True  # type: ignore[union-attr]
    assert parse_filter("active eq False").value is False  # type: ignore[union-attr]
    assert parse_filter("title eq null").value is None  # type: ignore[union-attr]
    assert parse_filter("x eq 42").value == 42  # type: ignore[union-attr]
    assert parse_filter("x eq 4.5").value == 4.5  # type: ignore[union-attr]


def test_precedence_and_binds_tighter_than_or() -> None:
    a, b, c = (Compare(AttrPath(n), "eq", "1") for n in "abc")
    assert parse_filter('a eq "1" or b eq "1" and c eq "1"') == Or(a, And(b, c))
    assert parse_filter('(a eq "1" or b eq "1") and c eq "1"') == And(Or(a, b), c)


def test_not_present_and_value_paths() -> None:
    assert parse_filter("not (title pr)") == Not(Present(AttrPath("title")))
    parsed = parse_filter('emails[type eq "work" and value co "@contoso.com"]')
    assert parsed == ValuePath(
        AttrPath("emails"), And(Compare(AttrPath("type"), "eq", "work"), Compare(AttrPath("value"), "co", "@contoso.com"))
    )


def test_urn_qualified_and_sub_attributes() -> None:
    urn = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"
    assert parse_filter(f'{urn} eq "Sales"') == Compare(AttrPath(urn), "eq", "Sales")
    assert parse_filter('name.familyName sw "J"') == Compare(AttrPath("name.familyName"), "sw", "J")


def test_json_string_escapes_in_quoted_values() -> None:
    assert parse_filter(r'displayName eq "a \"quoted\" \\ name \u00e9"').value == 'a "quoted" \\ name é'  # type: ignore[union-attr]


def test_unquoted_values_as_entra_documents_them() -> None:
    parsed = parse_filter("id eq 5171a35d82074e068ce2 and manager eq 49b1a4e4")
    assert parsed == And(Compare(AttrPath("id"), "eq", "5171a35d82074e068ce2"), Compare(AttrPath("manager"), "eq", "49b1a4e4"))
    assert parse_filter("userName eq alice@contoso.com").value == "alice@contoso.com"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "userName",
        "userName eq",
        'userName xx "a"',
        '(userName eq "a"',
        'userName eq "a',
        'userName eq "a" junk',
        'emails[type eq "work"',
        'a[b[c eq "1"]]',
        '"a" eq "a"',
        "and",
        ")",
        "not",
        "(" * 100 + 'a eq "1"' + ")" * 100,
    ],
)
def test_malformed_filters_raise_invalid_filter(text: str) -> None:
    with pytest.raises(InvalidFilter):
        parse_filter(text)


@pytest.mark.parametrize(
    "text",
    [
        'userName eq "bjensen"',
        'emails[type eq "work" and value co "@x"] or not (active eq false)',
        'meta.lastModified gt "2011-05-13T04:42:34Z"',
        "title pr and x eq 1.5 and y eq -3",
        'displayName eq "with \\"quotes\\""',
    ],
)
def test_render_round_trips(text: str) -> None:
    parsed = parse_filter(text)
    assert parse_filter(render(parsed)) == parsed
