"""Reversible deprovisioning: a SCIM DELETE keeps a tombstone for the account's retention, so that a
user the identity provider provisions again comes back with the same id and native-group
memberships. Each case on both databases."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import AuditEvent
from app.db.types import utcnow
from app.services import users
from app.services.caller import system_caller
from tests.support.clients import CORE_USER, GraphQLClient, ScimClient, Tenant, make_tenant

USER = "id userName deprovisionedAt groups(first: 10) { nodes { name } }"


@pytest.fixture
def gql(client: httpx.AsyncClient, tenant: Tenant) -> GraphQLClient:
    return GraphQLClient(client, tenant)


async def _user(gql: GraphQLClient, user_id: str) -> dict[str, Any] | None:
    return (await gql(f'{{ user(id: "{user_id}") {{ {USER} }} }}'))["user"]  # type: ignore[no-any-return]


async def _native_group(gql: GraphQLClient, name: str, member: str) -> str:
    created = await gql(
        "mutation($n: String!, $u: [ID!]) { createUserGroup(input: {name: $n, userIds: $u}) { ... on UserGroup { id } } }",
        n=name,
        u=[member],
    )
    return created["createUserGroup"]["id"]  # type: ignore[no-any-return]


async def _events(sessionmaker: async_sessionmaker[AsyncSession], action: str) -> list[AuditEvent]:
    async with sessionmaker() as session:
        return list(await session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


async def _total(scim: ScimClient) -> int:
    return int((await scim.get("/Users", params={"count": "0"})).json()["totalResults"])


async def test_quirk_entra_unassign_then_reassign_brings_back_the_same_user(
    scim: ScimClient, gql: GraphQLClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """Entra DELETEs a user when they are unassigned and POSTs them again when reassigned: within the
    retention they come back with the same id and their native-group memberships."""
    user = await scim.create_user("ann@contoso.com", externalId="ann", displayName="Ann")
    uid = str(user["id"])
    await _native_group(gql, "Platform", uid)
    await scim.create_group("Engineering", members=[{"value": uid}])
    assert await _total(scim) == 1

    assert (await scim.delete(f"/Users/{uid}")).status_code == 204
    # Gone from SCIM, lists and counts; the admin UI still sees the tombstone by id.
    assert (await scim.get(f"/Users/{uid}")).status_code == 404
    assert await scim.find("Users", 'userName eq "ann@contoso.com"') == []
    assert await scim.find("Users", 'externalId eq "ann"') == []
    assert await _total(scim) == 0
    for response in (
        await scim.patch(f"/Users/{uid}", [{"op": "replace", "path": "active", "value": False}]),
        await scim.put(f"/Users/{uid}", {"schemas": [CORE_USER], "userName": "ann@contoso.com"}),
        await scim.delete(f"/Users/{uid}"),
    ):
        assert response.status_code == 404, response.text
    tombstone = await _user(gql, uid)
    assert tombstone is not None and tombstone["deprovisionedAt"] is not None and tombstone["groups"]["nodes"] == []
    assert (await gql("{ users { totalCount } }"))["users"]["totalCount"] == 0
    assert "members" not in (await scim.find("Groups", 'displayName eq "Engineering"'))[0]
    [deleted] = await _events(sessionmaker, "user.delete")
    assert deleted.detail["deprovisioned"] is True and deleted.detail["retentionDays"] == 30

    again = await scim.post("/Users", {"schemas": [CORE_USER], "userName": "Ann@contoso.com", "externalId": "ann", "title": "Lead"})
    assert again.status_code == 201, again.text
    assert again.json()["id"] == uid and again.json()["title"] == "Lead" and "displayName" not in again.json()
    restored = await _user(gql, uid)
    assert restored is not None and restored["deprovisionedAt"] is None
    assert [g["name"] for g in restored["groups"]["nodes"]] == ["Platform"]  # the identity provider pushes its own groups again
    assert await _total(scim) == 1
    [event] = await _events(sessionmaker, "user.restored")
    assert event.resource_id == uid and len(event.detail["nativeGroups"]) == 1


async def test_quirk_okta_reprovision_with_a_new_user_name_matches_the_external_id(scim: ScimClient) -> None:
    """The user was renamed in the identity provider while deprovisioned: the externalId still finds them."""
    user = await scim.create_user("old@contoso.com", externalId="00u-1")
    assert (await scim.delete(f"/Users/{user['id']}")).status_code == 204
    again = await scim.post("/Users", {"schemas": [CORE_USER], "userName": "new@contoso.com", "externalId": "00u-1"})
    assert again.status_code == 201 and again.json()["id"] == user["id"] and again.json()["userName"] == "new@contoso.com"
    # A new user with a new externalId is simply created.
    other = await scim.post("/Users", {"schemas": [CORE_USER], "userName": "other@contoso.com", "externalId": "00u-2"})
    assert other.status_code == 201 and other.json()["id"] != user["id"]


async def test_retention_zero_deletes_at_once(scim: ScimClient, gql: GraphQLClient) -> None:
    settings = await gql(
        "mutation { updateAccountSettings(input: {deprovisionRetentionDays: 0}) { ... on AccountSettings { deprovisionRetentionDays } } }"
    )
    assert settings["updateAccountSettings"] == {"deprovisionRetentionDays": 0}
    assert (await gql("{ accountSettings { deprovisionRetentionDays } }"))["accountSettings"]["deprovisionRetentionDays"] == 0
    user = await scim.create_user("gone@contoso.com")
    assert (await scim.delete(f"/Users/{user['id']}")).status_code == 204
    assert await _user(gql, str(user["id"])) is None
    again = await scim.post("/Users", {"schemas": [CORE_USER], "userName": "gone@contoso.com"})
    assert again.status_code == 201 and again.json()["id"] != user["id"]


@pytest.mark.parametrize("days", [-1, 3651])
async def test_retention_out_of_range_is_a_validation_error(gql: GraphQLClient, days: int) -> None:
    result = await gql(
        "mutation($d: Int!) { updateAccountSettings(input: {deprovisionRetentionDays: $d}) { __typename ... on Error { message } } }",
        d=days,
    )
    assert result["updateAccountSettings"]["__typename"] == "ValidationError"
    assert (await gql("{ accountSettings { deprovisionRetentionDays } }"))["accountSettings"]["deprovisionRetentionDays"] == 30


async def test_purge_after_the_retention_and_purge_user_at_once(
    scim: ScimClient, gql: GraphQLClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    kept, purged = [str((await scim.create_user(f"{n}@contoso.com"))["id"]) for n in ("kept", "purged")]
    live = str((await scim.create_user("live@contoso.com"))["id"])
    for uid in (kept, purged):
        assert (await scim.delete(f"/Users/{uid}")).status_code == 204
    caller = system_caller(tenant.account_id, tenant.identifier)
    async with sessionmaker() as session, session.begin():
        assert await users.purge_expired(session, caller, utcnow()) == 0  # within the retention
    # The admin UI purges one now; only a tombstone can be purged.
    purge = "mutation($id: ID!) { purgeUser(input: {id: $id}) { __typename ... on Error { message } } }"
    assert (await gql(purge, id=purged))["purgeUser"]["__typename"] == "DeletedUser"
    assert (await gql(purge, id=live))["purgeUser"]["__typename"] == "ValidationError"
    assert (await gql(purge, id=purged))["purgeUser"]["__typename"] == "NotFoundError"
    assert await _user(gql, purged) is None
    async with sessionmaker() as session, session.begin():
        assert await users.purge_expired(session, caller, utcnow() + timedelta(days=31)) == 1
    assert await _user(gql, kept) is None and await _user(gql, live) is not None
    [event] = [e for e in await _events(sessionmaker, "user.purge") if e.resource_id is None]
    assert event.detail["users"]["ids"] == [kept]
    again = await scim.post("/Users", {"schemas": [CORE_USER], "userName": "kept@contoso.com"})
    assert again.status_code == 201 and again.json()["id"] != kept


async def test_purge_user_needs_the_admin_permission(
    client: httpx.AsyncClient, scim: ScimClient, sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    user = await scim.create_user("x@contoso.com")
    await scim.delete(f"/Users/{user['id']}")
    reader = await make_tenant(sessionmaker, tenant.identifier, ["users:read", "users:write"])
    result = await GraphQLClient(client, reader)(f'mutation {{ purgeUser(input: {{id: "{user["id"]}"}}) {{ __typename }} }}')
    assert result["purgeUser"]["__typename"] == "PermissionDeniedError"


async def test_a_deprovisioned_user_is_not_added_to_groups_and_keeps_the_name(scim: ScimClient, gql: GraphQLClient) -> None:
    user = await scim.create_user("held@contoso.com")
    await scim.delete(f"/Users/{user['id']}")
    group = await scim.create_group("G")
    response = await scim.patch(f"/Groups/{group['id']}", [{"op": "add", "path": "members", "value": [{"value": user["id"]}]}])
    assert response.status_code == 204
    assert "members" not in (await scim.get(f"/Groups/{group['id']}")).json()
    # The admin UI cannot take the name while the tombstone holds it, and is told how to free it.
    created = await gql('mutation { createUser(input: {email: "held@contoso.com", name: "H"}) { __typename ... on Error { message } } }')
    assert created["createUser"]["__typename"] == "ConflictError" and "purgeUser" in created["createUser"]["message"]
