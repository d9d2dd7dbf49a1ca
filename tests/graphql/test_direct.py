"""Resolvers called without Strawberry's per-call wrapper (app/graphql/direct.py) answer exactly what the
wrapper answers — values, defaults, renamed arguments, nulls and errors with their paths — and only
the fields the wrapper adds nothing to are called so."""

from __future__ import annotations

import enum
from typing import Any

import pytest
import strawberry
from strawberry.permission import BasePermission
from strawberry.schema import schema_converter

from app.graphql.direct import call_directly
from tests.support.answers import answer
from tests.support.clients import GraphQLClient, ScimClient


@strawberry.enum
class Size(enum.Enum):
    SMALL = "small"
    LARGE = "large"


@strawberry.input
class Range:
    low: int
    high: int


class Nobody(BasePermission):
    message = "nobody may"

    def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        return False


@strawberry.type
class Item:
    n: int

    @strawberry.field
    def label(self, info: strawberry.Info, max_length: int | None = None, suffix: str = "!", loud: bool = False) -> str:
        text = f"{info.field_name}-{self.n}{suffix}"
        return (text.upper() if loud else text)[:max_length]

    @strawberry.field
    def double(self) -> int:
        return self.n * 2

    @strawberry.field
    async def later(self, by: float = 0.5) -> float:
        return self.n + by

    @strawberry.field
    def fails(self, when: int = 2) -> str | None:
        if self.n == when:
            raise ValueError(f"item {self.n} fails")
        return "fine"

    @strawberry.field
    def required(self) -> str:
        return None  # type: ignore[return-value]  # a null where the schema forbids one

    @strawberry.field
    def sized(self, size: Size) -> str:
        return f"{self.n}:{size.value}"

    @strawberry.field
    def within(self, range: Range) -> bool:
        return range.low <= self.n <= range.high

    @strawberry.field
    def among(self, ns: list[int]) -> bool:
        return self.n in ns

    @strawberry.field(permission_classes=[Nobody])
    def secret(self) -> str:
        return "hidden"

    @strawberry.field
    def parent_n(self, parent: strawberry.Parent[Item]) -> int:
        return parent.n


@strawberry.type
class Query:
    @strawberry.field
    def items(self, count: int = 3) -> list[Item]:
        return [Item(n=n) for n in range(1, count + 1)]


QUERIES = [
    "{ items { n label double } }",
    '{ items(count: 2) { a: label(maxLength: 4) b: label(suffix: "?", loud: true) later(by: 1.5) } }',
    "query($m: Int, $l: Boolean!) { items { label(maxLength: $m, loud: $l) } }",
    "{ items { n fails } }",
    "{ items { n fails(when: 3) required } }",
    "{ items { sized(size: LARGE) within(range: {low: 2, high: 3}) among(ns: [1, 3]) parentN } }",
    "{ items { n secret } }",
]
# Strawberry's wrapper adds nothing to these; the others keep it (an enum, an input or a list argument,
# a permission class, a `parent` parameter, the root type's field).
DIRECT = {"label", "double", "later", "fails", "required"}


def _schema(direct: bool) -> strawberry.Schema:
    schema = strawberry.Schema(query=Query)
    if direct:
        call_directly(schema)
    return schema


@pytest.mark.parametrize("query", QUERIES)
async def test_direct_resolvers_answer_what_strawberrys_wrapper_answers(query: str) -> None:
    variables = {"m": 3, "l": True}
    ours = await _schema(direct=True).execute(query, variable_values=variables)
    theirs = await _schema(direct=False).execute(query, variable_values=variables)
    assert answer(ours) == answer(theirs)
    assert ours.data is not None or ours.errors


def _wrapped_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The fields whose arguments Strawberry's wrapper converts, which it does on every call of one."""
    converted: list[str] = []
    convert = schema_converter.get_arguments

    def counted(*, field: Any, **kwargs: Any) -> Any:
        converted.append(field.python_name)
        return convert(field=field, **kwargs)

    monkeypatch.setattr(schema_converter, "get_arguments", counted)
    return converted


async def test_only_fields_the_wrapper_adds_nothing_to_are_called_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    wrapped = _wrapped_calls(monkeypatch)
    schema = _schema(direct=True)
    await schema.execute("{ items { n label double later fails required } }")
    assert wrapped == ["items"]  # the root field alone
    await schema.execute("{ items { label sized(size: LARGE) within(range: {low: 2, high: 3}) among(ns: [1, 3]) parentN secret } }")
    assert set(wrapped) == {"items", "sized", "within", "among", "parent_n", "secret"}


async def test_the_apps_nested_fields_are_called_directly(gql: GraphQLClient, scim: ScimClient, monkeypatch: pytest.MonkeyPatch) -> None:
    user = await scim.create_user("ann@x")
    await scim.create_group("Alpha", members=[{"value": user["id"]}])
    wrapped = _wrapped_calls(monkeypatch)
    data = await gql(
        "{ users { totalCount nodes { managedByIdentityProvider groups(first: 1) { totalCount nodes { name memberCount "
        "members(first: 1) { nodes { userName } } } } } } }"
    )
    [ann] = data["users"]["nodes"]
    assert ann["managedByIdentityProvider"] is True
    assert ann["groups"] == {"totalCount": 1, "nodes": [{"name": "Alpha", "memberCount": 1, "members": {"nodes": [{"userName": "ann@x"}]}}]}
    assert wrapped == ["users"]  # the root field alone
