"""SCIM's usual writes of a user — a create, a PATCH, a PUT — made on PostgreSQL by one statement with
no transaction around it (`run_write`): no BEGIN, no COMMIT, no lock held between the read and the
write; what one statement cannot settle runs again in a transaction, having written nothing. On
SQLite every write is a transaction."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from app.db import statements, transactions
from app.db.models import AuditEvent, User, UserAssignment
from app.db.transactions import KeptConnections, run_write, the_write
from app.scim import routes
from app.scim.schema import CORE_USER, ENTERPRISE_USER
from app.services import users
from tests.support.clients import GraphQLClient, ScimClient, Tenant, token_known
from tests.test_app_integrations import connect


class RoundTrips:
    """On PostgreSQL, the statements sent outside a transaction through the app's prepared path,
    and the writes that ran in a transaction instead (`run_write` falling back to `run_transaction`;
    the request path's bookkeeping has transactions of its own, not counted)."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.transactions = 0


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[RoundTrips]:
    seen = RoundTrips()
    run, in_transaction = statements._run, transactions.run_transaction

    async def counted_run(connection: AsyncConnection, sql: str, call: Any) -> Any:
        if connection.sync_connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":  # type: ignore[union-attr]
            seen.statements.append(sql)
        return await run(connection, sql, call)

    async def counted_transaction(*args: Any, **kwargs: Any) -> Any:
        seen.transactions += 1
        return await in_transaction(*args, **kwargs)

    monkeypatch.setattr(statements, "_run", counted_run)
    monkeypatch.setattr(transactions, "run_transaction", counted_transaction)
    yield seen


def postgresql(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "postgresql"


async def _events(sessionmaker: async_sessionmaker[AsyncSession], user_id: str) -> list[str]:
    async with sessionmaker() as session:
        rows = await session.execute(select(AuditEvent.action).where(AuditEvent.resource_id == user_id).order_by(AuditEvent.id))
        return list(rows.scalars())


async def test_a_create_is_one_statement_without_a_transaction(
    scim: ScimClient, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession], round_trips: RoundTrips
) -> None:
    await token_known(scim)
    round_trips.statements.clear()
    round_trips.transactions = 0
    response = await scim.post("/Users", {"schemas": [CORE_USER], "userName": "one@example.com", "externalId": "e-1"})
    assert response.status_code == 201, response.text
    user_id = response.json()["id"]
    if postgresql(engine):
        assert round_trips.transactions == 0
        assert len(round_trips.statements) == 1, round_trips.statements
    assert await _events(sessionmaker, user_id) == ["user.create"]
    assert (await scim.get(f"/Users/{user_id}")).json()["externalId"] == "e-1"


async def test_a_patch_is_a_read_and_one_write_without_a_transaction(
    scim: ScimClient, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession], round_trips: RoundTrips
) -> None:
    user = await scim.create_user("patched@example.com")
    round_trips.transactions = 0
    round_trips.statements.clear()
    response = await scim.patch(
        f"/Users/{user['id']}",
        [
            {"op": "Replace", "path": "displayName", "value": "Pat"},
            {"op": "Replace", "path": "title", "value": "Engineer"},
            {"op": "Replace", "path": f"{ENTERPRISE_USER}:department", "value": "R&D"},
        ],
    )
    assert response.status_code == 200, response.text
    if postgresql(engine):
        assert round_trips.transactions == 0
        assert len(round_trips.statements) == 2, round_trips.statements
        assert "FOR UPDATE" not in round_trips.statements[0]  # no transaction would hold the lock
    got = (await scim.get(f"/Users/{user['id']}")).json()
    assert (got["displayName"], got["title"], got[ENTERPRISE_USER]["department"]) == ("Pat", "Engineer", "R&D")
    assert got["meta"]["version"] == response.json()["meta"]["version"] != user["meta"]["version"]
    assert await _events(sessionmaker, user["id"]) == ["user.create", "user.update"]


async def test_a_user_changed_between_the_read_and_the_write_is_patched_again_in_a_transaction(
    scim: ScimClient,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    round_trips: RoundTrips,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another request changes the user after this PATCH read it: the PATCH's conditional write
    stores nothing (not even its audit event), and it runs again on the user locked — both changes
    are kept, and the audit log has one event for each."""
    if not postgresql(engine):
        pytest.skip("SQLite runs one writer at a time: no write can come between a write's read and its write")
    user = await scim.create_user("raced@example.com")
    write = users.write_changes
    interfered = []

    async def interfering_write(session: AsyncSession, *args: Any, **kwargs: Any) -> None:
        if not interfered:
            interfered.append(True)
            await scim.patch(f"/Users/{user['id']}", [{"op": "Replace", "path": "title", "value": "Changed meanwhile"}])
        await write(session, *args, **kwargs)

    monkeypatch.setattr(users, "write_changes", interfering_write)
    round_trips.transactions = 0
    response = await scim.patch(f"/Users/{user['id']}", [{"op": "Replace", "path": "displayName", "value": "Raced"}])
    assert response.status_code == 200, response.text
    got = (await scim.get(f"/Users/{user['id']}")).json()
    assert (got["displayName"], got["title"]) == ("Raced", "Changed meanwhile")
    assert response.json()["title"] == "Changed meanwhile"  # the answer is the user as finally stored
    assert await _events(sessionmaker, user["id"]) == ["user.create", "user.update", "user.update"]
    assert round_trips.transactions == 1  # the second attempt, in a transaction


async def test_a_patch_that_changes_nothing_of_a_user_deleted_meanwhile_writes_nothing(
    scim: ScimClient,
    client: httpx.AsyncClient,
    tenant: Tenant,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    round_trips: RoundTrips,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A PATCH that changes nothing still records its audit event and its integration's assignment
    of the user; when the user was deleted after the PATCH read them, neither is written (no
    assignment of a deleted user, no update after the delete): the PATCH runs again in a
    transaction and finds no user."""
    if not postgresql(engine):
        pytest.skip("SQLite runs one writer at a time: no write can come between a write's read and its write")
    entra = await connect(GraphQLClient(client, tenant), client, tenant, "Entra", "NEXTGEN")
    user = await scim.create_user("gone@example.com", displayName="Same")  # by a token bound to no integration
    write = users.write_changes
    interfered = []

    async def interfering_write(session: AsyncSession, *args: Any, **kwargs: Any) -> None:
        if not interfered:
            interfered.append(True)
            assert (await scim.delete(f"/Users/{user['id']}")).status_code == 204
            round_trips.transactions = 0  # the delete's own
        await write(session, *args, **kwargs)

    monkeypatch.setattr(users, "write_changes", interfering_write)
    round_trips.transactions = 0
    response = await entra.scim.patch(f"/Users/{user['id']}", [{"op": "Replace", "path": "displayName", "value": "Same"}])
    assert response.status_code == 404, response.text
    assert round_trips.transactions == 1
    assert await _events(sessionmaker, user["id"]) == ["user.create", "user.delete"]
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(UserAssignment).where(UserAssignment.user_id == user["id"])) == 0


async def test_a_database_failure_after_the_write_is_not_a_second_write(
    scim: ScimClient, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL the create committed by itself; the connection then drops while the answer is
    built. The request must not run again (its create would now meet its own user: 409): it answers
    503, and the user is stored once. On SQLite the create is a transaction that the failure rolls
    back: it runs again and answers 201 — the user stored once there too."""
    respond = routes._user_response
    failed = []

    async def failing_response(*args: Any, **kwargs: Any) -> Any:
        if not failed:
            failed.append(True)
            raise DBAPIError("SELECT …", None, ConnectionResetError("connection lost"), connection_invalidated=True)
        return await respond(*args, **kwargs)

    await token_known(scim)
    monkeypatch.setattr(routes, "_user_response", failing_response)
    response = await scim.post("/Users", {"schemas": [CORE_USER], "userName": "once@example.com"})
    assert response.status_code == (503 if postgresql(engine) else 201), response.text
    found = await scim.find("Users", 'userName eq "once@example.com"')
    assert len(found) == 1
    assert await _events(sessionmaker, found[0]["id"]) == ["user.create"]


@pytest.mark.parametrize(
    "operations",
    [
        pytest.param([{"op": "Replace", "path": "userName", "value": "renamed@example.com"}], id="a new userName"),
        pytest.param([{"op": "Add", "path": "emails", "value": [{"value": "w@example.com", "type": "work"}]}], id="new index rows"),
    ],
)
async def test_a_patch_that_needs_more_than_one_statement_runs_in_a_transaction(
    operations: list[dict[str, object]],
    scim: ScimClient,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    round_trips: RoundTrips,
) -> None:
    user = await scim.create_user("more@example.com")
    round_trips.transactions = 0
    response = await scim.patch(f"/Users/{user['id']}", operations)
    assert response.status_code == 200, response.text
    if postgresql(engine):
        assert round_trips.transactions == 1
    assert await _events(sessionmaker, user["id"]) == ["user.create", "user.update"]


async def test_a_create_of_a_taken_name_runs_in_a_transaction_and_is_refused(
    scim: ScimClient, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession], round_trips: RoundTrips
) -> None:
    await scim.create_user("taken@example.com")
    round_trips.transactions = 0
    response = await scim.post("/Users", {"schemas": [CORE_USER], "userName": "TAKEN@example.com"})
    assert response.status_code == 409
    if postgresql(engine):
        assert round_trips.transactions == 1
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(User)) == 1


async def test_sqlite_writes_are_transactions(engine: AsyncEngine) -> None:
    one_statement = transactions.one_statement_connections(engine)
    assert (one_statement is None) == (engine.dialect.name == "sqlite")


@pytest.fixture
def one_statement(engine: AsyncEngine) -> KeptConnections:
    kept = transactions.one_statement_connections(engine)
    if kept is None:
        pytest.skip("SQLite makes every write a transaction (test_sqlite_writes_are_transactions)")
    return kept


async def test_a_second_write_without_a_transaction_is_refused_before_it_is_sent(
    engine: AsyncEngine, one_statement: KeptConnections
) -> None:
    """The guard behind the rule that an attempt in one statement makes one write: a second would
    leave the first committed alone."""

    async def two_writes(session: AsyncSession) -> None:
        connection = await session.connection()
        with the_write(session):
            await connection.execute(text("SELECT 1"))
        with the_write(session):
            await connection.execute(text("SELECT 1"))

    with pytest.raises(AssertionError, match="a second write"):
        await run_write(async_sessionmaker(engine), one_statement, two_writes)


async def test_work_that_asks_the_session_for_more_than_its_connection_runs_again_in_a_transaction(
    engine: AsyncEngine, one_statement: KeptConnections
) -> None:
    """An attempt in one statement has no ORM session (`transactions.OneStatement`): a query through
    the session gives the attempt up before anything is written, and the work runs in a transaction."""
    attempts: list[bool] = []

    async def work(session: AsyncSession) -> int:
        attempts.append(transactions.in_one_statement(session))
        return int(await session.scalar(text("SELECT 41 + 1")) or 0)

    assert await run_write(async_sessionmaker(engine), one_statement, work) == 42
    assert attempts == [True, False]


async def test_asking_the_session_for_more_after_the_write_is_refused_not_run_twice(
    engine: AsyncEngine, one_statement: KeptConnections
) -> None:
    attempts: list[bool] = []

    async def work(session: AsyncSession) -> None:
        attempts.append(transactions.in_one_statement(session))
        with the_write(session):
            await (await session.connection()).execute(text("SELECT 1"))
        session.add(object())

    with pytest.raises(AssertionError, match="after the write"):
        await run_write(async_sessionmaker(engine), one_statement, work)
    assert attempts == [True]


def test_the_session_of_an_attempt_in_one_statement_answers_pythons_own_lookups_as_usual() -> None:
    session = transactions.OneStatement(cast(AsyncConnection, None), {})
    assert getattr(session, "__deepcopy__", None) is None
    with pytest.raises(transactions.NeedsTransaction):
        session.add  # noqa: B018 - the attribute lookup itself gives the attempt up
