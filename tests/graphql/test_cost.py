"""The GraphQL cost budget: nested pages are counted before anything runs, an operation over budget is
refused with its cost and touches no data, and every operation let through reports its cost."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from graphql import parse
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.graphql.cost import Measure, measure_operation
from app.graphql.schema import schema
from app.main import create_app
from app.settings import DEFAULT_GRAPHQL_COST_BUDGET, Settings
from tests.support.clients import GraphQLClient, ScimClient, Tenant, make_tenant
from tests.support.statements import StatementCounter

BUDGET = DEFAULT_GRAPHQL_COST_BUDGET

# The report's query: four nested pages of 100, from a read-only token.
ATTACK = "{users(first:100){nodes{groups(first:100){nodes{members(first:100){nodes{groups(first:100){nodes{id}}}}}}}}}"
ATTACK_COST = 100 + 100**2 + 100**3 + 100**4
DATA_TABLES = re.compile(r"\b(users|user_groups|group_memberships|user_attribute_values)\b")


def _cost_error(body: dict[str, Any]) -> dict[str, Any]:
    assert body["data"] is None, body
    [error] = body["errors"]
    return error  # type: ignore[no-any-return]


@pytest.fixture
async def reader(client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]) -> GraphQLClient:
    return GraphQLClient(client, await make_tenant(sessionmaker, "acme", ["users:read", "groups:read"]))


async def test_the_nested_pages_attack_is_refused_before_any_query_runs(
    reader: GraphQLClient, scim: ScimClient, engine: AsyncEngine
) -> None:
    users = [(await scim.create_user(f"u{i}@x"))["id"] for i in range(3)]
    await scim.create_group("Everyone", members=[{"value": u} for u in users])
    with StatementCounter(engine) as refused:
        response = await reader.raw(ATTACK)
    assert response.status_code == 200
    error = _cost_error(response.json())
    assert error["extensions"] == {"code": "QUERY_TOO_COSTLY", "cost": ATTACK_COST, "budget": BUDGET}
    assert str(ATTACK_COST) in error["message"] and str(BUDGET) in error["message"]
    # Only the token check ran: no user, group or membership was read.
    assert any("api_tokens" in statement for statement in refused.statements)
    assert not [statement for statement in refused.statements if DATA_TABLES.search(statement)]


async def test_typical_admin_screens_pass_and_report_their_cost(gql: GraphQLClient, scim: ScimClient) -> None:
    user = await scim.create_user("ann@x", emails=[{"value": "ann@x", "type": "work"}])
    await scim.create_group("Team", members=[{"value": user["id"]}])
    screens = {
        "{ userGroups(first: 100) { nodes { name memberCount members(first: 5) { totalCount nodes { email } } } } }": 100 + 100 * 5,
        "{ users(first: 50) { nodes { userName groups(first: 5) { nodes { name } } } } }": 50 + 50 * 5,
        "{ viewer { accountName } users { totalCount } }": 50,
        "{ userGroups(first: 100) { nodes { members(first: 99) { totalCount } } } }": 100 + 100 * 99,
    }
    for query, cost in screens.items():
        body = (await gql.raw(query)).json()
        assert "errors" not in body, body
        assert body["extensions"] == {"cost": {"requested": cost, "budget": BUDGET}}, query
    assert body["data"]["userGroups"]["nodes"] == [{"members": {"totalCount": 1}}]


COUNTED = {
    "aliases each count": ("{ a: users(first: 10) { totalCount } b: users(first: 20) { totalCount } }", {}, 30),
    "page omitted is the default page": ("{ users { nodes { groups { totalCount } } } }", {}, 50 + 50 * 50),
    "page over the cap counts as the cap": ("{ users(first: 1000) { totalCount } }", {}, 100),
    "negative page counts nothing below it": ("{ users(first: -5) { nodes { groups(first: 100) { totalCount } } } }", {}, 0),
    "nodes and edges both count": (
        "{ users(first: 10) { nodes { groups(first: 3) { totalCount } } edges { node { groups(first: 2) { totalCount } } } } }",
        {},
        60,
    ),
    "fragment spreads count where spread": (
        "{ users(first: 10) { ...G } more: users(first: 1) { ...G } } "
        "fragment G on UserConnection { nodes { groups(first: 4) { totalCount } } }",
        {},
        10 + 40 + 1 + 4,
    ),
    "inline fragments count": (
        "{ users(first: 10) { nodes { ... on User { groups(first: 4) { totalCount } } ... { more: groups { totalCount } } } } }",
        {},
        550,
    ),
    "variables are resolved": (
        "query($n: Int, $m: Int = 7) { users(first: $n) { nodes { groups(first: $m) { totalCount } } } }",
        {"n": 20},
        160,
    ),
    "variable defaults are used": (
        "query($n: Int, $m: Int = 7) { users(first: $n) { nodes { groups(first: $m) { totalCount } } } }",
        {},
        400,
    ),
    "every root field counts": (
        "{ users(first: 1) { totalCount } userGroups(first: 2) { totalCount } auditEvents(first: 3) { totalCount } }",
        {},
        6,
    ),
    "lists without pages cost nothing": ("{ viewer { permissions } organizations { name } featureFlags { name } }", {}, 0),
}


@pytest.mark.parametrize(("query", "variables", "cost"), COUNTED.values(), ids=COUNTED.keys())
async def test_each_page_is_counted(gql: GraphQLClient, query: str, variables: dict[str, Any], cost: int) -> None:
    body = (await gql.raw(query, **variables)).json()
    assert "errors" not in body, body
    assert body["extensions"]["cost"] == {"requested": cost, "budget": BUDGET}


OVER_BUDGET = {
    "through a fragment": (
        "{ users(first: 100) { ...G } } fragment G on UserConnection { nodes { groups(first: 100) { totalCount } } }",
        {},
        10_100,
    ),
    "through aliases": (
        "{ " + " ".join(f"u{i}: users(first: 100) {{ nodes {{ groups(first: 10) {{ totalCount }} }} }}" for i in range(10)) + " }",
        {},
        11_000,
    ),
    "through variables": ("query($n: Int) { users(first: $n) { nodes { groups(first: $n) { totalCount } } } }", {"n": 100}, 10_100),
    "through an inline fragment": ("{ users(first: 100) { nodes { ... on User { groups(first: 100) { totalCount } } } } }", {}, 10_100),
}


@pytest.mark.parametrize(("query", "variables", "cost"), OVER_BUDGET.values(), ids=OVER_BUDGET.keys())
async def test_every_way_of_writing_a_costly_query_is_refused(gql: GraphQLClient, query: str, variables: dict[str, Any], cost: int) -> None:
    error = _cost_error((await gql.raw(query, **variables)).json())
    assert error["extensions"] == {"code": "QUERY_TOO_COSTLY", "cost": cost, "budget": BUDGET}


async def test_a_costly_mutation_is_refused_and_changes_nothing(gql: GraphQLClient) -> None:
    costly = (
        'mutation { createUserGroup(input: {name: "Big"}) { ... on UserGroup { '
        "members(first: 100) { nodes { groups(first: 100) { nodes { members(first: 100) { totalCount } } } } } } } }"
    )
    error = _cost_error((await gql.raw(costly)).json())
    assert error["extensions"]["cost"] == 100 + 100**2 + 100**3
    assert (await gql("{ userGroups { totalCount } }"))["userGroups"]["totalCount"] == 0
    body = (
        await gql.raw('mutation { createUserGroup(input: {name: "Small"}) { ... on UserGroup { members(first: 5) { totalCount } } } }')
    ).json()
    assert body["data"]["createUserGroup"] == {"members": {"totalCount": 0}}
    assert body["extensions"]["cost"]["requested"] == 5


async def test_only_the_chosen_operation_is_costed(client: httpx.AsyncClient, tenant: Tenant) -> None:
    document = (
        "query Costly { users(first: 100) { nodes { groups(first: 100) { totalCount } } } } query Cheap { users(first: 2) { totalCount } }"
    )
    cheap = await client.post("/graphql", json={"query": document, "operationName": "Cheap"}, headers=tenant.headers)
    assert cheap.json() == {"data": {"users": {"totalCount": 0}}, "extensions": {"cost": {"requested": 2, "budget": BUDGET}}}
    costly = await client.post("/graphql", json={"query": document, "operationName": "Costly"}, headers=tenant.headers)
    assert _cost_error(costly.json())["extensions"]["cost"] == 10_100
    unnamed = await client.post("/graphql", json={"query": document}, headers=tenant.headers)  # the first one runs
    assert _cost_error(unnamed.json())["extensions"]["cost"] == 10_100


async def test_variables_that_do_not_fit_get_their_own_error(gql: GraphQLClient) -> None:
    query = "query($n: Int) { users(first: $n) { nodes { groups(first: $n) { nodes { members(first: $n) { totalCount } } } } } }"
    body = (await gql.raw(query, n="lots")).json()
    assert "Variable '$n' has invalid value" in _cost_error(body)["message"]
    assert "extensions" not in body


def _fan_out(levels: int) -> str:
    """Each fragment spreads the next twice: 2**levels paths in a few hundred characters."""
    fragments = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels))
    return f"{{ ...F0 }} {fragments} fragment F{levels} on Query {{ a: users(first: 1) {{ nodes {{ id }} }} }}"


def test_fragments_spread_many_times_are_measured_once_each() -> None:
    assert measure_operation(schema._schema, parse(_fan_out(40))) == Measure(nodes=2**40, depth=2, aliases=2**40)


async def test_fragment_fan_out_is_refused_not_walked(gql: GraphQLClient) -> None:
    """Walking all 2**40 paths (as strawberry's depth and alias limiters did) would never answer."""
    errors = (await gql.raw(_fan_out(40))).json()["errors"]
    assert [e["extensions"]["code"] for e in errors] == ["TOO_MANY_ALIASES", "QUERY_TOO_COSTLY"]
    assert errors[0]["extensions"]["aliases"] == errors[1]["extensions"]["cost"] == 2**40


async def test_depth_and_aliases_are_limited_with_their_measure(gql: GraphQLClient) -> None:
    def pages(levels: int) -> str:  # userGroups, then members and groups in turn, one node each
        fields = ["userGroups"] + ["members", "groups"] * levels
        return "".join(f"{f}(first: 1) {{ nodes {{ " for f in fields[:levels]) + "id" + " } }" * levels

    [error] = (await gql.raw(f"query Deep {{ {pages(6)} }}")).json()["errors"]
    assert error["message"] == "'Deep' exceeds maximum operation depth of 10"
    assert error["extensions"] == {"code": "QUERY_TOO_DEEP", "depth": 12, "maxDepth": 10}
    assert (await gql(f"{{ {pages(5)} }}"))["userGroups"] == {"nodes": []}  # depth 10
    aliases = "{ " + " ".join(f"a{i}: viewer {{ accountName }}" for i in range(31)) + " }"
    [error] = (await gql.raw(aliases)).json()["errors"]
    assert error["message"] == "31 aliases found. Allowed: 30"
    assert error["extensions"] == {"code": "TOO_MANY_ALIASES", "aliases": 31, "maxAliases": 30}


async def test_introspection_is_not_counted_in_depth(gql: GraphQLClient) -> None:
    type_ref = "kind name " + "ofType { kind name " * 9 + "}" * 9
    data = await gql(f'{{ __type(name: "User") {{ fields {{ type {{ {type_ref} }} }} }} }}')
    assert data["__type"]["fields"]


@pytest.fixture
async def small_budget_client(engine: AsyncEngine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(database_url=settings.database_url, public_url=settings.public_url, graphql_cost_budget=100), engine=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=settings.public_url) as client:
        yield client


async def test_the_budget_is_a_setting(small_budget_client: httpx.AsyncClient, tenant: Tenant) -> None:
    small = GraphQLClient(small_budget_client, tenant)
    body = (await small.raw("{ users(first: 50) { nodes { groups(first: 1) { totalCount } } } }")).json()
    assert body["extensions"]["cost"] == {"requested": 100, "budget": 100}
    error = _cost_error((await small.raw("{ users(first: 100) { nodes { groups(first: 1) { totalCount } } } }")).json())
    assert error["extensions"] == {"code": "QUERY_TOO_COSTLY", "cost": 200, "budget": 100}


async def test_an_operation_without_variables_is_measured_once_per_document(
    client: httpx.AsyncClient, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.graphql import cost

    measured: list[str | None] = []
    measure = cost.measure_operation

    def counted(schema: Any, document: Any, operation_name: str | None = None, variables: Any = None) -> Any:
        measured.append(operation_name)
        return measure(schema, document, operation_name, variables)

    monkeypatch.setattr(cost, "measure_operation", counted)
    document = "query Small { users(first: 3) { nodes { id } } } query Large($n: Int) { users(first: $n) { nodes { id } } }"

    async def requested(operation: str, **variables: Any) -> int:
        body = {"query": document, "operationName": operation, "variables": variables}
        response = await client.post("/graphql", json=body, headers=tenant.headers)
        return int(response.json()["extensions"]["cost"]["requested"])

    assert [await requested("Small") for _ in range(3)] == [3, 3, 3]
    assert measured == ["Small"]  # the same document and operation: measured once
    assert [await requested("Large", n=7), await requested("Large", n=9)] == [7, 9]
    assert measured == ["Small", "Large", "Large"]  # variables: measured each time
