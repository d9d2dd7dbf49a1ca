"""/metrics: what a known mix of requests leaves in Prometheus' text format, and METRICS_TOKEN."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.db.engine import create_engine
from app.main import create_app
from app.metrics import Metrics, route_of
from app.settings import ConfigError, DatabaseTimeouts, Settings, load_settings
from tests.support.clients import GraphQLClient, ScimClient, Tenant, make_tenant

SCIM = "/gateway/ng/api/scim/account/{account}"
PG_URL = os.environ.get("TEST_DATABASE_URL")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def test_metrics_count_a_known_mix_of_requests(
    client: httpx.AsyncClient, scim: ScimClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user = await scim.create_user("ada@example.com")
    assert (await scim.get(f"/Users/{user['id']}")).status_code == 200
    assert (await scim.get(f"/users/{user['id']}")).status_code == 200  # any case: one route
    assert (await scim.get("/Users/does-not-exist")).status_code == 404
    assert (await scim.get("/Users", params={"filter": 'userName eq "x"'})).status_code == 200
    assert (await client.get(f"{tenant.base}/Users", headers={"Authorization": "Bearer nope"})).status_code == 401
    reader = GraphQLClient(client, await make_tenant(sessionmaker, tenant.identifier, ["users:read", "groups:read"]))
    denied = await reader('mutation { createUserGroup(input: {name: "G"}) { __typename } }')
    assert denied["createUserGroup"]["__typename"] == "PermissionDeniedError"
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)

    def value(name: str, **labels: str) -> float:
        return found.get((name, tuple(sorted(labels.items()))), 0.0)

    by_id = f"{SCIM}/Users/{{id}}"
    assert value("scimgraph_http_requests_total", route=by_id, method="GET", status="200") == 2
    assert value("scimgraph_http_requests_total", route=by_id, method="GET", status="404") == 1
    assert value("scimgraph_http_requests_total", route=f"{SCIM}/Users", method="POST", status="201") == 1
    assert value("scimgraph_http_requests_total", route=f"{SCIM}/Users", method="GET", status="401") == 1
    assert value("scimgraph_http_requests_total", route="/graphql", method="POST", status="200") == 1
    assert value("scimgraph_http_request_duration_seconds_count", route=by_id, method="GET") == 3
    assert value("scimgraph_scim_operations_total", resource="Users", operation="read", outcome="success") == 2
    assert value("scimgraph_scim_operations_total", resource="Users", operation="read", outcome="client_error") == 1
    assert value("scimgraph_scim_operations_total", resource="Users", operation="create", outcome="success") == 1
    assert value("scimgraph_scim_operations_total", resource="Users", operation="list", outcome="success") == 1
    assert value("scimgraph_authentication_failures_total", channel="SCIM") == 1
    assert value("scimgraph_graphql_denied_mutations_total") == 1
    assert ("scimgraph_database_pool_connections", (("state", "in_use"),)) in found
    # No path, id, account or query string becomes a label.
    assert user["id"] not in response.text and tenant.identifier not in response.text and "userName" not in response.text


async def test_metrics_token_guards_the_endpoint(settings: Settings, engine: AsyncEngine) -> None:
    app = create_app(replace(settings, metrics_token="s3cret-metrics-token"), engine=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://scim.example.test") as client:
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401
        assert (await client.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics-token"})).status_code == 200
    with pytest.raises(ConfigError, match="METRICS_TOKEN"):
        load_settings({"METRICS_TOKEN": "short"})


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/gateway/ng/api/scim/account/acme/Users", f"{SCIM}/Users"),
        ("/gateway/ng/api/scim/account/acme/groups/abc/", f"{SCIM}/Groups/{{id}}"),
        ("/gateway/ng/api/scim/account/acme/Users/.search", f"{SCIM}/Users/.search"),
        ("/gateway/ng/api/scim/account/acme/Schemas/urn:x", f"{SCIM}/Schemas/{{id}}"),
        ("/gateway/ng/api/scim/account/acme/Users/a/b", "other"),
        ("/wp-admin/login.php", "other"),
        ("/graphql", "/graphql"),
        ("/graphiql/0123456789abcdef/graphiql.min.js", "/graphiql/{digest}/{name}"),
    ],
)
def test_routes_are_templates_from_a_bounded_set(path: str, route: str) -> None:
    assert route_of(path)[0] == route


@pytest.mark.skipif(PG_URL is None, reason="the waiting count is of PostgreSQL's pool: set TEST_DATABASE_URL (CI does)")
async def test_requests_waiting_for_a_database_connection_are_counted() -> None:
    assert PG_URL is not None
    engine = create_engine(PG_URL, DatabaseTimeouts(pool_checkout=10), pool_size=1)  # no overflow either
    metrics = Metrics()
    metrics.watch_pool(lambda: engine.pool)

    def waiting() -> float:
        found = samples(generate_latest(metrics.registry).decode())
        return found[("scimgraph_database_pool_waiting", ())]

    try:
        async with engine.connect() as held:
            await held.execute(text("select 1"))
            assert waiting() == 0
            queued = [asyncio.create_task(_select_one(engine)) for _ in range(2)]
            for _ in range(200):
                await asyncio.sleep(0.01)
                if waiting() == 2:
                    break
            assert waiting() == 2
        assert await asyncio.gather(*queued) == [1, 1]
        assert waiting() == 0
    finally:
        await engine.dispose()


async def _select_one(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text("select 1"))).scalar_one())


def test_latency_lands_in_the_first_bucket_at_or_above_it() -> None:
    metrics = Metrics()
    for seconds in (0.005, 0.0051, 0.3, 11.0):  # on a bound, just above one, between, past the last
        metrics.observe("GET", "/healthz", 200, seconds)
    found = samples(generate_latest(metrics.registry).decode())

    def bucket(le: str) -> float:
        return found[("scimgraph_http_request_duration_seconds_bucket", (("le", le), ("method", "GET"), ("route", "/healthz")))]

    assert [bucket(le) for le in ("0.005", "0.01", "0.25", "0.5", "10.0", "+Inf")] == [1, 2, 2, 3, 3, 4]
    assert found[("scimgraph_http_request_duration_seconds_sum", (("method", "GET"), ("route", "/healthz")))] == 0.005 + 0.0051 + 0.3 + 11.0
