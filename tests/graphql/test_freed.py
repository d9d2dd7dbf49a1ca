"""A GraphQL operation's objects — its context, its DataLoaders and the rows they cached, the executor
and its plans — are freed by reference counting as the operation ends: no reference cycle leaves
them for the cyclic garbage collector, whose collections stop the worker (app/graphql/loaders.py,
app/graphql/execution.py)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from app.graphql.context import Context
from app.graphql.execution import Executor
from tests.support.clients import GraphQLClient, ScimClient

PAGE = "{ users { nodes { userName managedByIdentityProvider groups(first: 2) { nodes { name } } } } userGroups { nodes { memberCount } } }"


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[weakref.ref[Any]]]:
    """Weak references to every context, loader and executor the app makes while the test runs; the
    cyclic garbage collector off meanwhile, so that only reference counting frees them."""
    refs: list[weakref.ref[Any]] = []
    context_init, executor_init = Context.__post_init__, Executor.__init__

    def context_made(self: Context) -> None:
        context_init(self)
        refs.append(weakref.ref(self))
        refs.append(weakref.ref(self.loaders))

    def executor_made(self: Executor, *args: Any, **kwargs: Any) -> None:
        executor_init(self, *args, **kwargs)
        refs.append(weakref.ref(self))

    monkeypatch.setattr(Context, "__post_init__", context_made)
    monkeypatch.setattr(Executor, "__init__", executor_made)
    gc.collect()
    gc.disable()
    try:
        yield refs
    finally:
        gc.enable()


async def test_an_operation_leaves_nothing_for_the_garbage_collector(
    gql: GraphQLClient, scim: ScimClient, made: list[weakref.ref[Any]]
) -> None:
    user = await scim.create_user("ann@x")
    await scim.create_group("Alpha", members=[{"value": user["id"]}])
    data = await gql(PAGE)
    assert data["users"]["nodes"] == [{"userName": "ann@x", "managedByIdentityProvider": True, "groups": {"nodes": [{"name": "Alpha"}]}}]
    created = await gql('mutation { createUserGroup(input: {name: "Beta"}) { __typename } }')
    assert created["createUserGroup"]["__typename"] == "UserGroup"  # created, not refused
    assert len(made) == 2 * 3  # two operations, each a context, its loaders and an executor
    assert [type(ref()).__name__ for ref in made if ref() is not None] == []
