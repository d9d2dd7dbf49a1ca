"""A list of every user answers its total from `user_counts`, which triggers on `users` keep (migrations
0006 and 0007): it must agree with counting the users that are not tombstones, however they come and go."""

from __future__ import annotations

import asyncio

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.db.models import Account, User, UserCount
from tests.support.clients import GraphQLClient, ScimClient, Tenant, bulk_users, make_tenant
from tests.support.statements import StatementCounter


async def _counts(sessionmaker: async_sessionmaker[AsyncSession], account_id: int) -> tuple[int, int]:
    """(what user_counts says, what counting the users says) for the account."""
    async with sessionmaker() as session:
        kept = await session.scalar(select(func.coalesce(func.sum(UserCount.users), 0)).where(UserCount.account_id == account_id))
        counted = await session.scalar(
            select(func.count()).select_from(User).where(User.account_id == account_id, User.deprovisioned_at.is_(None))  # type: ignore[union-attr]
        )
    return int(kept or 0), int(counted or 0)


async def _total(scim: ScimClient, **params: str) -> int:
    response = await scim.get("/Users", params={"count": "1", "startIndex": "2", **params})
    assert response.status_code == 200, response.text
    return int(response.json()["totalResults"])


async def test_the_total_follows_creates_and_deletes_over_both_transports(
    scim: ScimClient, tenant: Tenant, client: object, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    created = [(await scim.create_user(f"u{i}@example.com"))["id"] for i in range(5)]
    gql = GraphQLClient(scim.client, tenant)
    await gql('mutation { createUser(input: {email: "admin-made@example.com", name: "A"}) { __typename } }')
    assert await _counts(sessionmaker, tenant.account_id) == (6, 6)
    assert await _total(scim) == 6

    assert (await scim.delete(f"/Users/{created[0]}")).status_code == 204
    assert (await scim.post("/Users", {"userName": "u1@example.com"})).status_code == 409  # refused: not counted
    assert await _counts(sessionmaker, tenant.account_id) == (5, 5)
    assert await _total(scim) == 5
    gql_total = await gql("{ users(first: 1, after: null) { totalCount } }")
    assert gql_total["users"]["totalCount"] == 5


async def test_a_filtered_list_still_counts_its_matches(scim: ScimClient) -> None:
    for i in range(4):
        await scim.create_user(f"f{i}@example.com", active=i % 2 == 0)
    assert await _total(scim) == 4
    assert await _total(scim, filter="active eq true") == 2


async def test_bulk_inserts_and_deletes_are_counted(tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    await bulk_users(sessionmaker, tenant, 250, "bulk")
    assert await _counts(sessionmaker, tenant.account_id) == (250, 250)
    async with sessionmaker() as session, session.begin():
        await session.execute(delete(User).where(User.account_id == tenant.account_id, User.user_name_ci.like("bulk1%")))
    assert await _counts(sessionmaker, tenant.account_id) == (139, 139)


async def test_parallel_creates_are_all_counted(scim: ScimClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    responses = await asyncio.gather(*(scim.post("/Users", {"userName": f"p{i}@example.com"}) for i in range(24)))
    assert [r.status_code for r in responses] == [201] * 24
    assert await _counts(sessionmaker, tenant.account_id) == (24, 24)


async def test_deleting_an_account_takes_its_counts_and_leaves_the_others(
    scim: ScimClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    doomed = await make_tenant(sessionmaker, "doomed")
    doomed_scim = ScimClient(scim.client, doomed)
    for i in range(3):
        await doomed_scim.create_user(f"d{i}@example.com")
        await scim.create_user(f"k{i}@example.com")
    async with sessionmaker() as session, session.begin():
        await session.execute(delete(Account).where(Account.id == doomed.account_id))
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(UserCount).where(UserCount.account_id == doomed.account_id)) == 0
    assert await _counts(sessionmaker, scim.tenant.account_id) == (3, 3)


async def test_a_list_of_every_user_does_not_count_the_users(scim: ScimClient, tenant: Tenant, engine: AsyncEngine) -> None:
    """On SQLite the statements can be watched (on PostgreSQL the request path's go to the driver
    directly): the total of an unfiltered page, over SCIM and GraphQL, is read from user_counts, not
    counted over users."""
    for i in range(3):
        await scim.create_user(f"c{i}@example.com")
    gql = GraphQLClient(scim.client, tenant)
    with StatementCounter(engine) as counter:
        assert await _total(scim) == 3
        assert (await gql("{ users(first: 1) { totalCount } }"))["users"]["totalCount"] == 3
    if engine.dialect.name == "sqlite":
        assert sum("user_counts" in s for s in counter.statements) == 2, counter.statements
        assert not any("count(*)" in s and "FROM users" in s for s in counter.statements), counter.statements
