"""DATABASE_READ_URL: requests that only read (SCIM GETs, GraphQL queries) go to the replica; writes
and every token check go to DATABASE_URL. Shown with a replica that cannot be reached: what still
works went to the primary, what answers 503 went to the replica."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from app.db.engine import create_engine
from app.main import create_app
from app.settings import ConfigError, DatabaseTimeouts, Settings, load_settings
from tests.support.clients import CORE_USER, GraphQLClient, ScimClient, make_tenant

PG = "postgresql+asyncpg://app@db.internal:5432/scimgraph"
REPLICA = "postgresql+asyncpg://app@replica.internal:5432/scimgraph"
PROMPT = 10.0


def test_the_replica_is_read_from_the_environment() -> None:
    assert load_settings({"DATABASE_URL": PG, "DATABASE_READ_URL": REPLICA}).database_read_url == REPLICA
    assert load_settings({"DATABASE_URL": PG}).database_read_url is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DATABASE_READ_URL": REPLICA}, "DATABASE_READ_URL needs PostgreSQL, for both it and DATABASE_URL"),
        ({"DATABASE_URL": PG, "DATABASE_READ_URL": "sqlite+aiosqlite:///./copy.db"}, "DATABASE_READ_URL needs PostgreSQL"),
        ({"DATABASE_URL": PG, "DATABASE_READ_URL": "not a url"}, "DATABASE_READ_URL is not a database URL"),
        ({"DATABASE_URL": PG, "DATABASE_READ_URL": "mysql+aiomysql://h/db"}, "DATABASE_READ_URL driver 'mysql+aiomysql' is not supported"),
    ],
)
def test_an_unusable_replica_url_is_refused_at_start(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(env)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def unreachable_replica() -> AsyncIterator[AsyncEngine]:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{_closed_port()}/replica"
    replica = create_engine(url, DatabaseTimeouts(connect=0.5, pool_checkout=0.5, statement=1.0))
    yield replica
    await replica.dispose()


async def test_reads_go_to_the_replica_and_writes_and_tokens_to_the_database(
    settings: Settings,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker,
    unreachable_replica: AsyncEngine,  # type: ignore[type-arg]
) -> None:
    tenant = await make_tenant(sessionmaker, "acme")
    app = create_app(settings, engine=engine, replica=unreachable_replica)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=settings.public_url) as client:
        scim, gql = ScimClient(client, tenant), GraphQLClient(client, tenant)
        async with asyncio.timeout(PROMPT):
            created = await scim.post("/Users", {"schemas": [CORE_USER], "userName": "ann@example.com"})
            assert created.status_code == 201, created.text
            renamed = await scim.patch(f"/Users/{created.json()['id']}", [{"op": "replace", "path": "displayName", "value": "Ann"}])
            assert renamed.status_code == 200, renamed.text
            mutation = await gql('mutation { createUser(input: {email: "bob@example.com", name: "Bob"}) { __typename } }')
            assert mutation["createUser"]["__typename"] == "User"

            for read in (
                await scim.get(f"/Users/{created.json()['id']}"),
                await scim.get("/Users", params={"filter": 'userName eq "ann@example.com"'}),
                await gql.raw("{ users(first: 1) { totalCount } }"),
            ):
                assert read.status_code == 503, read.text
                assert int(read.headers["retry-after"]) > 0

            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json() == {"status": "unavailable", "database": "ok", "replica": "unreachable"}
