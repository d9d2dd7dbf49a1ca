"""GRAPHQL_IDE and GRAPHQL_INTROSPECTION: both on by default (the embedded, single-admin setup), both
can be turned off for a production server."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import httpx
import pytest
from graphql import get_introspection_query
from sqlalchemy.ext.asyncio import AsyncEngine

from app.main import create_app
from app.settings import DEFAULT_GRAPHQL_COST_BUDGET, ConfigError, Settings, load_settings
from tests.support.clients import GraphQLClient, Tenant

# query -> the introspection field it asks for
INTROSPECTION = {
    "{ __schema { queryType { name } } }": "__schema",
    '{ __type(name: "User") { name } }': "__type",
    '{ viewer { accountName } __type(name: "User") { fields { name } } }': "__type",
}


@pytest.fixture
async def locked_down(engine: AsyncEngine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    production = dataclasses.replace(settings, graphql_ide=False, graphql_introspection=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(production, engine=engine)), base_url=settings.public_url
    ) as client:
        yield client


async def test_graphiql_is_served_by_default(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200 and "graphiql" in response.text.lower()


async def test_graphiql_turned_off_is_a_json_404(locked_down: httpx.AsyncClient, tenant: Tenant) -> None:
    for headers in ({"Accept": "text/html"}, {"Accept": "text/html", **tenant.headers}):
        response = await locked_down.get("/graphql", headers=headers)
        assert response.status_code == 404, headers
        assert response.headers["content-type"].startswith("application/json")
        assert response.json() == {
            "errors": [{"message": "GraphiQL is turned off on this server; send operations with POST", "extensions": {"code": "NOT_FOUND"}}]
        }


@pytest.mark.parametrize("query", [*INTROSPECTION, get_introspection_query()])
async def test_introspection_works_by_default(gql: GraphQLClient, query: str) -> None:
    assert await gql(query)  # GraphiQL's own query included: the depth and cost limits leave it alone


@pytest.mark.parametrize(("query", "field"), INTROSPECTION.items())
async def test_introspection_turned_off_is_refused(locked_down: httpx.AsyncClient, tenant: Tenant, query: str, field: str) -> None:
    body = (await GraphQLClient(locked_down, tenant).raw(query)).json()
    assert body["data"] is None
    [error] = body["errors"]  # one error, not one per field below
    assert error["message"] == f"Introspection is turned off on this server: {field} is not available."
    assert error["extensions"] == {"code": "INTROSPECTION_DISABLED"}


async def test_the_api_itself_works_with_both_turned_off(locked_down: httpx.AsyncClient, tenant: Tenant) -> None:
    data = await GraphQLClient(locked_down, tenant)("{ __typename viewer { accountIdentifier } users { totalCount } }")
    assert data == {"__typename": "Query", "viewer": {"accountIdentifier": "acme"}, "users": {"totalCount": 0}}


def test_switches_default_on_and_read_on_off_words() -> None:
    defaults = load_settings({})
    assert (defaults.graphql_ide, defaults.graphql_introspection, defaults.graphql_cost_budget) == (True, True, DEFAULT_GRAPHQL_COST_BUDGET)
    off = load_settings({"GRAPHQL_IDE": "off", "GRAPHQL_INTROSPECTION": "False", "GRAPHQL_COST_BUDGET": "5000"})
    assert (off.graphql_ide, off.graphql_introspection, off.graphql_cost_budget) == (False, False, 5000)
    on = load_settings({"GRAPHQL_IDE": "1", "GRAPHQL_INTROSPECTION": " YES "})
    assert (on.graphql_ide, on.graphql_introspection) == (True, True)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GRAPHQL_IDE": "disabled"}, "GRAPHQL_IDE must be on or off"),
        ({"GRAPHQL_INTROSPECTION": "2"}, "GRAPHQL_INTROSPECTION must be on or off"),
        ({"GRAPHQL_COST_BUDGET": "lots"}, "GRAPHQL_COST_BUDGET must be a number"),
        ({"GRAPHQL_COST_BUDGET": "99"}, "GRAPHQL_COST_BUDGET must be at least 100"),
    ],
)
def test_bad_switch_values_are_one_line_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load_settings(env)
    assert "\n" not in str(info.value)
