"""Authentication (401, one answer for every failure), permissions (403) and tenant isolation."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import AuditEvent
from app.errors import Unavailable
from app.services import audit, tokens
from tests.support.clients import ScimClient, Tenant, make_tenant


@pytest.mark.parametrize(
    "authorization", [None, "", "Bearer", "Basic dXNlcjpwYXNz", "Bearer not-a-token", "Bearer sat.acme.0000000000000000.secret"]
)
async def test_missing_or_bad_tokens_are_401(client: httpx.AsyncClient, tenant: Tenant, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await client.get(f"{tenant.base}/Users", headers=headers)
    assert response.status_code == 401
    body = response.json()
    assert body["status"] == "401" and body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_every_401_says_the_same(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    wrong_secret = tenant.token[:-2] + "xx"
    other_account = other_tenant.token
    details = set()
    for token in (wrong_secret, other_account, "garbage"):
        response = await client.get(f"{tenant.base}/Users", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
        details.add(response.text)
    unused = await make_tenant(sessionmaker, "acme")  # never used, so no instance has it cached
    async with sessionmaker() as session, session.begin():
        await tokens.revoke_token(session, unused.account_id, unused.token_id)
    revoked = await client.get(f"{tenant.base}/Users", headers=unused.headers)
    assert revoked.status_code == 401
    details.add(revoked.text)
    assert len(details) == 1


async def test_unknown_account_in_path_is_401(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.get("/gateway/ng/api/scim/account/nosuch/Users", headers=tenant.headers)
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("permissions", "method", "path", "needed"),
    [
        (["groups:read"], "GET", "/Users", "users:read"),
        (["users:read"], "POST", "/Users", "users:write"),
        (["users:write"], "GET", "/Groups", "groups:read"),
        (["groups:read", "users:read"], "POST", "/Groups", "groups:write"),
    ],
)
async def test_missing_permission_is_403_naming_it(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], permissions: list[str], method: str, path: str, needed: str
) -> None:
    limited = await make_tenant(sessionmaker, "acme", permissions)
    body = {"userName": "x@y", "displayName": "G"} if method == "POST" else None
    response = await client.request(method, f"{limited.base}{path}", headers=limited.headers, json=body)
    assert response.status_code == 403
    assert needed in response.json()["detail"]


async def test_a_groups_only_token_sees_members_as_references(
    scim: ScimClient, client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """A group's `members` (id and display name) are part of the group: groups:read shows them,
    without users:read, which the users' own documents need."""
    user = await scim.create_user("member@x", displayName="Mem Ber")
    group = await scim.create_group("G", members=[{"value": user["id"]}])
    groups_only = ScimClient(client, await make_tenant(sessionmaker, "acme", ["groups:read"]))
    response = await groups_only.get(f"/Groups/{group['id']}")
    assert response.status_code == 200, response.text
    assert [(m["value"], m["display"]) for m in response.json()["members"]] == [(user["id"], "Mem Ber")]
    assert (await groups_only.get(f"/Users/{user['id']}")).status_code == 403


async def test_read_only_token_cannot_patch_or_delete(
    scim: ScimClient, client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user = await scim.create_user("a@x")
    reader = ScimClient(client, await make_tenant(sessionmaker, "acme", ["users:read"]))
    assert (await reader.get(f"/Users/{user['id']}")).status_code == 200
    assert (await reader.patch(f"/Users/{user['id']}", [{"op": "add", "path": "title", "value": "x"}])).status_code == 403
    assert (await reader.delete(f"/Users/{user['id']}")).status_code == 403
    assert (await scim.get(f"/Users/{user['id']}")).json().get("title") is None


async def test_every_refusal_over_scim_is_audited_as_denied_naming_the_missing_permission(
    scim: ScimClient, client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user = await scim.create_user("a@x")
    limited = await make_tenant(sessionmaker, "acme", ["users:read"])
    reader = ScimClient(client, limited)
    assert (await reader.patch(f"/Users/{user['id']}", [{"op": "add", "path": "title", "value": "x"}])).status_code == 403
    assert (await reader.post("/Groups", {"displayName": "G"})).status_code == 403
    assert (await reader.post("/Groups/.search", {"filter": 'displayName eq "G"'})).status_code == 403
    async with sessionmaker() as session:
        denied = list(await session.scalars(select(AuditEvent).where(AuditEvent.outcome == "DENIED").order_by(AuditEvent.id)))
    assert [(e.channel, e.caller, e.action, e.resource_type, e.resource_id) for e in denied] == [
        ("SCIM", limited.token_id, "user.update", "User", user["id"]),
        ("SCIM", limited.token_id, "group.create", "UserGroup", None),
        ("SCIM", limited.token_id, "group.read", "UserGroup", None),
    ]
    assert [e.detail["reason"] for e in denied] == [
        "the token lacks the permission users:write",
        "the token lacks the permission groups:write",
        "the token lacks the permission groups:read",
    ]
    # The refused change itself left nothing behind.
    assert (await scim.get(f"/Users/{user['id']}")).json().get("title") is None
    assert await scim.find("Groups", 'displayName eq "G"') == []


async def test_tenant_isolation(
    scim: ScimClient, other_scim: ScimClient, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    user = await scim.create_user("same@x")
    group = await scim.create_group("Same")
    # The other account can use the same names: uniqueness is per account.
    await other_scim.create_user("same@x")
    await other_scim.create_group("Same")
    # B's token sees none of A's data, by list, filter or id.
    # The same lookups from both accounts (their statements are built once and shared) find each its own.
    [mine] = await scim.find("Users", 'userName eq "same@x"')
    [theirs] = await other_scim.find("Users", 'userName eq "same@x"')
    assert mine["id"] == user["id"] != theirs["id"]
    for each in (scim, other_scim):
        assert (await each.get("/Users")).json()["totalResults"] == 1
        assert (await each.get("/Groups", params={"filter": 'displayName eq "Same"'})).json()["totalResults"] == 1
    assert (await other_scim.get(f"/Users/{user['id']}")).status_code == 404
    assert (await other_scim.get(f"/Groups/{group['id']}")).status_code == 404
    assert (await other_scim.delete(f"/Users/{user['id']}")).status_code == 404
    assert (await other_scim.patch(f"/Groups/{group['id']}", [{"op": "remove", "path": "members"}])).status_code == 404
    # B's token on A's Tenant URL is refused outright.
    response = await client.get(f"{tenant.base}/Users/{user['id']}", headers=other_tenant.headers)
    assert response.status_code == 401
    assert (await scim.get(f"/Users/{user['id']}")).status_code == 200


async def test_a_refusal_the_database_cannot_record_now_is_503_to_ask_again(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def database_down(*_: object, **__: object) -> None:
        raise Unavailable()

    monkeypatch.setattr(audit, "record_refusal", database_down)
    reader = ScimClient(client, await make_tenant(sessionmaker, "acme", ["users:read"]))
    response = await reader.post("/Users", {"userName": "a@x"})
    assert response.status_code == 503 and "retry-after" in response.headers
