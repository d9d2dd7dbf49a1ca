"""Requests that need no transaction — reads, and writes in one statement — keep their connection for
the next such request (PostgreSQL): the pool counts kept connections as idle, takes one back for a
checkout that would otherwise wait, and closes them with the engine; a request that failed, or a
connection found dead, is never kept."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from starlette.applications import Starlette

from app.db.engine import WatchedQueuePool, create_engine, read_only_engine
from app.db.transactions import KeptConnections, run_read
from app.settings import DatabaseTimeouts
from tests.support.clients import GraphQLClient, ScimClient, Tenant, token_known

POSTGRESQL_ONLY = "connections are kept on PostgreSQL only: SQLite's reads take one from the pool and hand it back"


async def _select_one(connection: AsyncConnection) -> Any:
    return (await connection.execute(text("SELECT 1"))).scalar()


@pytest.fixture
async def small_pool(engine: AsyncEngine) -> Any:
    """An engine of the test database whose pool holds one connection and opens no more."""
    if engine.dialect.name != "postgresql":
        pytest.skip(POSTGRESQL_ONLY)
    url = engine.url.render_as_string(hide_password=False)
    small = create_engine(url, DatabaseTimeouts(pool_checkout=1.0), pool_size=1)  # and no overflow: half of one
    yield small
    await small.dispose()


async def test_a_read_keeps_its_connection_for_the_next_read(scim: ScimClient, app: Starlette, engine: AsyncEngine) -> None:
    kept: KeptConnections = app.state.read_connections
    await token_known(scim)
    user_id = (await scim.post("/Users", {"userName": "kept@example.com"})).json()["id"]
    assert (await scim.get(f"/Users/{user_id}")).status_code == 200
    if engine.dialect.name != "postgresql":
        assert kept.idle() == 0
        return
    assert kept.idle() == 1
    first = kept._idle[0]
    for _ in range(3):
        assert (await scim.get(f"/Users/{user_id}")).status_code == 200
        assert (await scim.get("/Users", params={"filter": 'userName eq "kept@example.com"'})).json()["totalResults"] == 1
        assert (await scim.get("/Users/no-such-user")).status_code == 404  # an answer, not a failure
    assert kept._idle == [first]  # the same connection, request after request
    pool = engine.sync_engine.pool
    assert isinstance(pool, WatchedQueuePool)
    assert pool.checkedout() == 0  # kept, it is idle: the pool's metrics say so


async def test_graphql_queries_read_on_the_connection_kept_for_reads(
    scim: ScimClient, client: httpx.AsyncClient, tenant: Tenant, app: Starlette, engine: AsyncEngine
) -> None:
    gql = GraphQLClient(client, tenant)
    kept: KeptConnections = app.state.read_connections
    if engine.dialect.name != "postgresql":
        pytest.skip(POSTGRESQL_ONLY)
    await token_known(scim)
    query = "{ users(first: 5) { totalCount nodes { userName groups { totalCount } } } userGroups { totalCount } }"
    assert (await gql(query))["userGroups"]["totalCount"] == 0
    [first] = kept._idle
    for _ in range(3):
        assert (await gql(query))["users"]["totalCount"] == 0
        assert (await scim.get("/Users?count=1")).status_code == 200  # SCIM's reads and GraphQL's queries share them
        assert kept._idle == [first]
    created = await gql('mutation { createUser(input: {email: "m@example.com", name: "M"}) { __typename } }')
    assert created["createUser"]["__typename"] == "User"
    # A mutation is a transaction, committed before its answer: the next query, on a kept connection, sees it.
    assert (await gql("{ users { totalCount } }"))["users"]["totalCount"] == 1


async def test_a_write_in_one_statement_keeps_its_connection_for_the_next_one(
    scim: ScimClient, app: Starlette, engine: AsyncEngine
) -> None:
    kept: KeptConnections | None = app.state.one_statement_connections
    if engine.dialect.name != "postgresql":
        assert kept is None  # SQLite's writes are transactions
        return
    assert kept is not None
    await token_known(scim)
    user_id = (await scim.post("/Users", {"userName": "written@example.com"})).json()["id"]
    assert kept.idle() == 1
    first = kept._idle[0]
    for title in ("one", "two", "three"):
        patched = await scim.patch(f"/Users/{user_id}", [{"op": "replace", "path": "title", "value": title}])
        assert patched.json()["title"] == title
    assert kept._idle == [first]


async def test_a_read_that_failed_does_not_keep_its_connection(engine: AsyncEngine) -> None:
    kept = KeptConnections(read_only_engine(engine))

    async def fails(connection: AsyncConnection) -> None:
        await _select_one(connection)
        raise LookupError("the handler's own failure")

    with pytest.raises(LookupError):
        await run_read(kept, fails)
    assert kept.idle() == 0
    assert engine.sync_engine.pool.checkedout() == 0


async def test_a_checkout_takes_a_kept_connection_back_instead_of_waiting(small_pool: AsyncEngine) -> None:
    kept = KeptConnections(read_only_engine(small_pool))
    assert await run_read(kept, _select_one) == 1
    assert kept.idle() == 1  # the pool's only connection
    async with asyncio.timeout(0.5), small_pool.connect() as connection:  # a write's checkout: it does not wait for the pool timeout
        assert await _select_one(connection) == 1
    assert kept.idle() == 0


async def test_a_connection_is_not_kept_while_a_checkout_waits_for_one(small_pool: AsyncEngine) -> None:
    kept = KeptConnections(read_only_engine(small_pool))
    reading = asyncio.Event()
    finish = asyncio.Event()

    async def slow(connection: AsyncConnection) -> Any:
        reading.set()
        await finish.wait()
        return await _select_one(connection)

    read = asyncio.create_task(run_read(kept, slow))
    await reading.wait()  # the read holds the pool's only connection

    async def write() -> Any:
        async with small_pool.connect() as connection:
            return await _select_one(connection)

    waiting = asyncio.create_task(write())
    while small_pool.sync_engine.pool.waiting() == 0:  # type: ignore[attr-defined]
        await asyncio.sleep(0.01)
    finish.set()
    async with asyncio.timeout(0.8):  # under the pool timeout: the read handed its connection over
        assert await waiting == 1
    assert await read == 1


async def test_kept_connections_close_with_the_engine(database_url: str) -> None:
    own = create_engine(database_url)
    kept = KeptConnections(read_only_engine(own))
    connections: list[AsyncConnection] = []

    async def remember(connection: AsyncConnection) -> Any:
        connections.append(connection)
        return await _select_one(connection)

    await asyncio.gather(*(run_read(kept, remember) for _ in range(3)))
    if own.dialect.name == "postgresql":
        assert kept.idle() == 3
    await own.dispose()
    assert kept.idle() == 0
    assert all(connection.closed for connection in connections)
