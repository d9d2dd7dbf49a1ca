"""Shared fixtures. Every database test runs on SQLite and, when TEST_DATABASE_URL is set, on
PostgreSQL too. The schema comes from the Alembic migrations; each test starts from empty tables."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from app.activity import ActivityLog
from app.auth import TokenCache
from app.db import migrate
from app.db.engine import create_engine, create_sessionmaker
from app.db.models import metadata
from app.integration_activity import IntegrationActivity
from app.main import create_app
from app.settings import Settings
from tests.support.clients import ScimClient, Tenant, make_tenant

BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get("TEST_DATABASE_URL") else [])


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    else:
        url = os.environ["TEST_DATABASE_URL"]
        # A PostgreSQL that was asked for must be there: fail loudly rather than skip.
        migrate.downgrade(url, "base")
    migrate.upgrade(url)
    yield url


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    async with engine.begin() as connection:
        tables = [t.name for t in reversed(metadata.sorted_tables)]
        if engine.dialect.name == "postgresql":
            await connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                await connection.execute(text(f"DELETE FROM {table}"))
    await engine.dispose()


@pytest.fixture
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


@pytest.fixture
def settings(database_url: str) -> Settings:
    # One token sends a test's every request, far faster than an identity provider would: its rate
    # limit is off here, and tests/test_rate_limits.py checks the limits.
    return Settings(database_url=database_url, public_url="https://scim.example.test", rate_limit_per_token="off")


@pytest.fixture
def app(settings: Settings, engine: AsyncEngine) -> Starlette:
    app = create_app(settings, engine=engine)
    # A token read once stays verified for the whole test: statement counts do not depend on whether
    # a second passed between two requests. Tests of the cache's expiry set a clock of their own.
    app.state.token_cache = TokenCache(clock=lambda: 0.0)
    # App integrations' health is written after every request, so that tests read what they did.
    app.state.integration_activity = IntegrationActivity(interval=0.0)
    # The activity log's records of requests wait until a test writes them (`app.state.activity.write`):
    # a write after each request would show in the statements the request-path tests count.
    app.state.activity = ActivityLog(interval=3600.0)
    return app


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://scim.example.test") as client:
        yield client


@pytest.fixture
async def tenant(sessionmaker: async_sessionmaker[AsyncSession]) -> Tenant:
    return await make_tenant(sessionmaker, "acme")


@pytest.fixture
async def other_tenant(sessionmaker: async_sessionmaker[AsyncSession]) -> Tenant:
    return await make_tenant(sessionmaker, "globex")


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


@pytest.fixture
def scim(client: httpx.AsyncClient, tenant: Tenant) -> ScimClient:
    return ScimClient(client, tenant)


@pytest.fixture
def other_scim(client: httpx.AsyncClient, other_tenant: Tenant) -> ScimClient:
    return ScimClient(client, other_tenant)
