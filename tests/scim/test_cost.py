"""Costs that must not grow with the data: member adds, and index-backed lookups."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from app.db.models import GroupMembership, User
from app.db.types import utcnow
from app.scim.query import compile_filter
from app.scim.schema import GROUP, USER
from tests.support.clients import ScimClient, Tenant, bulk_users
from tests.support.statements import StatementCounter


def _numbers(count: int) -> str:
    """A FROM item of the numbers 1 to `count`, as `n`, on both databases."""
    return f"(WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {count}) SELECT n FROM s) AS s"


async def _account_with_groups(connection: AsyncConnection, count: int) -> None:
    """Account 1 and its groups g1 to g`count`, written in SQL."""
    await connection.execute(text("INSERT INTO accounts (id, identifier, name, created_at) VALUES (1, 'a', 'A', CURRENT_TIMESTAMP)"))
    await connection.execute(
        text(
            "INSERT INTO user_groups (id, account_id, scope, identifier, display_name, display_name_ci, managed_by, created_at,"
            " updated_at, version, extensions) SELECT 'g' || n, 1, '', 'g' || n, 'G' || n, 'g' || n, 'IDENTITY_PROVIDER',"
            f" CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 1, '{{}}' FROM {_numbers(count)}"
        )
    )


def _reads_every_member(statement: str) -> bool:
    """Whether `statement` reads the ids of a group's members with no condition on which members (an
    IN list or a user id compared, as a check whether given users are members has)."""
    select_members = "SELECT group_memberships.user_id \nFROM group_memberships \nWHERE"
    if select_members not in statement:
        return False
    conditions = statement.split(select_members, 1)[1].split(")", 1)[0]
    return " IN " not in conditions and "group_memberships.user_id =" not in conditions


async def test_adding_50_members_costs_the_same_for_small_and_large_groups(
    scim: ScimClient, tenant: Tenant, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    counts = []
    for size in (10, 2000):
        members = await bulk_users(sessionmaker, tenant, size, f"m{size}-")
        newcomers = await bulk_users(sessionmaker, tenant, 50, f"n{size}-")
        group = await scim.create_group(f"G{size}")
        async with sessionmaker() as session, session.begin():
            await session.execute(
                GroupMembership.__table__.insert(),  # type: ignore[attr-defined]
                [
                    {"account_id": tenant.account_id, "group_id": group["id"], "user_id": m, "added_via": "SCIM", "created_at": utcnow()}
                    for m in members
                ],
            )
        with StatementCounter(engine) as counter:
            response = await scim.patch(
                f"/Groups/{group['id']}", [{"op": "Add", "path": "members", "value": [{"value": n} for n in newcomers]}]
            )
        assert response.status_code == 204
        assert not any(_reads_every_member(s) for s in counter.statements), counter.statements
        counts.append(len(counter.statements))
    assert counts[0] == counts[1]


@pytest.mark.parametrize(
    ("resource", "filter_text", "column"),
    [
        (USER, 'userName eq "user7@x"', "user_name_ci"),
        (USER, 'externalId eq "ext-7"', "external_id"),
        (GROUP, 'displayName eq "Group 7"', "display_name_ci"),
        (GROUP, 'externalId eq "ext-7"', "external_id"),
    ],
)
async def test_lookups_use_indexes(
    scim: ScimClient,
    tenant: Tenant,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    resource: Any,
    filter_text: str,
    column: str,
) -> None:
    from app.db.models import UserGroup

    ids = await bulk_users(sessionmaker, tenant, 300, "user")
    async with sessionmaker() as session, session.begin():
        for n, uid in enumerate(ids):
            await session.execute(User.__table__.update().where(User.id == uid).values(external_id=f"ext-{n}"))  # type: ignore[attr-defined]
    for n in range(30):
        await scim.create_group(f"Group {n}", externalId=f"ext-{n}")
    model: Any = User if resource is USER else UserGroup
    query = select(model.id).where(model.account_id == tenant.account_id, compile_filter(filter_text, resource))
    async with engine.connect() as connection:
        compiled = query.compile(engine.sync_engine, compile_kwargs={"literal_binds": True})
        if engine.dialect.name == "sqlite":
            await connection.execute(text("ANALYZE"))
            plan = " ".join(row[-1] for row in (await connection.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))).all())
            assert f"{column}=?" in plan, plan
        else:
            # Small tables make a sequential scan cheapest; the question is whether an index exists.
            await connection.execute(text("ANALYZE"))
            await connection.execute(text("SET enable_seqscan = off"))
            plan = " ".join(row[0] for row in (await connection.execute(text(f"EXPLAIN {compiled}"))).all())
            assert "Index Cond" in plan and column in plan.split("Index Cond", 1)[1].split("Filter", 1)[0], plan


async def test_excluded_members_are_not_loaded_at_all(scim: ScimClient, engine: AsyncEngine) -> None:
    user = await scim.create_user("a@x")
    group = await scim.create_group("G", members=[{"value": user["id"]}])
    for path, params in (
        (f"/Groups/{group['id']}", {"excludedAttributes": "members"}),
        ("/Groups", {"excludedAttributes": "members"}),
        ("/Groups", {"attributes": "displayName"}),
    ):
        with StatementCounter(engine) as counter:
            response = await scim.get(path, params=params)
        assert response.status_code == 200
        assert not any("group_memberships" in s for s in counter.statements), counter.statements
    with StatementCounter(engine) as counter:
        await scim.get(f"/Groups/{group['id']}")
    assert any("group_memberships" in s for s in counter.statements)  # the counter does see member loads


async def test_the_managed_users_of_a_deleted_user_are_found_by_index(engine: AsyncEngine) -> None:
    """Deleting a user clears `manager` on those they manage; that lookup must not read the account."""
    query = select(User.id).where(User.account_id == 1, User.manager_id == "m")
    async with engine.connect() as connection:
        await connection.execute(text("ANALYZE"))
        compiled = query.compile(engine.sync_engine, compile_kwargs={"literal_binds": True})
        if engine.dialect.name == "sqlite":
            plan = " ".join(row[-1] for row in (await connection.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))).all())
            assert "ix_users_account_id_manager_id" in plan, plan
        else:
            # An account of many users, each with another manager: the primary key (account_id, id)
            # would find the account's users, and then read each of them.
            await connection.execute(text("INSERT INTO accounts (id, identifier, name, created_at) VALUES (1, 'a', 'A', now())"))
            await connection.execute(
                text(
                    "INSERT INTO users (id, account_id, user_name, user_name_ci, multi_valued, manager_id, provisioned_by,"
                    " created_at, updated_at, version) SELECT 'u' || n, 1, 'u' || n, 'u' || n, '{}', 'm' || n, 'SCIM', now(), now(), 1"
                    " FROM generate_series(1, 5000) AS n"
                )
            )
            await connection.execute(text("ANALYZE users"))
            plan = " ".join(row[0] for row in (await connection.execute(text(f"EXPLAIN {compiled}"))).all())
            await connection.rollback()
            assert "ix_users_account_id_manager_id" in plan, plan


async def test_a_page_of_groups_is_read_in_order_off_an_index(engine: AsyncEngine) -> None:
    """Groups are listed oldest first: a page reads the first rows of an index in that order, where the
    database would otherwise sort every group of the account for each page."""
    from app.db.models import UserGroup
    from app.services.groups import LIST_ORDER

    query = select(UserGroup.id).where(UserGroup.account_id == 1).order_by(*LIST_ORDER).limit(50)
    async with engine.connect() as connection:
        await _account_with_groups(connection, 3000)
        await connection.execute(text("ANALYZE"))
        compiled = query.compile(engine.sync_engine, compile_kwargs={"literal_binds": True})
        if engine.dialect.name == "sqlite":
            plan = " ".join(row[-1] for row in (await connection.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))).all())
            assert "ix_user_groups_account_id_created_at_id" in plan and "ORDER BY" not in plan, plan
        else:
            plan = " ".join(row[0] for row in (await connection.execute(text(f"EXPLAIN {compiled}"))).all())
            assert "ix_user_groups_account_id_created_at_id" in plan and "Sort" not in plan, plan
        await connection.rollback()


@pytest.mark.parametrize("keeping", [False, True], ids=["the ids go", "all but the ids go"])
async def test_the_memberships_that_go_are_each_found_by_key_whatever_the_statistics(engine: AsyncEngine, keeping: bool) -> None:
    """Okta's PUT of a whole member list right after a first bulk sync, when the tables have no current
    statistics, removed 500 of 25,000 members in 15 s on PostgreSQL: the planner expected one member
    and compared every member with every id that went. Each membership that goes is now found by key,
    and deleted by its row's address."""
    from app.services.common import id_values
    from app.services.groups import _delete_members

    statement = _delete_members(engine.dialect.name, keeping=keeping)
    async with engine.connect() as connection:
        await _account_with_groups(connection, 1)
        series = _numbers(20_000)
        await connection.execute(
            text(
                "INSERT INTO users (id, account_id, user_name, user_name_ci, multi_valued, provisioned_by, created_at, updated_at,"
                " version, extensions) SELECT 'u' || n, 1, 'u' || n, 'u' || n, '{}', 'SCIM', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 1,"
                f" '{{}}' FROM {series}"
            )
        )
        await connection.execute(
            text(
                "INSERT INTO group_memberships (account_id, group_id, user_id, added_via, created_at)"
                f" SELECT 1, 'g1', 'u' || n, 'SCIM', CURRENT_TIMESTAMP FROM {series}"
            )
        )
        compiled = statement.compile(engine.sync_engine)
        values = {"account_id": 1, "group_id": "g1", "ids": id_values(engine.dialect.name, [f"u{n}" for n in range(1, 101)])}
        arguments = tuple(values[n] if n in values else compiled.binds[n].value for n in compiled.positiontup or ())
        if engine.dialect.name == "sqlite":
            explained = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled.string}", arguments)
            plan = " ".join(row[-1] for row in explained.all())
            # Each membership found by key, the ids read into an index of their own (a list subquery).
            assert "SEARCH group_memberships" in plan and "LIST SUBQUERY" in plan, plan
        else:
            plan = " ".join(row[0] for row in (await connection.exec_driver_sql(f"EXPLAIN {compiled.string}", arguments)).all())
            # Each membership found by key (never a join comparing every member with every id), and
            # deleted by address.
            assert "Tid Scan" in plan and "Join Filter" not in plan, plan
        await connection.rollback()
