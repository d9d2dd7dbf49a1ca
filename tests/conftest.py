"""Shared fixtures. Every database test runs on SQLite and, when TEST_DATABASE_URL is set, on
PostgreSQL too. The schema comes from the Alembic migrations; each test starts from empty tables."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from app.auth import TokenCache
from app.db import migrate
from app.db.engine import create_engine, create_sessionmaker
from app.db.models import metadata
from app.main import create_app
from app.services import accounts, tokens
from app.settings import Settings

BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get("TEST_DATABASE_URL") else [])
SCIM_BASE = "/gateway/ng/api/scim/account"


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
    return Settings(database_url=database_url, public_url="https://scim.example.test")


@pytest.fixture
def app(settings: Settings, engine: AsyncEngine) -> Starlette:
    app = create_app(settings, engine=engine)
    # A token read once stays verified for the whole test: statement counts do not depend on whether
    # a second passed between two requests. Tests of the cache's expiry set a clock of their own.
    app.state.token_cache = TokenCache(clock=lambda: 0.0)
    return app


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://scim.example.test") as client:
        yield client


@dataclass
class Tenant:
    account_id: int
    identifier: str
    token: str
    token_id: str

    @property
    def base(self) -> str:
        return f"{SCIM_BASE}/{self.identifier}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def make_tenant(
    sessionmaker: async_sessionmaker[AsyncSession], identifier: str, permissions: list[str] | None = None
) -> Tenant:
    async with sessionmaker() as session, session.begin():
        try:
            account = await accounts.get_account(session, identifier)
        except Exception:
            account = await accounts.create_account(session, identifier, identifier.title())
        issued = await tokens.create_token(session, account, name="test", permissions=permissions)
        assert account.id is not None
        return Tenant(account.id, account.identifier, issued.plaintext, issued.token.token_id)


@pytest.fixture
async def tenant(sessionmaker: async_sessionmaker[AsyncSession]) -> Tenant:
    return await make_tenant(sessionmaker, "acme")


@pytest.fixture
async def other_tenant(sessionmaker: async_sessionmaker[AsyncSession]) -> Tenant:
    return await make_tenant(sessionmaker, "globex")


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


class ScimClient:
    """A SCIM client bound to one tenant: paths are relative to its Tenant URL."""

    def __init__(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        self.client = client
        self.tenant = tenant

    async def request(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        headers = {**self.tenant.headers, **kwargs.pop("headers", {})}  # type: ignore[dict-item]
        return await self.client.request(method, f"{self.tenant.base}{path}", headers=headers, **kwargs)  # type: ignore[arg-type]

    async def get(self, path: str, **kwargs: object) -> httpx.Response:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, json: object = None, **kwargs: object) -> httpx.Response:
        return await self.request("POST", path, json=json, **kwargs)

    async def put(self, path: str, json: object = None, **kwargs: object) -> httpx.Response:
        return await self.request("PUT", path, json=json, **kwargs)

    async def patch(self, path: str, operations: list[dict[str, object]], **kwargs: object) -> httpx.Response:
        return await self.request("PATCH", path, json={"schemas": [PATCH_OP], "Operations": operations}, **kwargs)

    async def delete(self, path: str, **kwargs: object) -> httpx.Response:
        return await self.request("DELETE", path, **kwargs)

    async def create_user(self, user_name: str, **attributes: object) -> dict[str, object]:
        body = {"schemas": [CORE_USER], "userName": user_name, "active": True, **attributes}
        response = await self.post("/Users", body)
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    async def create_group(self, display_name: str, **attributes: object) -> dict[str, object]:
        response = await self.post("/Groups", {"schemas": [CORE_GROUP], "displayName": display_name, **attributes})
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    async def find(self, resource: str, filter_text: str, **params: str) -> list[dict[str, object]]:
        response = await self.get(f"/{resource}", params={"filter": filter_text, **params})
        assert response.status_code == 200, response.text
        return response.json()["Resources"]  # type: ignore[no-any-return]


@pytest.fixture
def scim(client: httpx.AsyncClient, tenant: Tenant) -> ScimClient:
    return ScimClient(client, tenant)


@pytest.fixture
def other_scim(client: httpx.AsyncClient, other_tenant: Tenant) -> ScimClient:
    return ScimClient(client, other_tenant)
