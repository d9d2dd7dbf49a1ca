"""Clients the tests drive the service with: a tenant (account and token), SCIM bound to it, GraphQL.
The SCIM URNs are the application's own (`app.scim.schema`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import User
from app.db.types import utcnow
from app.scim.schema import CORE_GROUP, CORE_USER, PATCH_OP
from app.scim.schema import ENTERPRISE_USER as ENTERPRISE
from app.services import accounts, flags, tokens
from app.services.caller import system_caller

__all__ = [
    "CORE_GROUP",
    "CORE_USER",
    "ENTERPRISE",
    "PATCH_OP",
    "SCIM_BASE",
    "GraphQLClient",
    "ScimClient",
    "Tenant",
    "bulk_users",
    "make_tenant",
    "set_flag",
]

SCIM_BASE = "/gateway/ng/api/scim/account"


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


async def make_tenant(sessionmaker: async_sessionmaker[AsyncSession], identifier: str, permissions: list[str] | None = None) -> Tenant:
    async with sessionmaker() as session, session.begin():
        try:
            account = await accounts.get_account(session, identifier)
        except Exception:
            account = await accounts.create_account(session, identifier, identifier.title())
        issued = await tokens.create_token(session, account, name="test", permissions=permissions)
        assert account.id is not None
        return Tenant(account.id, account.identifier, issued.plaintext, issued.token.token_id)


async def set_flag(sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant, name: str, on: bool) -> None:
    """Turn one of the tenant's feature flags on or off, as an operator would with the CLI."""
    async with sessionmaker() as session, session.begin():
        await flags.set_flag(session, system_caller(tenant.account_id, tenant.identifier), name, on)


async def bulk_users(sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant, n: int, prefix: str) -> list[str]:
    """Insert n users of the tenant at once (no HTTP, no audit): data for tests of scale. Their ids."""
    now = utcnow()
    rows = [
        {
            "id": str(uuid.uuid4()),
            "account_id": tenant.account_id,
            "user_name": f"{prefix}{i}@x",
            "user_name_ci": f"{prefix}{i}@x",
            "active": True,
            "multi_valued": {},
            "provisioned_by": "SCIM",
            "created_at": now,
            "updated_at": now,
            "version": 1,
        }
        for i in range(n)
    ]
    async with sessionmaker() as session, session.begin():
        await session.execute(User.__table__.insert(), rows)  # type: ignore[attr-defined]
    return [r["id"] for r in rows]


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


class GraphQLClient:
    def __init__(self, client: httpx.AsyncClient, tenant: Tenant | None) -> None:
        self.client = client
        self.tenant = tenant

    async def raw(self, query: str, **variables: Any) -> httpx.Response:
        headers = self.tenant.headers if self.tenant else {}
        return await self.client.post("/graphql", json={"query": query, "variables": variables}, headers=headers)

    async def __call__(self, query: str, **variables: Any) -> dict[str, Any]:
        response = await self.raw(query, **variables)
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]  # type: ignore[no-any-return]


async def token_known(scim: ScimClient) -> None:
    """A first request, so that the token is verified (and cached) before the request a test measures
    or makes fail."""
    assert (await scim.get("/Users?count=1")).status_code == 200
