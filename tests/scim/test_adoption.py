"""Adopting users the admin UI created before the identity provider was connected: the first SCIM
create (same userName, any case) or change of such a user makes them the identity provider's, with
their id kept; the ADOPT_EXISTING_USERS flag turns it off. Each case on both databases."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import AuditEvent
from tests.support.clients import CORE_USER, GraphQLClient, ScimClient, Tenant, set_flag

USER_FIELDS = "id provisionedBy groups(first: 10) { nodes { name } }"


@pytest.fixture
def gql(client: httpx.AsyncClient, tenant: Tenant) -> GraphQLClient:
    return GraphQLClient(client, tenant)


async def _admin_created(gql: GraphQLClient, email: str, group: str | None = None) -> str:
    user_id: str = (await gql('mutation($e: String!) { createUser(input: {email: $e, name: "Bob"}) { ... on User { id } } }', e=email))[
        "createUser"
    ]["id"]
    if group:
        await gql(
            "mutation($n: String!, $u: [ID!]) { createUserGroup(input: {name: $n, identifier: $n, userIds: $u}) { __typename } }",
            n=group,
            u=[user_id],
        )
    return user_id


async def _user(gql: GraphQLClient, user_id: str) -> dict[str, Any]:
    return (await gql(f'{{ user(id: "{user_id}") {{ {USER_FIELDS} }} }}'))["user"]  # type: ignore[no-any-return]


async def _adoptions(sessionmaker: async_sessionmaker[AsyncSession], user_id: str) -> list[dict[str, Any]]:
    async with sessionmaker() as session:
        rows = await session.scalars(select(AuditEvent).where(AuditEvent.action == "user.adopted", AuditEvent.resource_id == user_id))
        return [dict(e.detail or {}) for e in rows]


async def _rename(gql: GraphQLClient, user_id: str) -> str:
    result = await gql('mutation($id: ID!) { updateUser(input: {id: $id, name: "Robert"}) { __typename } }', id=user_id)
    return result["updateUser"]["__typename"]  # type: ignore[no-any-return]


async def test_quirk_okta_post_of_an_admin_created_user_adopts_them(
    scim: ScimClient, gql: GraphQLClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """Okta POSTs every assigned user; one the admin UI made last year answers 201 with the same id."""
    bob = await _admin_created(gql, "bob@contoso.com", group="Platform")
    await scim.create_group("Engineering", members=[{"value": bob}])
    body = {"schemas": [CORE_USER], "userName": "BOB@contoso.com", "displayName": "Bob IdP", "externalId": "00u-bob", "active": True}
    response = await scim.post("/Users", body)
    assert response.status_code == 201, response.text
    adopted = response.json()
    assert adopted["id"] == bob and response.headers["location"].endswith(f"/Users/{bob}")
    assert (adopted["userName"], adopted["displayName"], adopted["externalId"]) == ("BOB@contoso.com", "Bob IdP", "00u-bob")
    # SCIM sees only the identity provider's groups; the native one stays too (below).
    assert [g["display"] for g in adopted["groups"]] == ["Engineering"]
    # The admin UI sees the change at once, and the identity-provider rule now holds for Bob.
    seen = await _user(gql, bob)
    assert seen["provisionedBy"] == "SCIM" and [g["name"] for g in seen["groups"]["nodes"]] == ["Engineering", "Platform"]
    assert await _rename(gql, bob) == "IdentityProviderManagedError"
    assert await _adoptions(sessionmaker, bob) == [{"provisionedBy": {"before": "MANAGER", "after": "SCIM"}}]
    # A user already the identity provider's is never adopted again: a second create is a conflict.
    again = await scim.post("/Users", body)
    assert again.status_code == 409 and again.json()["scimType"] == "uniqueness"
    assert len(await _adoptions(sessionmaker, bob)) == 1


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
async def test_quirk_entra_filter_then_change_adopts(
    scim: ScimClient, gql: GraphQLClient, sessionmaker: async_sessionmaker[AsyncSession], method: str
) -> None:
    """Entra filters by userName, finds the admin UI's user and changes them: that change adopts them."""
    bob = await _admin_created(gql, "bob@contoso.com")
    [found] = await scim.find("Users", 'userName eq "bob@contoso.com"')
    assert found["id"] == bob
    if method == "PATCH":
        response = await scim.patch(f"/Users/{bob}", [{"op": "Replace", "path": "externalId", "value": "bob"}])
    else:
        response = await scim.put(f"/Users/{bob}", {"schemas": [CORE_USER], "userName": "bob@contoso.com", "externalId": "bob"})
    assert response.status_code == 200, response.text
    assert response.json()["externalId"] == "bob"
    assert (await _user(gql, bob))["provisionedBy"] == "SCIM"
    assert len(await _adoptions(sessionmaker, bob)) == 1
    # A later change of an adopted user is an ordinary update.
    assert (await scim.patch(f"/Users/{bob}", [{"op": "Replace", "path": "title", "value": "Eng"}])).status_code == 200
    assert len(await _adoptions(sessionmaker, bob)) == 1


async def test_quirk_a_no_op_change_still_adopts(
    scim: ScimClient, gql: GraphQLClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """Entra's periodic PATCH that changes nothing is still a successful write: the user is adopted and
    the version moves, so a cached copy sees the new provisionedBy."""
    bob = await _admin_created(gql, "bob@contoso.com")
    before = (await scim.get(f"/Users/{bob}")).json()["meta"]["version"]
    response = await scim.patch(f"/Users/{bob}", [{"op": "Replace", "path": "active", "value": True}])
    assert response.status_code == 200 and response.json()["meta"]["version"] != before
    assert (await _user(gql, bob))["provisionedBy"] == "SCIM"


async def test_adoption_off_keeps_the_409_and_the_admin_ui_owner(
    scim: ScimClient, gql: GraphQLClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await set_flag(sessionmaker, tenant, "ADOPT_EXISTING_USERS", False)
    bob = await _admin_created(gql, "bob@contoso.com")
    response = await scim.post("/Users", {"schemas": [CORE_USER], "userName": "bob@contoso.com"})
    assert response.status_code == 409 and response.json()["scimType"] == "uniqueness"
    assert (await scim.patch(f"/Users/{bob}", [{"op": "Replace", "path": "externalId", "value": "bob"}])).status_code == 200
    assert (await _user(gql, bob))["provisionedBy"] == "MANAGER"
    assert await _rename(gql, bob) == "User"
    assert await _adoptions(sessionmaker, bob) == []


async def test_graphql_create_never_adopts(gql: GraphQLClient, scim: ScimClient) -> None:
    """Adoption is the identity provider's: the admin UI creating an existing name is a conflict."""
    await scim.create_user("alice@contoso.com")
    result = await gql('mutation { createUser(input: {email: "ALICE@contoso.com", name: "A"}) { __typename } }')
    assert result["createUser"]["__typename"] != "User"
