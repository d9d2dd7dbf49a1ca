"""The executor's short way for plain leaf fields (app/graphql/execution.py) answers exactly what
graphql-core's own execution answers — values, nulls, enums, aliases, fragments, and every error with
its message, path and location — and is the way plain leaves actually take."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, NewType

import pytest
import strawberry
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from app.graphql.execution import Executor
from tests.support.answers import answer


@strawberry.enum
class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


Strict = NewType("Strict", str)
CONFIG = StrawberryConfig(
    scalar_map={
        # refuses to answer what is not letters
        Strict: strawberry.scalar(name="Strict", serialize=lambda value: value if value.isalpha() else None, parse_value=str)
    }
)


@strawberry.type
class Item:
    id: strawberry.ID
    name: str
    note: str | None
    colour: Colour
    when: datetime
    strict: Strict
    loose: Strict | None  # the same value, where a null is allowed
    broken: str  # None in some items: a null where the schema forbids one

    @strawberry.field
    def shout(self, times: int = 1) -> str:
        return self.name.upper() * times

    @strawberry.field
    def fails(self) -> str | None:
        raise ValueError("no luck")


def _item(n: int, *, strict: str = "abc", broken: Any = "fine") -> Item:
    return Item(
        id=strawberry.ID(f"i{n}"),
        name=f"item {n}",
        note=None if n % 2 else f"note {n}",
        colour=Colour.RED if n % 2 else Colour.BLUE,
        when=datetime(2026, 1, n, 12, 0, tzinfo=UTC),
        strict=Strict(strict),
        loose=Strict(strict),
        broken=broken,
    )


@strawberry.type
class Query:
    @strawberry.field
    def items(self) -> list[Item]:
        return [_item(1), _item(2), _item(3, strict="a1"), _item(4, broken=None)]

    @strawberry.field
    async def later(self) -> list[Item]:
        return [_item(5), _item(6, broken=None)]


QUERIES = [
    "{ items { id name note colour when strict } }",
    "{ items { first: name again: name kind: __typename ...F } } fragment F on Item { colour note }",
    "{ items { name shout(times: 2) fails } }",
    "{ items { id broken } }",
    "{ items { id loose } }",
    "{ later { id name broken } }",
    "query($show: Boolean!) { items { id name @include(if: $show) note @skip(if: $show) } }",
]


def _schema(executor: type[StrawberryGraphQLCoreExecutionContext] | None) -> strawberry.Schema:
    return strawberry.Schema(query=Query, config=CONFIG, execution_context_class=executor)


@pytest.mark.parametrize("query", QUERIES)
async def test_plain_leaves_answer_what_graphql_core_answers(query: str) -> None:
    variables = {"show": True}
    ours = await _schema(Executor).execute(query, variable_values=variables)
    theirs = await _schema(None).execute(query, variable_values=variables)
    assert answer(ours) == answer(theirs)
    assert ours.data is not None or ours.errors


async def test_errors_of_plain_leaves_are_reported_where_they_happen() -> None:
    result = await _schema(Executor).execute("{ items { id loose } }")
    assert result.data is not None and [item["loose"] for item in result.data["items"]] == ["abc", "abc", None, "abc"]
    assert [e.path for e in result.errors or []] == [["items", 2, "loose"]]  # "a1" is refused by the scalar
    # A null for a non-null leaf nulls its parent up to the nearest nullable field: here the whole answer.
    for query, path in (("{ items { id strict } }", ["items", 2, "strict"]), ("{ items { id broken } }", ["items", 3, "broken"])):
        result = await _schema(Executor).execute(query)
        assert result.data is None
        assert [e.path for e in result.errors or []] == [path]


async def test_plain_leaves_skip_graphql_cores_field_machinery(monkeypatch: pytest.MonkeyPatch) -> None:
    reached: list[str] = []
    long_way = StrawberryGraphQLCoreExecutionContext.execute_field

    def counted(self: Any, parent_type: Any, source: Any, details: Any, *args: Any) -> Any:
        reached.append(details[0].node.name.value)
        return long_way(self, parent_type, source, details, *args)

    monkeypatch.setattr(StrawberryGraphQLCoreExecutionContext, "execute_field", counted)
    result = await _schema(Executor).execute("{ items { id name note colour when shout } }")
    assert not result.errors
    assert sorted(set(reached)) == ["items", "shout"]  # the root field and the field with a resolver
