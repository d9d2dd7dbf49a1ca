"""A page of users or groups loads what its nodes select before they are resolved (app/graphql/prefetch.py):
the answers are those of loading each row's field on its own, whatever shape the query has, a failed
load is still reported at the row's field, and nothing is loaded that the query does not select."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.errors import PermissionDenied
from app.graphql.prefetch import settled
from tests.support.clients import GraphQLClient, ScimClient, make_tenant
from tests.support.statements import StatementCounter


async def _two_users_in_three_groups(scim: ScimClient) -> tuple[list[str], list[str]]:
    users = [(await scim.create_user(f"{name}@x"))["id"] for name in ("ann", "bob")]
    groups = []
    for name, members in (("Alpha", users), ("Beta", users[:1]), ("Gamma", users)):
        groups.append((await scim.create_group(name, members=[{"value": m} for m in members]))["id"])
    return users, groups


async def test_aliases_fragments_and_variables_get_their_own_windows(gql: GraphQLClient, scim: ScimClient) -> None:
    await _two_users_in_three_groups(scim)
    data = await gql(
        """query($n: Int, $skipMembers: Boolean!) {
          users { edges { node { ...names b: groups(first: $n, after: null) { nodes { name } } } } }
          userGroups { nodes { name ... on UserGroup { memberCount } members(first: 1) @skip(if: $skipMembers) { totalCount } } }
        }
        fragment names on User { userName a: groups(first: 1) { totalCount nodes { name } } }""",
        n=2,
        skipMembers=False,
    )
    users = [edge["node"] for edge in data["users"]["edges"]]
    assert users == [
        {"userName": "ann@x", "a": {"totalCount": 3, "nodes": [{"name": "Alpha"}]}, "b": {"nodes": [{"name": "Alpha"}, {"name": "Beta"}]}},
        {"userName": "bob@x", "a": {"totalCount": 2, "nodes": [{"name": "Alpha"}]}, "b": {"nodes": [{"name": "Alpha"}, {"name": "Gamma"}]}},
    ]
    assert data["userGroups"]["nodes"] == [
        {"name": "Alpha", "memberCount": 2, "members": {"totalCount": 2}},
        {"name": "Beta", "memberCount": 1, "members": {"totalCount": 1}},
        {"name": "Gamma", "memberCount": 2, "members": {"totalCount": 2}},
    ]


async def test_a_page_loads_its_nested_fields_in_one_statement_each_and_no_more(
    gql: GraphQLClient, scim: ScimClient, engine: AsyncEngine
) -> None:
    await _two_users_in_three_groups(scim)
    with StatementCounter(engine) as plain:
        await gql("{ users { nodes { userName } } }")
    with StatementCounter(engine) as nested:
        data = await gql("{ users { nodes { userName managedByIdentityProvider groups(first: 2) { totalCount nodes { id } } } } }")
    assert [u["managedByIdentityProvider"] for u in data["users"]["nodes"]] == [True, True]
    # Ownership, the group counts and the groups: one statement each for the page, none per user.
    assert len(nested.statements) == len(plain.statements) + 3, nested.statements
    assert not any("group_memberships" in s for s in plain.statements)


async def test_a_users_groups_are_counted_only_when_their_page_is_full(gql: GraphQLClient, scim: ScimClient, engine: AsyncEngine) -> None:
    await _two_users_in_three_groups(scim)  # ann is in 3 groups, bob in 2

    def totals(data: dict[str, Any]) -> list[tuple[int, bool, int]]:
        pages = [u["groups"] for u in data["users"]["nodes"]]
        return [(page["totalCount"], page["pageInfo"]["hasNextPage"], len(page["nodes"])) for page in pages]

    shape = "{ totalCount pageInfo { hasNextPage endCursor } nodes { name } }"
    with StatementCounter(engine) as partial:
        assert totals(await gql("{ users { nodes { groups(first: 5) %s } } }" % shape)) == [(3, False, 3), (2, False, 2)]
    with StatementCounter(engine) as full:
        first = await gql("{ users { nodes { groups(first: 2) %s } } }" % shape)
    assert totals(first) == [(3, True, 2), (2, False, 2)]
    # Pages that are not full tell their totals; the full ones are counted, in one statement.
    assert len(full.statements) == len(partial.statements) + 1
    assert not any("count(" in s for s in partial.statements if "group_memberships" in s)
    cursors = [u["groups"]["pageInfo"]["endCursor"] for u in first["users"]["nodes"]]
    after = await gql(
        "query($a: String, $b: String) { users { nodes { a: groups(first: 2, after: $a) %s b: groups(first: 2, after: $b) %s } } }"
        % (shape, shape),
        a=cursors[0],
        b=cursors[1],
    )
    ann, bob = after["users"]["nodes"]
    assert (ann["a"]["totalCount"], [g["name"] for g in ann["a"]["nodes"]]) == (3, ["Gamma"])  # the rest of ann's groups
    assert (bob["b"]["totalCount"], bob["b"]["nodes"], bob["b"]["pageInfo"]["hasNextPage"]) == (2, [], False)  # past bob's end


async def test_a_load_refused_is_reported_at_the_rows_field(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await _two_users_in_three_groups(ScimClient(client, await make_tenant(sessionmaker, "acme")))
    limited = GraphQLClient(client, await make_tenant(sessionmaker, "acme", ["users:read"]))
    body = (await limited.raw("{ users { nodes { userName groups { totalCount } } } }")).json()
    # `groups` cannot be null, so neither can the page: the first row's refusal is the answer, as when
    # each row loads its own.
    assert body["data"] is None
    [error] = body["errors"]
    assert error["path"] == ["users", "nodes", 0, "groups"] and error["extensions"]["code"] == "PermissionDenied"
    assert "groups:read" in error["message"]


@pytest.mark.parametrize("ready", [True, False], ids=["loaded ahead", "loaded later"])
async def test_a_field_of_two_loads_raises_the_first_failure_and_loses_none(ready: bool) -> None:
    loop = asyncio.get_running_loop()
    reported: list[str] = []
    loop.set_exception_handler(lambda _, context: reported.append(context["message"]))
    try:
        futures = [loop.create_future(), loop.create_future()]

        def fail() -> None:
            futures[0].set_exception(PermissionDenied("groups:read"))
            futures[1].set_exception(PermissionDenied("users:read"))

        if ready:
            fail()
            with pytest.raises(PermissionDenied, match="groups:read"):
                settled(*futures, then=lambda *values: values)
        else:
            pending: Any = settled(*futures, then=lambda *values: values)
            loop.call_soon(fail)
            with pytest.raises(PermissionDenied, match="groups:read"):
                await pending
            pending = None
        futures.clear()
        gc.collect()
        assert reported == []  # asyncio saw no failure left unretrieved
    finally:
        loop.set_exception_handler(None)


async def test_a_field_of_loads_gets_their_values() -> None:
    loop = asyncio.get_running_loop()
    count, rows = loop.create_future(), loop.create_future()
    count.set_result(2)
    rows.set_result(["a", "b"])
    assert settled(count, rows, then=lambda total, found: (total, found)) == (2, ["a", "b"])
