"""Okta's habits: lowercase ops, replace with value objects, group PUT with members, upper-cased
userName filters."""

from __future__ import annotations

import dataclasses
import json

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.main import create_app
from app.settings import Settings
from tests.support.clients import CORE_GROUP, CORE_USER, ScimClient, Tenant, bulk_users
from tests.support.statements import StatementCounter


async def test_okta_user_lifecycle(scim: ScimClient) -> None:
    assert await scim.find("Users", 'userName eq "JANE.DOE@EXAMPLE.COM"') == []
    created = await scim.create_user(
        "jane.doe@example.com",
        name={"givenName": "Jane", "familyName": "Doe"},
        emails=[{"primary": True, "value": "jane.doe@example.com", "type": "work"}],
        displayName="Jane Doe",
        locale="en-US",
        externalId="00u1abcd",
        groups=[],
        password="ignored-secret",
    )
    assert "password" not in created
    found = await scim.find("Users", 'userName eq "JANE.DOE@EXAMPLE.COM"')
    assert [u["id"] for u in found] == [created["id"]]
    off = await scim.patch(f"/Users/{created['id']}", [{"op": "replace", "value": {"active": False}}])
    assert off.status_code == 200 and off.json()["active"] is False
    renamed = await scim.patch(f"/Users/{created['id']}", [{"op": "replace", "value": {"displayName": "Jane Q. Doe"}}])
    assert renamed.json()["displayName"] == "Jane Q. Doe"
    full = await scim.put(
        f"/Users/{created['id']}",
        {
            "schemas": [CORE_USER],
            "id": created["id"],
            "userName": "jane.doe@example.com",
            "name": {"givenName": "Janet", "familyName": "Doe"},
            "active": True,
        },
    )
    assert full.status_code == 200 and full.json()["name"]["givenName"] == "Janet" and full.json()["active"] is True


async def test_okta_group_push_with_put_members(scim: ScimClient) -> None:
    a, b, c = [await scim.create_user(f"{n}@example.com") for n in "abc"]
    group = await scim.create_group("Engineering", members=[{"value": a["id"], "display": "a@example.com"}])
    renamed = await scim.patch(f"/Groups/{group['id']}", [{"op": "replace", "value": {"id": group["id"], "displayName": "Eng"}}])
    assert renamed.status_code == 204
    response = await scim.put(
        f"/Groups/{group['id']}",
        {
            "schemas": [CORE_GROUP],
            "id": group["id"],
            "displayName": "Eng",
            "members": [{"value": b["id"], "display": "b"}, {"value": c["id"], "display": "c"}],
        },
    )
    assert response.status_code == 200
    assert sorted(m["value"] for m in response.json()["members"]) == sorted([b["id"], c["id"]])
    assert response.json()["displayName"] == "Eng"


async def test_okta_lowercase_member_ops(scim: ScimClient) -> None:
    a = await scim.create_user("a@example.com")
    group = await scim.create_group("G")
    assert (
        await scim.patch(f"/Groups/{group['id']}", [{"op": "add", "path": "members", "value": [{"value": a["id"], "display": "a"}]}])
    ).status_code == 204
    assert (await scim.patch(f"/Groups/{group['id']}", [{"op": "remove", "path": f'members[value eq "{a["id"]}"]'}])).status_code == 204
    assert "members" not in (await scim.get(f"/Groups/{group['id']}")).json()


def _group_document(name: str, ids: list[str]) -> bytes:
    members = [{"value": i, "display": f"user {i}"} for i in ids]
    return json.dumps({"schemas": [CORE_GROUP], "displayName": name, "members": members}).encode()


async def test_quirk_okta_pushes_a_large_group_as_one_put(
    scim: ScimClient, tenant: Tenant, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """Okta's group push sends the full member list with PUT: 25,000 members are over 2 MB, above the
    1 MiB limit of other bodies. The change is set-based: as many statements for 25,000 as for 2,000."""
    ids = await bulk_users(sessionmaker, tenant, 25_500, "okta")
    small = _group_document("Small", ids[:2_000])
    created = await scim.request("POST", "/Groups", content=small, headers={"content-type": "application/scim+json"})
    assert created.status_code == 201, created.text
    group_id = created.json()["id"]
    statements = []
    for members in (ids[500:2_500], ids[:25_000], ids[500:25_500]):
        body = _group_document("Small", members)
        with StatementCounter(engine) as counter:
            response = await scim.request("PUT", f"/Groups/{group_id}", content=body, headers={"content-type": "application/scim+json"})
        assert response.status_code == 200, response.text[:300]
        assert sorted(m["value"] for m in response.json()["members"]) == sorted(members)
        statements.append(len([s for s in counter.statements if not s.startswith("PRAGMA")]))  # a new connection's set-up
    assert len(body) > 2 * 1024 * 1024
    assert statements[0] == statements[1] == statements[2], statements
    listed = await scim.get("/Groups", params={"filter": f'id eq "{group_id}"', "excludedAttributes": "members"})
    assert listed.json()["totalResults"] == 1
    # Only group documents get the larger limit: a user of the same size is still refused.
    padded = {"schemas": [CORE_USER], "userName": "big@example.com", "title": "x" * (2 * 1024 * 1024)}
    assert (await scim.post("/Users", padded)).status_code == 413


async def test_quirk_group_body_limit_is_its_own_setting(settings: Settings, engine: AsyncEngine, tenant: Tenant) -> None:
    """MAX_GROUP_BODY_BYTES bounds group POST and PUT (by Content-Length and by counting a chunked
    body); PATCH, users and GraphQL keep MAX_BODY_BYTES."""
    app = create_app(dataclasses.replace(settings, max_body_bytes=4096, max_group_body_bytes=64 * 1024), engine=engine)
    medium = _group_document("Medium", [f"no-such-user-{n}" for n in range(200)])  # about 12 KB
    large = _group_document("Large", [f"no-such-user-{n}" for n in range(2_000)])  # about 120 KB
    assert 4096 < len(medium) < 64 * 1024 < len(large)

    async def chunked(body: bytes):  # type: ignore[no-untyped-def]
        for at in range(0, len(body), 8192):
            yield body[at : at + 8192]

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        headers = {**tenant.headers, "content-type": "application/scim+json"}
        created = await client.post(f"{tenant.base}/groups/", content=medium, headers=headers)
        assert created.status_code == 201, created.text
        path = f"{tenant.base}/Groups/{created.json()['id']}"
        assert (await client.put(path, content=medium, headers=headers)).status_code == 200
        assert (await client.put(path, content=chunked(medium), headers=headers)).status_code == 200
        for method, target, body in [
            ("POST", f"{tenant.base}/Groups", large),
            ("PUT", path, large),
            ("PUT", path, chunked(large)),
            ("PATCH", path, medium),
            ("POST", f"{tenant.base}/Users", medium),
            ("POST", f"{tenant.base}/Groups/.search", medium),
            ("POST", "/graphql", medium),
        ]:
            response = await client.request(method, target, content=body, headers=headers)
            assert response.status_code == 413, (method, target, response.status_code)
