"""The identity-provider rule on paths that change a locked user's group assignments as a side
effect. A user in an identity-provider group is locked: the admin API cannot remove them from a
native group, so it cannot do so by deleting that group (and then creating it again without them)
either. Every refusal changes nothing and is audited as DENIED."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import AuditEvent, GroupMembership, User, UserGroup
from app.graphql.mutations import Mutation
from tests.support.clients import GraphQLClient, ScimClient

RESULT = "__typename ... on Error { message } ... on IdentityProviderManagedError { resourceType resourceId operation }"


@dataclass
class Setup:
    locked: str  # created in the admin UI, then put into an identity-provider group by the identity provider
    free: str  # created in the admin UI, in no identity-provider group
    idp_group: str
    native: str  # a native group holding both users


@pytest.fixture
async def setup(scim: ScimClient, gql: GraphQLClient) -> Setup:
    create_user = 'mutation($e: String!) { createUser(input: {email: $e, name: "N"}) { ... on User { id } } }'
    locked = (await gql(create_user, e="locked@contoso.com"))["createUser"]["id"]
    free = (await gql(create_user, e="free@contoso.com"))["createUser"]["id"]
    native = await gql(
        'mutation($u: [ID!]) { createUserGroup(input: {name: "Platform", identifier: "Platform", userIds: '
        "$u}) { ... on UserGroup { id } } }",
        u=[locked, free],
    )
    idp_group = await scim.create_group("Engineering", members=[{"value": locked}])
    return Setup(locked, free, str(idp_group["id"]), native["createUserGroup"]["id"])


async def _snapshot(sessionmaker: async_sessionmaker[AsyncSession]) -> tuple[Any, ...]:
    async with sessionmaker() as session:
        groups = (await session.execute(select(UserGroup.id, UserGroup.identifier, UserGroup.display_name, UserGroup.version))).all()
        users = (await session.execute(select(User.id, User.user_name, User.version))).all()
        members = (await session.execute(select(GroupMembership.group_id, GroupMembership.user_id))).all()
    return sorted(groups), sorted(users), sorted(members)


async def _events(sessionmaker: async_sessionmaker[AsyncSession], **where: str) -> list[AuditEvent]:
    async with sessionmaker() as session:
        query = select(AuditEvent).where(*(getattr(AuditEvent, k) == v for k, v in where.items())).order_by(AuditEvent.id)
        return list(await session.scalars(query))


async def test_deleting_a_native_group_that_holds_a_locked_user_is_refused_and_changes_nothing(
    gql: GraphQLClient, setup: Setup, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    before = await _snapshot(sessionmaker)
    result = (await gql("mutation($g: ID!) { deleteUserGroup(input: {id: $g}) { %s } }" % RESULT, g=setup.native))["deleteUserGroup"]
    assert result["__typename"] == "IdentityProviderManagedError"
    assert (result["resourceType"], result["resourceId"], result["operation"]) == ("User", setup.locked, "CHANGE_GROUPS")
    assert "Platform" in result["message"] and "identity provider" in result["message"]
    assert await _snapshot(sessionmaker) == before
    [denied] = await _events(sessionmaker, outcome="DENIED")
    assert (denied.channel, denied.action, denied.resource_id, denied.detail["operation"]) == (
        "GRAPHQL",
        "group.delete",
        setup.locked,
        "change_groups",
    )
    # So the group cannot be "recreated" without the locked user either: it is still there.
    again = await gql('mutation { createUserGroup(input: {name: "Platform", identifier: "Platform"}) { __typename } }')
    assert again["createUserGroup"]["__typename"] == "ConflictError"


async def test_deleting_the_locked_user_is_refused_and_keeps_their_native_membership(
    gql: GraphQLClient, setup: Setup, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    before = await _snapshot(sessionmaker)
    result = (await gql("mutation($u: ID!) { deleteUser(input: {id: $u}) { %s } }" % RESULT, u=setup.locked))["deleteUser"]
    assert (result["__typename"], result["resourceId"], result["operation"]) == ("IdentityProviderManagedError", setup.locked, "DELETE")
    assert await _snapshot(sessionmaker) == before
    assert len(await _events(sessionmaker, outcome="DENIED")) == 1


async def test_deleting_a_native_group_of_unlocked_users_records_the_members_it_removed(
    gql: GraphQLClient, scim: ScimClient, setup: Setup, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    # The identity provider unassigns the user: from then on the admin may manage their groups.
    response = await scim.patch(f"/Groups/{setup.idp_group}", [{"op": "remove", "path": f'members[value eq "{setup.locked}"]'}])
    assert response.status_code == 204
    result = await gql("mutation($g: ID!) { deleteUserGroup(input: {id: $g}) { __typename } }", g=setup.native)
    assert result["deleteUserGroup"]["__typename"] == "DeletedUserGroup"
    [event] = await _events(sessionmaker, action="group.delete")
    assert (event.outcome, event.resource_id) == ("APPLIED", setup.native)
    assert event.detail["removed"] == {"count": 2, "ids": sorted([setup.locked, setup.free])}
    _, users, members = await _snapshot(sessionmaker)
    assert len(users) == 2 and members == []


async def test_an_empty_native_group_is_deleted_without_a_member_list(
    gql: GraphQLClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    created = await gql('mutation { createUserGroup(input: {name: "Empty"}) { ... on UserGroup { id } } }')
    result = await gql("mutation($g: ID!) { deleteUserGroup(input: {id: $g}) { __typename } }", g=created["createUserGroup"]["id"])
    assert result["deleteUserGroup"]["__typename"] == "DeletedUserGroup"
    [event] = await _events(sessionmaker, action="group.delete")
    assert "removed" not in event.detail


def test_no_mutation_deletes_an_organization_or_a_project() -> None:
    # Groups belong to organizations and projects and are deleted with them by the database: a
    # mutation that deleted one would need the same check as deleteUserGroup.
    fields = {f.name for f in Mutation.__strawberry_definition__.fields}  # type: ignore[attr-defined]
    assert {name for name in fields if name.startswith("delete")} == {"delete_user_group", "delete_user"}
