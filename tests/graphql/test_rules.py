"""The Limitations of Harness's SCIM documentation, enforced on the admin API: every mutation against a native and an
identity-provider group, and every user mutation against the three kinds of user. Each refusal
returns IdentityProviderManagedError, changes nothing, and is audited as DENIED."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import AuditEvent, GroupMembership, User, UserGroup
from app.services import users
from tests.support.clients import GraphQLClient, ScimClient, Tenant

RESULT = "__typename ... on Error { message } ... on IdentityProviderManagedError { resourceType resourceId operation }"


@dataclass
class World:
    native: str  # a native group, with the manager user as member
    idp: str  # an IdP group, with idp_member as member
    manager: str  # a user created in the admin UI
    scim_direct: str  # SCIM user in no IdP group ("assigned directly")
    idp_member: str  # SCIM user in an IdP group
    spare: str  # a manager user in no group


@pytest.fixture
async def world(scim: ScimClient, gql: GraphQLClient) -> World:
    scim_direct = str((await scim.create_user("direct@contoso.com", displayName="Direct"))["id"])
    idp_member = str((await scim.create_user("member@contoso.com", displayName="Member"))["id"])
    idp = str((await scim.create_group("Engineering", members=[{"value": idp_member}]))["id"])
    made = await gql('mutation { createUser(input: {email: "manager@x.com", name: "Made Here"}) { ... on User { id } } }')
    spare = await gql('mutation { createUser(input: {email: "spare@x.com", name: "Spare"}) { ... on User { id } } }')
    manager = made["createUser"]["id"]
    native = await gql(
        'mutation($u: [ID!]) { createUserGroup(input: {name: "Engineering", userIds: $u}) { ... on UserGroup { id } } }', u=[manager]
    )
    return World(native["createUserGroup"]["id"], idp, manager, scim_direct, idp_member, spare["createUser"]["id"])


async def _snapshot(sessionmaker: async_sessionmaker[AsyncSession]) -> tuple[Any, ...]:
    async with sessionmaker() as session:
        groups = (await session.execute(select(UserGroup.id, UserGroup.display_name, UserGroup.description, UserGroup.version))).all()
        users = (await session.execute(select(User.id, User.user_name, User.display_name, User.email, User.version))).all()
        members = (await session.execute(select(GroupMembership.group_id, GroupMembership.user_id))).all()
    return sorted(groups), sorted(users), sorted(members)


async def _denied_events(sessionmaker: async_sessionmaker[AsyncSession]) -> list[AuditEvent]:
    async with sessionmaker() as session:
        return list(await session.scalars(select(AuditEvent).where(AuditEvent.outcome == "DENIED")))


GROUP_MUTATIONS = {
    "rename": ('mutation($g: ID!) { r: updateUserGroup(input: {id: $g, name: "Renamed"}) { %s } }', "RENAME"),
    "delete": ("mutation($g: ID!) { r: deleteUserGroup(input: {id: $g}) { %s } }", "DELETE"),
    "add": ("mutation($g: ID!, $u: ID!) { r: addUsersToUserGroup(input: {userGroupId: $g, userIds: [$u]}) { %s } }", "CHANGE_MEMBERS"),
    "remove": (
        "mutation($g: ID!, $m: ID!) { r: removeUsersFromUserGroup(input: {userGroupId: $g, userIds: [$m]}) { %s } }",
        "CHANGE_MEMBERS",
    ),
}


@pytest.mark.parametrize("mutation", GROUP_MUTATIONS)
async def test_idp_group_refuses_rename_delete_and_member_changes(
    gql: GraphQLClient, world: World, sessionmaker: async_sessionmaker[AsyncSession], mutation: str
) -> None:
    query, operation = GROUP_MUTATIONS[mutation]
    before = await _snapshot(sessionmaker)
    result = (await gql(query % RESULT, g=world.idp, u=world.spare, m=world.idp_member))["r"]
    assert result["__typename"] == "IdentityProviderManagedError"
    assert (result["resourceType"], result["resourceId"], result["operation"]) == ("UserGroup", world.idp, operation)
    assert "identity provider" in result["message"]
    assert await _snapshot(sessionmaker) == before
    [denied] = await _denied_events(sessionmaker)
    assert (denied.channel, denied.resource_id) == ("GRAPHQL", world.idp)


@pytest.mark.parametrize("mutation", GROUP_MUTATIONS)
async def test_native_group_allows_everything(gql: GraphQLClient, world: World, mutation: str) -> None:
    query, _ = GROUP_MUTATIONS[mutation]
    result = (await gql(query % "__typename", g=world.native, u=world.spare, m=world.manager))["r"]
    assert result["__typename"] in ("UserGroup", "DeletedUserGroup")


async def test_idp_group_description_may_change(gql: GraphQLClient, world: World) -> None:
    result = await gql(
        'mutation($g: ID!) { updateUserGroup(input: {id: $g, description: "Synced from Entra"}) { ... on '
        "UserGroup { description name } } }",
        g=world.idp,
    )
    assert result["updateUserGroup"] == {"description": "Synced from Entra", "name": "Engineering"}


async def test_a_description_left_out_stays_and_null_clears_it(gql: GraphQLClient, world: World) -> None:
    update = "mutation($g: ID!) { updateUserGroup(input: {id: $g, %s}) { ... on UserGroup { name description } } }"
    await gql(update % 'description: "Native group"', g=world.native)
    renamed = await gql(update % 'name: "Engineering (here)"', g=world.native)
    assert renamed["updateUserGroup"] == {"name": "Engineering (here)", "description": "Native group"}
    cleared = await gql(update % "description: null", g=world.native)
    assert cleared["updateUserGroup"] == {"name": "Engineering (here)", "description": None}
    # A name cannot be cleared: null is a ValidationError naming the field, and nothing changes.
    refused = await gql(
        update.replace("{ name description }", "{ name description } ... on ValidationError { field }") % "name: null", g=world.native
    )
    assert refused["updateUserGroup"] == {"field": "displayName"}
    unchanged = await gql("query($g: ID!) { userGroup(id: $g) { name } }", g=world.native)
    assert unchanged["userGroup"]["name"] == "Engineering (here)"


async def test_native_and_idp_groups_with_the_same_name_are_both_listed(gql: GraphQLClient, world: World) -> None:
    data = await gql('{ userGroups(filter: {search: "engineering"}) { nodes { id identifier managedBy } } }')
    nodes = {n["id"]: n for n in data["userGroups"]["nodes"]}
    assert nodes[world.idp]["managedBy"] == "IDENTITY_PROVIDER" and nodes[world.native]["managedBy"] == "MANAGER"
    assert nodes[world.idp]["identifier"] != nodes[world.native]["identifier"]
    renamed = await gql(
        'mutation($g: ID!) { updateUserGroup(input: {id: $g, name: "Engineering (native)"}) { __typename } }', g=world.native
    )
    assert renamed["updateUserGroup"]["__typename"] == "UserGroup"


USER_MUTATIONS = {
    "rename": ('mutation($u: ID!) { r: updateUser(input: {id: $u, name: "New Name"}) { %s } }', "UPDATE_PROFILE"),
    "email": ('mutation($u: ID!) { r: updateUser(input: {id: $u, email: "new@x.com"}) { %s } }', "UPDATE_PROFILE"),
    "delete": ("mutation($u: ID!) { r: deleteUser(input: {id: $u}) { %s } }", "DELETE"),
    "add-to-group": (
        "mutation($u: ID!, $g: ID!) { r: addUsersToUserGroup(input: {userGroupId: $g, userIds: [$u]}) { %s } }",
        "CHANGE_GROUPS",
    ),
}

# kind of user -> mutations that must be refused
REFUSED = {"manager": set(), "scim_direct": {"rename", "email", "delete"}, "idp_member": {"rename", "email", "delete", "add-to-group"}}


@pytest.mark.parametrize("kind", REFUSED)
@pytest.mark.parametrize("mutation", USER_MUTATIONS)
async def test_user_rule_matrix(
    gql: GraphQLClient, world: World, sessionmaker: async_sessionmaker[AsyncSession], kind: str, mutation: str
) -> None:
    query, operation = USER_MUTATIONS[mutation]
    user = getattr(world, kind)
    spare_group = (await gql('mutation { createUserGroup(input: {name: "Spare"}) { ... on UserGroup { id } } }'))["createUserGroup"]["id"]
    before = await _snapshot(sessionmaker)
    result = (await gql(query % RESULT, u=user, g=spare_group))["r"]
    if mutation in REFUSED[kind]:
        assert result["__typename"] == "IdentityProviderManagedError", result
        assert (result["resourceType"], result["resourceId"], result["operation"]) == ("User", user, operation)
        assert await _snapshot(sessionmaker) == before
        assert len(await _denied_events(sessionmaker)) == 1
    else:
        assert result["__typename"] in ("User", "DeletedUser", "UserGroup"), result
        assert await _denied_events(sessionmaker) == []


async def test_locked_user_cannot_be_removed_from_a_native_group(gql: GraphQLClient, scim: ScimClient, world: World) -> None:
    # The user joins a native group while assigned directly, then the identity provider puts them
    # into one of its groups: from then on the native membership is locked too.
    group = (await gql('mutation { createUserGroup(input: {name: "Native"}) { ... on UserGroup { id } } }'))["createUserGroup"]["id"]
    added = await gql(
        "mutation($g: ID!, $u: ID!) { addUsersToUserGroup(input: {userGroupId: $g, userIds: [$u]}) { __typename } }",
        g=group,
        u=world.scim_direct,
    )
    assert added["addUsersToUserGroup"]["__typename"] == "UserGroup"  # assigned directly: free to manage
    await scim.patch(f"/Groups/{world.idp}", [{"op": "add", "path": "members", "value": [{"value": world.scim_direct}]}])
    removed = await gql(
        "mutation($g: ID!, $u: ID!) { removeUsersFromUserGroup(input: {userGroupId: $g, userIds: [$u]}) { %s } }" % RESULT,
        g=group,
        u=world.scim_direct,
    )
    assert removed["removeUsersFromUserGroup"]["__typename"] == "IdentityProviderManagedError"


async def test_create_user_into_an_idp_group_is_refused_and_creates_nothing(
    gql: GraphQLClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    before = await _snapshot(sessionmaker)
    result = await gql(
        'mutation($g: ID!) { createUser(input: {email: "n@x.com", name: "N", userGroupIds: [$g]}) { %s } }' % RESULT, g=world.idp
    )
    assert result["createUser"]["__typename"] == "IdentityProviderManagedError"
    assert await _snapshot(sessionmaker) == before


async def test_managed_by_identity_provider_flag(gql: GraphQLClient, world: World) -> None:
    query = "query($id: ID!) { user(id: $id) { provisionedBy managedByIdentityProvider } }"
    assert (await gql(query, id=world.manager))["user"] == {"provisionedBy": "MANAGER", "managedByIdentityProvider": False}
    assert (await gql(query, id=world.scim_direct))["user"] == {"provisionedBy": "SCIM", "managedByIdentityProvider": True}
    assert (await gql(query, id=world.idp_member))["user"] == {"provisionedBy": "SCIM", "managedByIdentityProvider": True}


async def test_ownership_says_why_for_each_kind_of_user_and_the_flag_and_rules_follow_it(
    gql: GraphQLClient, scim: ScimClient, world: World, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    # A user made in the admin UI whom the identity provider then puts in one of its groups.
    added = await scim.patch(f"/Groups/{world.idp}", [{"op": "add", "path": "members", "value": [{"value": world.spare}]}])
    assert added.status_code == 204
    async with sessionmaker() as session:
        owned = await users.ownership(
            session, tenant.account_id, [world.manager, world.scim_direct, world.idp_member, world.spare, "no-such-user"]
        )
    assert owned == {
        world.manager: frozenset(),
        world.scim_direct: {users.Ownership.PROVISIONED},
        world.idp_member: {users.Ownership.PROVISIONED, users.Ownership.IN_IDP_GROUP},
        world.spare: {users.Ownership.IN_IDP_GROUP},
    }
    page = await gql("{ users(first: 10) { nodes { id managedByIdentityProvider } } }")
    flags = {node["id"]: node["managedByIdentityProvider"] for node in page["users"]["nodes"]}
    assert flags == {user_id: bool(reasons) for user_id, reasons in owned.items()}
    renamed = await gql('mutation($u: ID!) { updateUser(input: {id: $u, name: "N"}) { %s } }' % RESULT, u=world.spare)
    assert (renamed["updateUser"]["__typename"], renamed["updateUser"]["operation"]) == ("IdentityProviderManagedError", "UPDATE_PROFILE")


async def test_successful_mutations_are_audited_as_applied(
    gql: GraphQLClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await gql('mutation($u: ID!) { updateUser(input: {id: $u, name: "Renamed"}) { __typename } }', u=world.manager)
    async with sessionmaker() as session:
        event = await session.scalar(select(AuditEvent).where(AuditEvent.action == "user.update").order_by(AuditEvent.id.desc()))
    assert event is not None and (event.outcome, event.channel, event.resource_id) == ("APPLIED", "GRAPHQL", world.manager)
