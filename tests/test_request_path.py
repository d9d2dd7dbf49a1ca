"""The request path against an unlucky or hostile client: a stalled upload holds nothing, readers
never wait for writers, one token's requests never wait for each other, GraphQL answers only after
its commit, and a deadlock is retried — on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from app.db import statements
from app.db.engine import Failure, classify, create_engine, create_sessionmaker
from app.db.models import ApiToken, User
from app.settings import DatabaseTimeouts
from tests.support.clients import CORE_USER, GraphQLClient, ScimClient, Tenant, token_known

# How long a request may take while something else holds a lock before we call it "waiting". Far
# below the 15 s lock/statement timeout, far above any honest request on a loaded machine.
PROMPT = 5.0

CREATE_USER = """mutation($email: String!) { createUser(input: {email: $email, name: "Ann"}) {
  __typename ... on User { id } ... on Error { message } } }"""


@pytest.fixture
def gql(client: httpx.AsyncClient, tenant: Tenant) -> GraphQLClient:
    return GraphQLClient(client, tenant)


async def _user_count(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(User)) or 0)


async def _hold_write_lock(sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant, release: asyncio.Event) -> None:
    """An open write transaction that has touched the token's row: on SQLite it holds the write lock,
    on PostgreSQL the token's row lock — until `release`."""
    async with sessionmaker() as session, session.begin():
        await session.execute(update(ApiToken).where(ApiToken.token_id == tenant.token_id).values(name="held"))
        await release.wait()


async def test_a_stalled_request_body_does_not_block_other_requests(
    scim: ScimClient, client: httpx.AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """A client sends 20 bytes of a .search body and stops. Before, the request had already opened
    its transaction (SQLite's write lock; PostgreSQL's token row lock) and every other request waited."""
    release = asyncio.Event()

    async def trickle() -> AsyncIterator[bytes]:
        yield b'{"schemas": ["urn:ie'
        await release.wait()
        yield b'tf:params:scim:api:messages:2.0:SearchRequest"]}'

    stalled = asyncio.create_task(
        client.post(f"{tenant.base}/Users/.search", content=trickle(), headers={**tenant.headers, "Content-Type": "application/scim+json"})
    )
    await asyncio.sleep(0.1)  # let the stalled request reach its body read
    try:
        async with asyncio.timeout(PROMPT):
            created = await scim.post("/Users", {"schemas": [CORE_USER], "userName": "while-stalled@example.com"})
            listed = await scim.get("/Users")
    finally:
        release.set()
    assert created.status_code == 201, created.text
    assert listed.json()["totalResults"] == 1
    assert (await stalled).status_code == 200


async def test_reads_do_not_wait_for_an_open_write_transaction(
    scim: ScimClient, gql: GraphQLClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """GET, .search and GraphQL queries run in read-only transactions: on SQLite they begin DEFERRED
    and read beside a writer (WAL) instead of queueing for the write lock."""
    user = await scim.create_user("reader@example.com")
    await scim.get("/Users")  # last_used_at is now fresh: the reads below only read
    release = asyncio.Event()
    holder = asyncio.create_task(_hold_write_lock(sessionmaker, tenant, release))
    await asyncio.sleep(0.1)
    try:
        async with asyncio.timeout(PROMPT):
            by_id = await scim.get(f"/Users/{user['id']}")
            searched = await scim.post("/Users/.search", {"filter": 'userName eq "reader@example.com"'})
            data = await gql("{ users(first: 5) { totalCount } }")
    finally:
        release.set()
        await holder
    assert by_id.status_code == 200
    assert searched.json()["totalResults"] == 1
    assert data["users"]["totalCount"] == 1


async def test_requests_with_one_token_never_wait_on_its_last_used_time(
    scim: ScimClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """Entra uses one token for everything. Recording last_used_at must not make its requests wait
    for each other: while the token's row is locked, a request whose last_used_at is due still runs,
    and the time is recorded by a later request once the lock is gone."""
    release = asyncio.Event()
    holder = asyncio.create_task(_hold_write_lock(sessionmaker, tenant, release))
    await asyncio.sleep(0.1)
    try:
        async with asyncio.timeout(PROMPT):
            response = await scim.get("/Users")
    finally:
        release.set()
        await holder
    assert response.status_code == 200
    assert (await scim.get("/Users")).status_code == 200
    async with sessionmaker() as session:
        assert await session.scalar(select(ApiToken.last_used_at).where(ApiToken.token_id == tenant.token_id)) is not None


class _FailWrites:
    """Makes the next `times` writes of an engine fail with `error` where they would become durable,
    before they reach the database: at COMMIT, or — for a write made by one statement without a
    transaction (`run_write`, on PostgreSQL) — at that statement."""

    def __init__(self, engine: AsyncEngine, error: BaseException, times: int = 1) -> None:
        self.engine, self.error, self.left = engine, error, times
        self.patch = pytest.MonkeyPatch()

    def __enter__(self) -> _FailWrites:
        event.listen(self.engine.sync_engine, "commit", self._on_commit)
        run = statements._run

        async def failing_run(connection: AsyncConnection, sql: str, call: Any) -> Any:
            autocommit = connection.sync_connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT"  # type: ignore[union-attr]
            if autocommit and not sql.lstrip().upper().startswith("SELECT"):
                self._fail()
            return await run(connection, sql, call)

        self.patch.setattr(statements, "_run", failing_run)
        return self

    def __exit__(self, *_: Any) -> None:
        self.patch.undo()
        event.remove(self.engine.sync_engine, "commit", self._on_commit)

    def _on_commit(self, _connection: Any) -> None:
        self._fail()

    def _fail(self) -> None:
        if self.left > 0:
            self.left -= 1
            raise self.error


class _Deadlock(Exception):
    sqlstate = "40P01"


async def test_graphql_answers_only_after_its_commit(
    gql: GraphQLClient, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """The connection dies at COMMIT: the client must not hear 200 with a new id for a user that was
    never stored (before, the response was sent inside the transaction and the commit came after)."""
    with _FailWrites(engine, ConnectionResetError("connection lost at commit")):
        response = await gql.raw(CREATE_USER, email="ghost@example.com")
    assert response.status_code == 503
    assert response.headers["retry-after"]
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAVAILABLE"
    assert "data" not in response.json()
    assert await _user_count(sessionmaker) == 0


async def test_scim_answers_only_after_its_commit(
    scim: ScimClient, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """As above, over SCIM; on PostgreSQL the create is one statement without a transaction, and the
    connection dies at that statement."""
    await token_known(scim)
    with _FailWrites(engine, ConnectionResetError("connection lost at commit")):
        response = await scim.post("/Users", {"schemas": [CORE_USER], "userName": "ghost@example.com"})
    assert response.status_code == 503
    assert response.headers["retry-after"]
    assert response.json()["status"] == "503"
    assert await _user_count(sessionmaker) == 0


@pytest.mark.parametrize("channel", ["scim", "graphql"])
async def test_a_deadlock_victim_is_run_again(
    channel: str, scim: ScimClient, gql: GraphQLClient, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """PostgreSQL aborts one of two deadlocked transactions (40P01): the request runs again and
    succeeds once — never a 500, never two users."""
    await token_known(scim)
    with _FailWrites(engine, _Deadlock("deadlock detected"), times=2):
        if channel == "scim":
            response = await scim.post("/Users", {"schemas": [CORE_USER], "userName": "retried@example.com"})
            assert response.status_code == 201, response.text
        else:
            response = await gql.raw(CREATE_USER, email="retried@example.com")
            assert response.status_code == 200
            assert response.json()["data"]["createUser"]["__typename"] == "User"
    assert await _user_count(sessionmaker) == 1


async def test_endless_contention_is_503_not_500(
    scim: ScimClient, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await token_known(scim)
    with _FailWrites(engine, _Deadlock("deadlock detected"), times=100):
        response = await scim.post("/Users", {"schemas": [CORE_USER], "userName": "unlucky@example.com"})
    assert response.status_code == 503
    assert await _user_count(sessionmaker) == 0


async def test_sqlite_readers_begin_deferred_and_writers_immediate(engine: AsyncEngine) -> None:
    """The transaction modes behind the tests above, stated directly for SQLite; on PostgreSQL both
    are plain READ COMMITTED transactions."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("BEGIN"):
            seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        for read_only in (True, False):
            async with create_sessionmaker(engine, read_only=read_only)() as session, session.begin():
                await session.execute(text("SELECT 1"))
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    expected = ["BEGIN DEFERRED", "BEGIN IMMEDIATE"] if engine.dialect.name == "sqlite" else []
    assert seen == expected


async def test_a_runaway_statement_is_stopped_by_the_statement_timeout(database_url: str) -> None:
    """The backstop behind the GraphQL cost limit: no statement runs past DB_STATEMENT_TIMEOUT, on
    either database (PostgreSQL's statement_timeout; on SQLite a progress handler), and the failure
    reads as 'unavailable' (503), not as a bug."""
    engine = create_engine(database_url, DatabaseTimeouts(statement=0.3))
    endless = text("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) SELECT count(*) FROM c")
    try:
        async with asyncio.timeout(PROMPT):
            with pytest.raises(Exception) as caught:
                async with engine.connect() as connection:
                    await connection.execute(endless)
        assert classify(caught.value) is Failure.UNAVAILABLE, caught.value
        async with engine.connect() as connection:  # the connection is usable again
            assert (await connection.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await engine.dispose()
