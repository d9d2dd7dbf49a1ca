"""The read path: filters compiled once per shape, totals read off a short page, one statement for a
user and their groups, and what a read-only request runs."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.db.models import Channel, GroupMembership, User
from app.db.types import utcnow
from app.errors import InvalidFilter
from app.scim import query
from app.scim.query import bind_filter
from app.scim.schema import GROUP, USER
from app.services import common, groups, users
from app.services.caller import system_caller
from tests.support.clients import ScimClient, Tenant, bulk_users
from tests.support.statements import StatementCounter


def _queries(engine: AsyncEngine, counter: StatementCounter) -> list[str] | None:
    """The queries a request ran, SQLite's BEGIN aside; None on PostgreSQL, where the prepared read
    statements run on the driver, beneath the SQLAlchemy events that count them."""
    if engine.dialect.name != "sqlite":
        return None
    return [s for s in counter.statements if not s.startswith("BEGIN")]


def test_filters_of_one_shape_share_a_condition_and_bind_their_own_values() -> None:
    first = bind_filter('userName eq "Ann@X.example" and meta.created gt "2024-01-01T00:00:00Z"', USER)
    second = bind_filter('USERNAME eq "Bob@X.example" and meta.created gt "2025-06-01T12:00:00+02:00"', USER)
    assert first.shape != second.shape  # the attribute is spelled differently: another shape
    third = bind_filter('userName eq "Bob@X.example" and meta.created gt "2025-06-01T12:00:00+02:00"', USER)
    assert third.shape == first.shape and third.condition is first.condition
    assert [str(v) for v in third.params.values()] == ["bob@x.example", "2025-06-01 12:00:00+02:00"]  # prepared as compiled
    assert bind_filter('userName eq null and meta.created gt "2024-01-01"', USER).shape != first.shape  # null compiles apart
    assert bind_filter(None, GROUP).params == {}


@pytest.mark.parametrize(
    ("valid", "invalid"),
    [
        ('meta.created gt "2024-01-01T00:00:00Z"', 'meta.created gt "yesterday"'),
        ("active eq true", 'active eq "maybe"'),
        ('title eq "x"', "title eq true"),
        ('emails[type eq "work"]', "emails[type eq false]"),
    ],
)
def test_every_filter_of_a_known_shape_has_its_values_checked(valid: str, invalid: str) -> None:
    bind_filter(valid, USER)
    with pytest.raises(InvalidFilter):
        bind_filter(invalid, USER)


async def test_lookups_of_one_shape_find_each_their_own_user(scim: ScimClient) -> None:
    names = [f"person{i}@example.com" for i in range(4)]
    for name in names:
        await scim.create_user(name, externalId=name.split("@")[0])
    for name in reversed(names):
        assert [u["userName"] for u in await scim.find("Users", f'userName eq "{name.upper()}"')] == [name]
        assert [u["userName"] for u in await scim.find("Users", f'externalId eq "{name.split("@")[0]}"')] == [name]


async def test_a_user_is_read_with_their_groups_in_one_statement(
    scim: ScimClient, engine: AsyncEngine, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user = await scim.create_user("ann@example.com")
    lonely = await scim.create_user("bob@example.com")
    async with sessionmaker() as session, session.begin():  # a native group: not part of SCIM's view
        caller = system_caller(tenant.account_id, tenant.identifier, Channel.GRAPHQL)
        await groups.create_group(session, caller, groups.GroupValues(display_name="Native"), member_ids=[str(user["id"])])
    for name in ("Zeta", "alpha"):
        await scim.create_group(name, members=[{"value": user["id"]}])
    with StatementCounter(engine) as counter:
        found = (await scim.get(f"/Users/{user['id']}")).json()
        alone = (await scim.get(f"/Users/{lonely['id']}")).json()
        narrow = (await scim.get(f"/Users/{user['id']}", params={"attributes": "userName"})).json()
    assert [g["display"] for g in found["groups"]] == ["alpha", "Zeta"]
    assert "groups" not in alone and "groups" not in narrow
    assert narrow == {"schemas": found["schemas"], "id": user["id"], "userName": "ann@example.com"}
    queries = _queries(engine, counter)
    assert queries is None or len(queries) == 3, queries


async def _total(scim: ScimClient, **params: str) -> tuple[int, int]:
    page = (await scim.get("/Users", params=params)).json()
    return page["totalResults"], page["itemsPerPage"]


async def test_totals_come_from_a_page_that_is_not_full_and_are_counted_otherwise(scim: ScimClient, engine: AsyncEngine) -> None:
    for i in range(3):
        await scim.create_user(f"u{i}@x")
    cases: list[tuple[dict[str, Any], tuple[int, int], int]] = [
        ({"filter": 'userName eq "u1@x"'}, (1, 1), 1),  # Entra's lookup: the page is the whole result
        ({"filter": 'userName eq "nobody@x"'}, (0, 0), 1),
        ({"startIndex": "3", "count": "2"}, (3, 1), 1),  # a short page after two rows
        ({"count": "2"}, (3, 2), 1),  # a full page of every user: the account's kept count, read with the page
        ({"filter": 'userName sw "u"', "count": "2"}, (3, 2), 2),  # a full page of a filter: counted
        ({"startIndex": "5"}, (3, 0), 2),  # past the end: counted
        ({"count": "0"}, (3, 0), 1),  # only the total
    ]
    for params, expected, statements in cases:
        with StatementCounter(engine) as counter:
            assert await _total(scim, **params) == expected, params
        queries = _queries(engine, counter)
        assert queries is None or len(queries) == statements, (params, queries)


async def test_a_page_of_users_with_groups_keeps_its_order_and_size(scim: ScimClient) -> None:
    ids = [str((await scim.create_user(f"m{i}@x"))["id"]) for i in range(5)]
    await scim.create_group("One", members=[{"value": i} for i in ids])
    await scim.create_group("Two", members=[{"value": i} for i in ids[1:3]])
    page = (await scim.get("/Users", params={"startIndex": "2", "count": "3", "sortBy": "userName", "sortOrder": "descending"})).json()
    assert [u["userName"] for u in page["Resources"]] == ["m3@x", "m2@x", "m1@x"]
    assert [[g["display"] for g in u["groups"]] for u in page["Resources"]] == [["One"], ["One", "Two"], ["One", "Two"]]
    assert (page["totalResults"], page["itemsPerPage"]) == (5, 3)


async def test_the_first_page_of_a_list_is_planned_once_and_later_pages_still_page(
    engine: AsyncEngine, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """A page's size is written into its SQL and the first page has no OFFSET: PostgreSQL then plans
    the statement once for every run. With LIMIT and OFFSET as parameters, the plan for any value
    assumed a tenth of the account's users and so looked dearer than planning each run again."""
    ids = await bulk_users(sessionmaker, tenant, 2000, "p")  # created together: listed by id
    in_order = [f"p{ids.index(user_id)}@x" for user_id in sorted(ids)]
    if engine.dialect.name == "postgresql":
        async with engine.connect() as connection:
            await connection.exec_driver_sql("ANALYZE users")
    caller = system_caller(tenant.account_id, tenant.identifier, Channel.SCIM)
    first = users.admin_filter().page(users.LIST_ORDER, 2)
    async with sessionmaker() as session:
        connection = await session.connection()
        for query, names in ((first, in_order[:2]), (replace(first, offset=1998), in_order[-2:])):
            for _ in range(7):
                total, page = await groups.list_users_with_groups(connection, caller, query)
                assert (total, [user.user_name for user, _ in page]) == (2000, names)
        if engine.dialect.name == "postgresql":
            plans = await connection.exec_driver_sql(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                "WHERE statement LIKE '%their_groups%LIMIT 2%' AND statement NOT LIKE '%OFFSET%' AND statement NOT LIKE '%pg_prepared%'"
            )
            assert plans.all() == [(2, 5)]  # five runs to compare, then the plan kept


async def test_a_page_works_out_the_groups_of_its_own_users_only(
    scim: ScimClient, engine: AsyncEngine, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """A page of users reads each shown user's groups once: not for the users an OFFSET skips, nor for
    every match before a sort. PostgreSQL counts the scans of the memberships a transaction makes (one
    per user whose groups are read); SQLite keeps no such count."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite does not count a transaction's table scans")
    ids = await bulk_users(sessionmaker, tenant, 300, "s")
    group = await scim.create_group("Everyone")
    async with sessionmaker() as session, session.begin():
        await session.execute(
            GroupMembership.__table__.insert(),  # type: ignore[attr-defined]
            [
                {"account_id": tenant.account_id, "group_id": group["id"], "user_id": i, "added_via": "SCIM", "created_at": utcnow()}
                for i in ids
            ],
        )
    async with engine.connect() as connection:
        await connection.exec_driver_sql("ANALYZE")
    caller = system_caller(tenant.account_id, tenant.identifier, Channel.SCIM)
    by_name = [User.__table__.c.user_name.desc(), *users.LIST_ORDER]
    every_user = bind_filter(None, USER).condition
    async with sessionmaker() as session:
        connection = await session.connection()

        async def scans() -> int:
            found = await connection.exec_driver_sql(
                "SELECT seq_scan + idx_scan FROM pg_stat_xact_user_tables WHERE relname = 'group_memberships'"
            )
            return int(found.scalar_one())

        in_order = {}
        for order in (users.LIST_ORDER, by_name):
            _, whole = await groups.list_users_with_groups(connection, caller, common.PageQuery(every_user, order, 0, 300))
            in_order[id(order)] = [user.user_name for user, _ in whole]
        for name, order, offset in (
            ("first", users.LIST_ORDER, 0),
            ("sorted", by_name, 0),
            ("later", users.LIST_ORDER, 250),
            ("later sorted", by_name, 250),
        ):
            before = await scans()
            query = common.PageQuery(every_user, order, offset, 3, key=("test", name))
            total, page = await groups.list_users_with_groups(connection, caller, query)
            assert await scans() - before == 3, name
            assert total == 300, name
            assert [user.user_name for user, _ in page] == in_order[id(order)][offset : offset + 3], name
            assert [names for _, names in page] == [[(group["id"], "Everyone")]] * 3, name


async def test_a_group_is_read_without_its_members_in_one_statement(scim: ScimClient, engine: AsyncEngine) -> None:
    member = await scim.create_user("a@x")
    group = await scim.create_group("G", members=[{"value": member["id"]}])
    with StatementCounter(engine) as counter:
        response = await scim.get(f"/Groups/{group['id']}", params={"excludedAttributes": "members"})
    assert response.status_code == 200 and "members" not in response.json()
    queries = _queries(engine, counter)
    assert queries is None or len(queries) == 1, queries


async def test_lists_run_alike_once_no_more_filters_or_statements_are_kept(scim: ScimClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(query, "_SHAPES_LIMIT", 0)
    monkeypatch.setattr(common, "_STATEMENTS_LIMIT", 0)
    for name in ("ann@x", "bob@x", "cid@x"):
        await scim.create_user(name, nickName=name[:3])
    for _ in range(2):
        page = (await scim.get("/Users", params={"filter": 'nickName ew "n" or nickName sw "B"', "count": "1"})).json()
        assert (page["totalResults"], [u["userName"] for u in page["Resources"]]) == (2, ["ann@x"])
