"""SCIM sees and changes only the identity provider's own groups. Native groups belong to the
admin: over SCIM a native group's id is not found, lists and filters leave native groups out, and
a User's `groups` attribute lists only groups SCIM can open. A native group that took an
identity-provider group's name is kept beside it, and Entra's `displayName eq` lookup finds only
the identity provider's group. Member adds over SCIM still take any user of the account."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import GroupMembership, User, UserGroup
from tests.support.clients import CORE_GROUP, GraphQLClient, ScimClient, Tenant


@dataclass
class Setup:
    locked: str  # a SCIM user in the identity-provider group and in the native group
    only_native: str  # a SCIM user only in the native group
    idp_group: str
    native: str  # a native group named like the identity-provider group


@pytest.fixture
def gql(client: httpx.AsyncClient, tenant: Tenant) -> GraphQLClient:
    return GraphQLClient(client, tenant)


@pytest.fixture
async def setup(scim: ScimClient, gql: GraphQLClient) -> Setup:
    locked = str((await scim.create_user("locked@contoso.com"))["id"])
    only_native = str((await scim.create_user("native@contoso.com"))["id"])
    # Both join a native group; the identity provider puts one of them into its own group; then the
    # admin gives the native group the identity-provider group's name.
    native = await gql(
        'mutation($u: [ID!]) { createUserGroup(input: {name: "Platform", userIds: $u}) { ... on UserGroup { id } } }',
        u=[only_native, locked],
    )
    native_id = native["createUserGroup"]["id"]
    idp_group = str((await scim.create_group("Engineering", members=[{"value": locked}]))["id"])
    renamed = await gql('mutation($g: ID!) { updateUserGroup(input: {id: $g, name: "Engineering"}) { __typename } }', g=native_id)
    assert renamed["updateUserGroup"]["__typename"] == "UserGroup"
    return Setup(locked, only_native, idp_group, native_id)


async def _snapshot(sessionmaker: async_sessionmaker[AsyncSession]) -> tuple[Any, ...]:
    async with sessionmaker() as session:
        groups = (await session.execute(select(UserGroup.id, UserGroup.display_name, UserGroup.external_id, UserGroup.version))).all()
        users = (await session.execute(select(User.id, User.version))).all()
        members = (await session.execute(select(GroupMembership.group_id, GroupMembership.user_id))).all()
    return sorted(groups), sorted(users), sorted(members)


NATIVE_GROUP_REQUESTS: dict[str, tuple[str, Any]] = {
    "get": ("GET", None),
    "put": ("PUT", {"schemas": [CORE_GROUP], "displayName": "Engineering", "members": []}),
    "patch": ("PATCH", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "remove", "path": "members"}]}),
    "delete": ("DELETE", None),
}


@pytest.mark.parametrize("request_kind", NATIVE_GROUP_REQUESTS)
async def test_a_native_group_is_not_found_over_scim_and_nothing_changes(
    scim: ScimClient, setup: Setup, sessionmaker: async_sessionmaker[AsyncSession], request_kind: str
) -> None:
    method, body = NATIVE_GROUP_REQUESTS[request_kind]
    before = await _snapshot(sessionmaker)
    response = await scim.request(method, f"/Groups/{setup.native}", **({"json": body} if body is not None else {}))
    assert response.status_code == 404, response.text
    assert setup.native in response.json()["detail"]
    assert await _snapshot(sessionmaker) == before


async def test_display_name_lookup_finds_only_the_idp_group_and_changes_only_it(
    scim: ScimClient, gql: GraphQLClient, setup: Setup, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    found = await scim.find("Groups", 'displayName eq "Engineering"')
    assert [g["id"] for g in found] == [setup.idp_group]
    response = await scim.patch(f"/Groups/{found[0]['id']}", [{"op": "add", "path": "members", "value": [{"value": setup.only_native}]}])
    assert response.status_code == 204
    async with sessionmaker() as session:
        native_members = set(await session.scalars(select(GroupMembership.user_id).where(GroupMembership.group_id == setup.native)))
        idp_members = set(await session.scalars(select(GroupMembership.user_id).where(GroupMembership.group_id == setup.idp_group)))
    assert native_members == {setup.locked, setup.only_native}  # untouched
    assert idp_members == {setup.locked, setup.only_native}
    listed = await gql('{ userGroups(filter: {search: "Engineering"}) { nodes { id managedBy } } }')
    assert {n["id"]: n["managedBy"] for n in listed["userGroups"]["nodes"]} == {
        setup.idp_group: "IDENTITY_PROVIDER",
        setup.native: "MANAGER",
    }


async def test_group_lists_and_searches_leave_native_groups_out(scim: ScimClient, setup: Setup) -> None:
    listed = await scim.get("/Groups")
    assert (listed.json()["totalResults"], [g["id"] for g in listed.json()["Resources"]]) == (1, [setup.idp_group])
    searched = await scim.post("/Groups/.search", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]})
    assert [g["id"] for g in searched.json()["Resources"]] == [setup.idp_group]
    everything = await scim.post("/.search", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "count": 50})
    assert setup.native not in {r["id"] for r in everything.json()["Resources"]}
    assert everything.json()["totalResults"] == 3  # two users and one group


async def test_a_users_groups_attribute_and_filters_see_only_idp_groups(scim: ScimClient, setup: Setup) -> None:
    user = (await scim.get(f"/Users/{setup.locked}")).json()
    assert [g["value"] for g in user["groups"]] == [setup.idp_group]
    assert "groups" not in (await scim.get(f"/Users/{setup.only_native}")).json()
    assert await scim.find("Users", f'groups.value eq "{setup.native}"') == []
    assert [u["id"] for u in await scim.find("Users", "groups pr")] == [setup.locked]
    assert [u["id"] for u in await scim.find("Users", 'groups[display eq "Engineering"]')] == [setup.locked]


async def test_scim_adds_users_to_idp_groups_wherever_they_were_created(scim: ScimClient, gql: GraphQLClient, setup: Setup) -> None:
    made_here = (await gql('mutation { createUser(input: {email: "admin-made@x.com", name: "A"}) { ... on User { id } } }'))["createUser"][
        "id"
    ]
    response = await scim.patch(f"/Groups/{setup.idp_group}", [{"op": "add", "path": "members", "value": [{"value": made_here}]}])
    assert response.status_code == 204
    members = (await scim.get(f"/Groups/{setup.idp_group}")).json()["members"]
    assert made_here in {m["value"] for m in members}
