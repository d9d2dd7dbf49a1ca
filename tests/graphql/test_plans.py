"""Values completed in one pass by a plan (app/graphql/execution.py) answer exactly what graphql-core's own
completion answers — nested objects and lists, nulls, `__typename`, the direct resolvers a plan calls
(with the path of their own row), awaitables and errors left to the long way — and plans are the way
such values actually take."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import strawberry
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from app.graphql.direct import call_directly
from app.graphql.execution import Executor
from tests.support.answers import answer

SCALED: list[int] = []  # the boxes `scaled` was called for


@strawberry.type
class Tag:
    label: str
    note: str | None
    broken: str  # None in some tags: a null where the schema forbids one
    code: strawberry.ID  # an int: ID's serialisation makes a string of it
    caption: str  # a bool in some tags: String's serialisation makes "true" of it


@strawberry.type
class Box:
    n: int
    tags: list[Tag]
    maybe_tags: list[Tag | None] | None
    inner: Box | None

    @strawberry.field
    def where(self, info: strawberry.Info) -> str:
        return "/".join(str(key) for key in info.path.as_list())

    @strawberry.field
    def scaled(self, by: int = 2) -> int:
        SCALED.append(self.n)
        return self.n * by

    @strawberry.field
    def fails(self, when: int = 2) -> str:
        if self.n == when:
            raise ValueError(f"box {self.n} fails")
        return "fine"

    @strawberry.field
    def later(self) -> int:
        # A synchronous resolver that answers an awaitable, as a loader's value not loaded yet does.
        async def value() -> int:
            return self.n + 100

        return value()  # type: ignore[return-value]


def _tag(label: str, *, broken: Any = "ok") -> Tag:
    caption: Any = True if label.endswith("2") else f"caption {label}"
    return Tag(label=label, note=None if label.endswith("1") else f"{label}!", broken=broken, code=len(label), caption=caption)  # type: ignore[arg-type]


def _box(n: int, *, broken_tag: bool = False) -> Box:
    tags = [_tag(f"t{n}{i}", broken=None if broken_tag and i == 1 else "ok") for i in range(3)]
    return Box(n=n, tags=tags, maybe_tags=[tags[0], None] if n % 2 else None, inner=Box(n=10 * n, tags=[], maybe_tags=None, inner=None))


@strawberry.type
class Query:
    @strawberry.field
    def boxes(self) -> list[Box]:
        return [_box(1), _box(2), _box(3)]

    @strawberry.field
    def broken_boxes(self) -> list[Box] | None:
        return [_box(1), _box(2, broken_tag=True)]


QUERIES = [
    "{ boxes { n tags { label note } maybeTags { label } inner { n tags { label } } } }",
    "{ boxes { kind: __typename a: n ...F tags { __typename l: label } } } fragment F on Box { inner { __typename n } }",
    "{ boxes { where scaled scaled3: scaled(by: 3) inner { where scaled(by: 5) } tags { label } } }",
    "{ boxes { n fails } }",
    "{ boxes { n fails(when: 7) later inner { later } } }",
    "{ brokenBoxes { n tags { label broken } } }",
    "{ boxes { tags { code caption label } } }",
    "query($by: Int!, $show: Boolean!) { boxes { scaled(by: $by) tags @include(if: $show) { label } } }",
]


def _schema(executor: type[StrawberryGraphQLCoreExecutionContext] | None) -> strawberry.Schema:
    schema = strawberry.Schema(query=Query, execution_context_class=executor)
    call_directly(schema)
    return schema


@pytest.mark.parametrize("query", QUERIES)
async def test_plans_answer_what_graphql_core_answers(query: str) -> None:
    variables = {"by": 4, "show": True}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an awaitable a plan left must not be reported as never awaited
        ours = await _schema(Executor).execute(query, variable_values=variables)
        theirs = await _schema(None).execute(query, variable_values=variables)
    assert answer(ours) == answer(theirs)
    assert ours.data is not None or ours.errors


async def test_a_resolver_in_a_plan_sees_its_own_rows_path() -> None:
    result = await _schema(Executor).execute("{ boxes { where inner { where } } }")
    assert result.data == {"boxes": [{"where": f"boxes/{i}/where", "inner": {"where": f"boxes/{i}/inner/where"}} for i in range(3)]}


@pytest.fixture
def completed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the object types whose values graphql-core completes itself (the long way)."""
    names: list[str] = []
    long_way = StrawberryGraphQLCoreExecutionContext.complete_object_value

    def counted(self: Any, return_type: Any, *args: Any) -> Any:
        names.append(return_type.name)
        return long_way(self, return_type, *args)

    monkeypatch.setattr(StrawberryGraphQLCoreExecutionContext, "complete_object_value", counted)
    return names


async def test_plans_are_the_way_plain_values_take(completed: list[str]) -> None:
    result = await _schema(Executor).execute("{ boxes { n scaled tags { label } inner { where } } }")
    assert not result.errors and completed == []  # every box, tag and inner box by plan
    completed.clear()
    result = await _schema(Executor).execute("{ boxes { n later } }")
    assert not result.errors and completed.count("Box") == 3  # an awaitable: the long way, box by box


async def test_a_value_a_resolver_cannot_answer_at_once_goes_the_long_way_before_its_fields_are_completed() -> None:
    SCALED.clear()
    result = await _schema(Executor).execute("{ boxes { inner { scaled } later } }")
    assert not result.errors and [box["later"] for box in result.data["boxes"]] == [101, 102, 103]  # type: ignore[index]
    assert sorted(SCALED) == [10, 20, 30]  # each inner box scaled once: by the long way alone


@strawberry.type
class Entry:
    key: str
    size: int


@strawberry.type
class DictQuery:
    @strawberry.field
    def entries(self) -> list[Entry]:
        return [{"key": "a", "size": 1}, {"key": "b", "size": 2}]  # type: ignore[list-item]


async def test_plain_reads_use_the_schemas_own_default_resolver(completed: list[str]) -> None:
    # A schema whose objects are dicts reads its fields with its own resolver, and by plan.
    config = StrawberryConfig(default_resolver=lambda value, name: value[name])
    schema = strawberry.Schema(query=DictQuery, execution_context_class=Executor, config=config)
    result = await schema.execute("{ entries { key size } }")
    assert not result.errors and result.data == {"entries": [{"key": "a", "size": 1}, {"key": "b", "size": 2}]}
    assert completed == []
