"""Prepared statements (app.db.statements) answer exactly what SQLAlchemy's own execution answers, run
in the caller's transaction, and fail the way SQLAlchemy fails — on both databases."""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import Integer, bindparam, exc, select
from sqlalchemy.dialects.postgresql import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import statements
from app.db.engine import Failure, classify, create_engine, create_sessionmaker
from app.db.models import User
from app.db.statements import Prepared
from app.db.types import utcnow
from app.settings import DatabaseTimeouts
from tests.support.clients import Tenant
from tests.support.tcp_proxy import TcpProxy

USERS = User.__table__  # type: ignore[attr-defined]
BY_ID = Prepared(select(USERS).where(USERS.c.id == bindparam("id")))
NAMES_OF_ACCOUNT = Prepared(select(USERS.c.user_name).where(USERS.c.account_id == bindparam("account_id")).order_by(USERS.c.user_name))
INSERT = Prepared(USERS.insert())
PG_URL = os.environ.get("TEST_DATABASE_URL")


def _user(tenant: Tenant, name: str, **extra: object) -> dict[str, object]:
    now = utcnow()
    return {
        "id": str(uuid.uuid4()),
        "account_id": tenant.account_id,
        "user_name": name,
        "user_name_ci": name.lower(),
        "provisioned_by": "SCIM",
        "created_at": now,
        "updated_at": now,
        "version": 1,
        "active": True,
        "multi_valued": {"emails": [{"value": f"{name}@x.example", "primary": True}]},
        **extra,
    }


async def test_rows_are_those_sqlalchemy_reads(sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant) -> None:
    row = _user(tenant, "Ærøskøbing", display_name="Zoë", created_at=datetime(2024, 2, 29, 12, 30, tzinfo=UTC))
    async with sessionmaker() as session, session.begin():
        connection = await session.connection()
        await INSERT.execute(connection, row)
        prepared = await BY_ID.first(connection, {"id": row["id"]})
        expected = (await connection.execute(BY_ID.statement, {"id": row["id"]})).one()
    assert prepared is not None
    assert tuple(prepared) == tuple(expected)
    assert prepared._mapping == dict(expected._mapping)
    assert prepared.multi_valued == row["multi_valued"]  # JSON both ways
    assert prepared.created_at == datetime(2024, 2, 29, 12, 30, tzinfo=UTC)  # an aware UTC datetime
    assert prepared.display_name == "Zoë"


async def test_rows_of_a_statement_of_some_columns_answer_the_others_with_none(
    sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    row = _user(tenant, "narrow", display_name="Narrow")
    absent = [c.key for c in USERS.c if c.key not in ("id", "user_name")]
    narrow = statements.absent_as_none(select(USERS.c.id, USERS.c.user_name).where(USERS.c.id == bindparam("id")), absent)
    async with sessionmaker() as session, session.begin():
        connection = await session.connection()
        await INSERT.execute(connection, row)
        whole = (await connection.execute(BY_ID.statement, {"id": row["id"]})).one()
        # Prepared (on the driver for PostgreSQL, through SQLAlchemy for SQLite) and run by SQLAlchemy.
        read = [await Prepared(narrow).first(connection, {"id": row["id"]})]
        read += statements.rows_of(narrow, await connection.execute(narrow, {"id": row["id"]}))
    for found in read:
        assert found is not None
        assert (found.id, found.user_name, found.display_name, found.multi_valued) == (row["id"], "narrow", None, None)
        assert tuple(found) == (row["id"], "narrow")  # the database sent the two columns alone
        assert found._mapping == {**dict.fromkeys(whole._mapping), "id": row["id"], "user_name": "narrow"}


async def test_timestamps_read_in_utc_and_json_as_sent_whatever_the_sessions_time_zone(
    sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    """On PostgreSQL the driver's own values are kept: a timestamp it reads is aware and in UTC
    even where the session's time zone is another, and JSON is decoded from its bytes as sent."""
    emails = [{"value": "zoë@ærø.example", "display": "Zoë 😀", "primary": True}]
    row = _user(tenant, "tz", created_at=datetime(2024, 12, 31, 23, 30, tzinfo=UTC), multi_valued={"emails": emails})
    async with sessionmaker() as session, session.begin():
        connection = await session.connection()
        if connection.dialect.name == "postgresql":
            await connection.exec_driver_sql("SET LOCAL TIME ZONE 'Pacific/Kiritimati'")  # UTC+14: another day
        await INSERT.execute(connection, row)
        for read in (
            await BY_ID.first(connection, {"id": row["id"]}),
            (await connection.execute(BY_ID.statement, {"id": row["id"]})).one(),
        ):
            assert read.created_at == datetime(2024, 12, 31, 23, 30, tzinfo=UTC)
            assert read.created_at.tzinfo is UTC
            assert read.multi_valued == {"emails": emails}


async def test_first_scalar_and_several_parameter_sets(sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant) -> None:
    async with sessionmaker() as session, session.begin():
        connection = await session.connection()
        await INSERT.execute(connection, [_user(tenant, "b"), _user(tenant, "a")])
        assert [r.user_name for r in await NAMES_OF_ACCOUNT.all(connection, {"account_id": tenant.account_id})] == ["a", "b"]
        assert await NAMES_OF_ACCOUNT.scalar(connection, {"account_id": tenant.account_id}) == "a"
        assert await BY_ID.first(connection, {"id": "no-such-user"}) is None


async def test_statements_run_in_the_callers_transaction(sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant) -> None:
    """The first statement of a transaction may be a prepared one: it begins the transaction, so a
    rollback undoes it, and a savepoint's rollback undoes only what ran inside it."""
    kept, undone = _user(tenant, "kept"), _user(tenant, "undone")
    async with sessionmaker() as session:
        async with session.begin():
            await INSERT.execute(await session.connection(), _user(tenant, "rolled-back"))
            await session.rollback()
        async with session.begin():
            connection = await session.connection()
            await INSERT.execute(connection, kept)
            savepoint = await session.begin_nested()
            await INSERT.execute(await session.connection(), undone)  # asking for it emits the SAVEPOINT
            await savepoint.rollback()
    async with sessionmaker() as session:
        names = await NAMES_OF_ACCOUNT.all(await session.connection(), {"account_id": tenant.account_id})
    assert [r.user_name for r in names] == ["kept"]


async def test_a_constraint_violation_is_sqlalchemys_integrity_error(
    sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    async with sessionmaker() as session:
        async with session.begin():
            await INSERT.execute(await session.connection(), _user(tenant, "taken"))
        with pytest.raises(exc.IntegrityError):
            async with session.begin():
                await INSERT.execute(await session.connection(), _user(tenant, "TAKEN"))  # userName is unique ignoring case
        assert classify(exc.IntegrityError("x", None, Exception())) is None  # a client's conflict, not an outage


async def test_an_integer_written_into_the_sql_takes_each_value_given(
    sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    """A `literal_execute` parameter (a page's LIMIT) is part of the SQL text, one text per value:
    each run answers for its own value, whichever ran before."""
    first_names = Prepared(NAMES_OF_ACCOUNT.statement.limit(bindparam("n", type_=Integer, literal_execute=True)))  # type: ignore[attr-defined]
    async with sessionmaker() as session, session.begin():
        connection = await session.connection()
        await INSERT.execute(connection, [_user(tenant, name) for name in ("c", "a", "b")])
        for n, names in ((2, ["a", "b"]), (1, ["a"]), (2, ["a", "b"]), (0, [])):
            assert [r.user_name for r in await first_names.all(connection, {"account_id": tenant.account_id, "n": n})] == names


def test_only_an_integer_is_ever_written_into_the_sql() -> None:
    first_names = Prepared(select(USERS.c.user_name).order_by(USERS.c.user_name).limit(bindparam("n", type_=Integer, literal_execute=True)))
    compiled = first_names._compiled(asyncpg.dialect(), {"n": 1})
    sql, arguments = compiled.bound({"n": 25})
    assert sql.rstrip().endswith("LIMIT 25") and arguments == []
    for value in ("1; DROP TABLE users", 2.5, None):
        with pytest.raises(TypeError):
            compiled.bound({"n": value})


def test_a_statement_with_an_expanding_in_list_is_refused_when_built() -> None:
    with pytest.raises(TypeError, match="expanding IN"):
        Prepared(select(USERS.c.id).where(USERS.c.id.in_(bindparam("ids", expanding=True))))


@pytest.mark.skipif(not PG_URL, reason="a dropped PostgreSQL connection needs PostgreSQL (TEST_DATABASE_URL)")
async def test_a_dropped_connection_is_invalidated_and_classified_unavailable() -> None:
    assert PG_URL is not None
    url = make_url(PG_URL)
    proxy = await TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    proxied = create_engine(url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False), DatabaseTimeouts(1, 1, 2))
    try:
        sessionmaker = create_sessionmaker(proxied)
        async with sessionmaker() as session:
            connection = await session.connection()
            await BY_ID.first(connection, {"id": "warm-up"})
            proxy.drop_connections()
            await asyncio.sleep(0.05)
            with pytest.raises(exc.DBAPIError) as raised:
                await BY_ID.first(connection, {"id": "after-the-drop"})
        assert raised.value.connection_invalidated
        assert classify(raised.value) is Failure.UNAVAILABLE
        # The pool hands out a fresh connection next, which works.
        async with sessionmaker() as session:
            assert await BY_ID.first(await session.connection(), {"id": "x"}) is None
    finally:
        await proxied.dispose()
        await proxy.close()


async def test_no_parameter_sets_runs_nothing(sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant) -> None:
    async with sessionmaker() as session, session.begin():
        connection = await session.connection()
        await INSERT.execute(connection, [])
        assert await NAMES_OF_ACCOUNT.all(connection, {"account_id": tenant.account_id}) == []


async def test_values_fixed_in_the_statement_are_bound_and_a_missing_one_is_an_error(
    sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    # "SCIM" is a value of the statement itself (a bound literal), "name" one its caller gives.
    active_named = Prepared(
        select(USERS.c.user_name).where(USERS.c.provisioned_by == "SCIM", USERS.c.active.is_(True), USERS.c.user_name == bindparam("name"))
    )
    async with sessionmaker() as session, session.begin():
        connection = await session.connection()
        await INSERT.execute(connection, [_user(tenant, "on"), _user(tenant, "off", active=False)])
        assert [r.user_name for r in await active_named.all(connection, {"name": "on"})] == ["on"]
        assert await active_named.all(connection, {"name": "off"}) == []
        with pytest.raises(exc.SQLAlchemyError):
            await active_named.all(connection, {})


async def test_the_forms_kept_for_an_update_are_bounded(
    sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An UPDATE is compiled once per set of columns it sets, which follows what clients change: past
    the bound, a form is compiled for its one use and every update still applies."""
    monkeypatch.setattr(statements, "MAX_FORMS", 2)
    update_user = Prepared(USERS.update().where(USERS.c.id == bindparam("b_id")))
    row = _user(tenant, "changing")
    changes = [{"title": "a"}, {"nick_name": "b"}, {"title": "c", "locale": "d"}, {"timezone": "e"}]
    async with sessionmaker() as session, session.begin():
        connection = await session.connection()
        await INSERT.execute(connection, row)
        for change in changes:
            await update_user.execute(connection, {**change, "b_id": row["id"]})
        stored = await BY_ID.first(connection, {"id": row["id"]})
    assert (stored.title, stored.nick_name, stored.locale, stored.timezone) == ("c", "b", "d", "e")
    assert len(update_user._postgresql) <= 2
