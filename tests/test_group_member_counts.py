"""A group's memberCount is read from `group_member_counts`, which triggers on `group_memberships`
keep (migration 0014): it must agree with counting the group's memberships, however members come and
go — SCIM PATCH and PUT, GraphQL, users and groups deleted, many requests at once, bulk inserts."""

from __future__ import annotations

import asyncio

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.db.models import Account, GroupMemberCount, GroupMembership, UserGroup
from app.db.types import utcnow
from tests.support.clients import GraphQLClient, ScimClient, Tenant, bulk_users, make_tenant
from tests.support.statements import StatementCounter

MEMBER_COUNT = "query($g: ID!) { userGroup(id: $g) { ... on UserGroup { memberCount } } }"


async def _kept_and_counted(sessionmaker: async_sessionmaker[AsyncSession], account_id: int) -> tuple[dict[str, int], dict[str, int]]:
    """({group: what group_member_counts says}, {group: how many memberships it has}) for the
    account, groups with no members left out of both."""
    async with sessionmaker() as session:
        kept = await session.execute(
            select(GroupMemberCount.group_id, func.sum(GroupMemberCount.members))
            .where(GroupMemberCount.account_id == account_id)
            .group_by(GroupMemberCount.group_id)
        )
        counted = await session.execute(
            select(GroupMembership.group_id, func.count())
            .where(GroupMembership.account_id == account_id)
            .group_by(GroupMembership.group_id)
        )
        return {g: int(n) for g, n in kept.all() if n}, {g: int(n) for g, n in counted.all()}


async def _assert_agree(sessionmaker: async_sessionmaker[AsyncSession], account_id: int, expected: dict[str, int]) -> None:
    kept, counted = await _kept_and_counted(sessionmaker, account_id)
    assert counted == expected
    assert kept == counted


def _members(*user_ids: object) -> list[dict[str, object]]:
    return [{"value": user_id} for user_id in user_ids]


async def test_scim_patch_and_put_keep_the_count(scim: ScimClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    users = [(await scim.create_user(f"m{i}@example.com"))["id"] for i in range(6)]
    group = str((await scim.create_group("Engineering", members=_members(*users[:2])))["id"])
    await _assert_agree(sessionmaker, tenant.account_id, {group: 2})

    added = await scim.patch(f"/Groups/{group}", [{"op": "add", "path": "members", "value": _members(*users[1:5])}])
    assert added.status_code in (200, 204), added.text  # users[1] again: already a member, not counted twice
    await _assert_agree(sessionmaker, tenant.account_id, {group: 5})

    removed = await scim.patch(f"/Groups/{group}", [{"op": "remove", "path": f'members[value eq "{users[0]}"]'}])
    assert removed.status_code in (200, 204), removed.text
    await _assert_agree(sessionmaker, tenant.account_id, {group: 4})

    replaced = await scim.put(f"/Groups/{group}", {"displayName": "Engineering", "members": _members(users[4], users[5])})
    assert replaced.status_code == 200, replaced.text
    await _assert_agree(sessionmaker, tenant.account_id, {group: 2})
    gql = GraphQLClient(scim.client, tenant)
    assert (await gql(MEMBER_COUNT, g=group))["userGroup"]["memberCount"] == 2


async def test_graphql_member_changes_keep_the_count(
    scim: ScimClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    gql = GraphQLClient(scim.client, tenant)
    create_user = 'mutation($e: String!) { createUser(input: {email: $e, name: "N"}) { ... on User { id } } }'
    users = [(await gql(create_user, e=f"g{i}@example.com"))["createUser"]["id"] for i in range(3)]
    created = await gql(
        'mutation($u: [ID!]) { createUserGroup(input: {name: "Platform", userIds: $u}) { ... on UserGroup { id memberCount } } }',
        u=users[:1],
    )
    group = created["createUserGroup"]["id"]
    assert created["createUserGroup"]["memberCount"] == 1
    change = "mutation($g: ID!, $u: [ID!]!) { r: %s(input: {userGroupId: $g, userIds: $u}) { ... on UserGroup { memberCount } } }"

    assert (await gql(change % "addUsersToUserGroup", g=group, u=users))["r"]["memberCount"] == 3
    await _assert_agree(sessionmaker, tenant.account_id, {group: 3})
    assert (await gql(change % "removeUsersFromUserGroup", g=group, u=users[1:]))["r"]["memberCount"] == 1
    await _assert_agree(sessionmaker, tenant.account_id, {group: 1})


async def test_deleted_users_and_groups_leave_no_count_behind(
    scim: ScimClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    users = [(await scim.create_user(f"d{i}@example.com"))["id"] for i in range(3)]
    doomed = str((await scim.create_group("Doomed", members=_members(*users)))["id"])
    kept = str((await scim.create_group("Kept", members=_members(*users)))["id"])

    assert (await scim.delete(f"/Users/{users[0]}")).status_code == 204
    kept_counts, counted = await _kept_and_counted(sessionmaker, tenant.account_id)
    assert kept_counts == counted  # whether a deleted user keeps its memberships or not, the count follows them

    assert (await scim.delete(f"/Groups/{doomed}")).status_code == 204
    async with sessionmaker() as session:
        left = await session.scalar(select(func.count()).select_from(GroupMemberCount).where(GroupMemberCount.group_id == doomed))
    assert left == 0
    kept_counts, counted = await _kept_and_counted(sessionmaker, tenant.account_id)
    assert kept_counts == counted and set(counted) == {kept}


async def test_deleting_an_account_takes_its_counts_and_leaves_the_others(
    scim: ScimClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    doomed = await make_tenant(sessionmaker, "doomed")
    doomed_scim = ScimClient(scim.client, doomed)
    for client in (scim, doomed_scim):
        users = [(await client.create_user(f"a{i}@example.com"))["id"] for i in range(2)]
        await client.create_group("Group", members=_members(*users))
    async with sessionmaker() as session, session.begin():
        await session.execute(delete(Account).where(Account.id == doomed.account_id))
    async with sessionmaker() as session:
        assert (
            await session.scalar(select(func.count()).select_from(GroupMemberCount).where(GroupMemberCount.account_id == doomed.account_id))
            == 0
        )
    kept, counted = await _kept_and_counted(sessionmaker, tenant.account_id)
    assert kept == counted and list(counted.values()) == [2]


async def test_parallel_additions_to_one_group_are_all_counted(
    scim: ScimClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """Entra's initial sync sends several PATCHes to one group at once; on PostgreSQL they land on
    several connections, so several slots of the group."""
    user_ids = await bulk_users(sessionmaker, tenant, 96, "par")
    group = str((await scim.create_group("Everyone"))["id"])
    batches = [user_ids[i : i + 8] for i in range(0, 96, 8)]
    responses = await asyncio.gather(
        *(scim.patch(f"/Groups/{group}", [{"op": "add", "path": "members", "value": _members(*batch)}]) for batch in batches)
    )
    assert all(r.status_code in (200, 204) for r in responses), [r.text for r in responses]
    await _assert_agree(sessionmaker, tenant.account_id, {group: 96})
    gql = GraphQLClient(scim.client, tenant)
    assert (await gql(MEMBER_COUNT, g=group))["userGroup"]["memberCount"] == 96


async def test_bulk_inserts_and_deletes_of_memberships_are_counted(
    scim: ScimClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user_ids = await bulk_users(sessionmaker, tenant, 120, "bulk")
    groups = [str((await scim.create_group(f"G{i}"))["id"]) for i in range(2)]
    async with sessionmaker() as session, session.begin():
        await session.execute(
            insert(GroupMembership),
            [
                {
                    "account_id": tenant.account_id,
                    "group_id": groups[i % 2],
                    "user_id": user_id,
                    "added_via": "SCIM",
                    "created_at": utcnow(),
                }
                for i, user_id in enumerate(user_ids)
            ],
        )
    await _assert_agree(sessionmaker, tenant.account_id, {groups[0]: 60, groups[1]: 60})
    async with sessionmaker() as session, session.begin():
        await session.execute(
            delete(GroupMembership).where(GroupMembership.account_id == tenant.account_id, GroupMembership.user_id.in_(user_ids[:50]))  # type: ignore[attr-defined]
        )
    await _assert_agree(sessionmaker, tenant.account_id, {groups[0]: 35, groups[1]: 35})


async def test_a_page_of_groups_does_not_count_their_memberships(scim: ScimClient, tenant: Tenant, engine: AsyncEngine) -> None:
    """On SQLite the statements can be watched (on PostgreSQL the request path's go to the driver
    directly): memberCount is read from group_member_counts, not counted over group_memberships."""
    users = [(await scim.create_user(f"c{i}@example.com"))["id"] for i in range(3)]
    await scim.create_group("Three", members=_members(*users))
    await scim.create_group("Empty")
    gql = GraphQLClient(scim.client, tenant)
    with StatementCounter(engine) as counter:
        page = await gql("{ userGroups { nodes { name memberCount } } }")
    assert sorted((n["name"], n["memberCount"]) for n in page["userGroups"]["nodes"]) == [("Empty", 0), ("Three", 3)]
    if engine.dialect.name == "sqlite":
        assert sum("group_member_counts" in s for s in counter.statements) == 1, counter.statements
        assert not any("count(*)" in s and "FROM group_memberships" in s for s in counter.statements), counter.statements


async def test_a_group_is_counted_in_its_own_account_only(
    scim: ScimClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    other = await make_tenant(sessionmaker, "other")
    other_scim = ScimClient(scim.client, other)
    ours = [(await scim.create_user(f"o{i}@example.com"))["id"] for i in range(2)]
    theirs = [(await other_scim.create_user(f"t{i}@example.com"))["id"] for i in range(4)]
    our_group = str((await scim.create_group("Same name", members=_members(*ours)))["id"])
    their_group = str((await other_scim.create_group("Same name", members=_members(*theirs)))["id"])
    assert (await GraphQLClient(scim.client, tenant)(MEMBER_COUNT, g=our_group))["userGroup"]["memberCount"] == 2
    assert (await GraphQLClient(scim.client, other)(MEMBER_COUNT, g=their_group))["userGroup"]["memberCount"] == 4
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(UserGroup)) == 2
