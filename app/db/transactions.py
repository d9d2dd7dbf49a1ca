"""One request, one transaction: run it, retry it when the database asks, fail fast when it is down.

A deadlock or serialization failure (PostgreSQL picks a victim among concurrent transactions) is
not the client's fault: the whole transaction runs again, a few times, with a short random pause.
So does a transaction that met a pooled connection that had died while idle, once.
Any other sign that the database cannot serve now becomes `Unavailable` (503 with Retry-After) and
one log line without a traceback, instead of a 500 per request for the length of an outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Iterator
from typing import NoReturn, TypeVar, cast

from sqlalchemy import exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from app.db.engine import ONE_STATEMENT, Failure, WatchedQueuePool, classify, one_statement_engine
from app.errors import DomainError, Unavailable

T = TypeVar("T")
ATTEMPTS = 4
logger = logging.getLogger("scimgraph.db")


async def run_transaction(
    sessionmaker: async_sessionmaker[AsyncSession], work: Callable[[AsyncSession], Awaitable[T]], *, attempts: int = ATTEMPTS
) -> T:
    """`work(session)` inside one transaction, committed before this returns."""

    async def once() -> T:
        async with sessionmaker() as session, session.begin():
            return await work(session)

    return await _retrying(once, attempts)


class NeedsTransaction(Exception):
    """Raised by work run in one statement (see `run_write`) that met a case one statement cannot
    settle — a name already taken, a row changed since it was read, a second table to rewrite —
    before it wrote anything: the work runs again in a transaction."""


def in_one_statement(session: AsyncSession) -> bool:
    """Whether `session` is one of `run_write`'s attempts without a transaction."""
    return bool(session.info.get(ONE_STATEMENT))


def locks_row(session: AsyncSession, for_update: bool) -> bool:
    """Whether a read of a row to change takes its lock: in a transaction it does; in one statement
    (see `run_write`) no transaction would hold it, and the write checks the version read instead
    (`services.common.write_changes`)."""
    return for_update and not in_one_statement(session)


def needs_transaction(session: AsyncSession, when: bool = True) -> None:
    """Give up `session`'s attempt in one statement `when` it holds (see `NeedsTransaction`); in a
    transaction, nothing."""
    if when and in_one_statement(session):
        raise NeedsTransaction()


# session.info keys of an attempt in one statement: its write was claimed; it was made (committed).
_CLAIMED = "scimgraph_write_claimed"
_COMMITTED = "scimgraph_write_committed"


@contextlib.contextmanager
def the_write(session: AsyncSession) -> Iterator[None]:
    """Around each statement that writes. An attempt in one statement may make one write, which
    commits by itself: a second would leave the first committed alone, so it is a bug, refused
    before it reaches the database; once the write is made, the attempt is not run again (see
    `run_write`)."""
    if not in_one_statement(session):
        yield
        return
    if session.info.get(_CLAIMED):
        raise AssertionError("a second write in an attempt that may make one; see NeedsTransaction")
    session.info[_CLAIMED] = True
    yield
    session.info[_COMMITTED] = True


async def run_write(
    sessionmaker: async_sessionmaker[AsyncSession], one_statement: KeptConnections | None, work: Callable[[AsyncSession], Awaitable[T]]
) -> T:
    """`work(session)` with its changes committed before this returns: first, when `one_statement`
    is given (PostgreSQL), on a session without a transaction, where `work` may read and then make
    one write, which commits by itself — the whole of a typical SCIM create or update, in one or two
    round trips instead of three or four; `work` raises `NeedsTransaction` (before writing) for
    anything more, and then runs again in a transaction (`run_transaction`).

    The attempt's session is a `OneStatement` on one of `one_statement`'s kept connections, which
    goes back to be kept when the attempt ended normally, with a refusal, or with `NeedsTransaction`.

    A database failure after the write was made (reading what the answer shows) is not run again,
    which would make the change twice (a 409 for the user just created, a second audit event): it
    is 503, and the client's retry finds its change made."""
    if one_statement is not None:
        kept = one_statement

        async def once() -> T:
            info: dict[str, object] = {ONE_STATEMENT: True}
            try:
                return await kept.run(lambda connection: work(cast(AsyncSession, OneStatement(connection, info))))
            except (DomainError, NeedsTransaction):
                raise
            except Exception as error:
                if info.get(_COMMITTED) and classify(error) is not None:
                    logger.warning("database unavailable after a write was made: %s", _one_line(error))
                    raise Unavailable() from None
                raise

        try:
            return await _retrying(once, ATTEMPTS)
        except NeedsTransaction:
            pass
    return await run_transaction(sessionmaker, work)


class OneStatement:
    """What an attempt in one statement (`run_write`) has for a session: its connection, with no
    transaction and no ORM session around it. The services it runs take an `AsyncSession`; of one
    they use here only `info` and `connection()`, and an ORM session's construction, its
    transaction's bookkeeping on the connection and its close cost a PATCH a fifth of its CPU
    (bench/README.md). Anything else a service asks of it (a query through the session, `add`,
    `flush`…) gives the attempt up before it writes — `NeedsTransaction`: the work runs again in a
    transaction, with an ORM session — and after its write is a bug (the rerun would write twice)."""

    def __init__(self, connection: AsyncConnection, info: dict[str, object]) -> None:
        self.info = info
        self._connection = connection

    async def connection(self) -> AsyncConnection:
        return self._connection

    def __getattr__(self, name: str) -> NoReturn:
        if name.startswith("__"):  # Python's own protocols (copy, pickle…) look these up and expect AttributeError
            raise AttributeError(name)
        if self.info.get(_CLAIMED):
            raise AssertionError(f"session.{name} after the write of an attempt in one statement")
        raise NeedsTransaction()


class KeptConnections:
    """Connections of `engine` kept from one request to the next instead of handed back to the pool
    after each, for the requests that need no transaction: reads (`run_read`) and writes in one
    statement (`run_write`), each kind with its own (PostgreSQL only; on SQLite each request takes a
    connection from the pool and hands it back). Taking a connection from SQLAlchemy's pool and
    handing it back — the connection object, the isolation level set and reset, the rollback on
    return, the task that shields the close — cost about 60 µs, a fifth of a GET by id's CPU.

    At most as many as the pool holds are kept, and only after a request that ended normally or with
    an answer for the client (see `run`).
    The pool (`WatchedQueuePool`) counts them as idle and takes one back whenever a checkout finds
    none idle, so that keeping them never makes a write open a connection or wait; a connection is
    not kept while a checkout is waiting, nor kept on a dead connection's evidence (see `drop`)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._idle: list[AsyncConnection] = []

    def _pool(self) -> WatchedQueuePool | None:
        pool = self.engine.sync_engine.pool  # looked up each time: disposing an engine replaces its pool
        return pool if isinstance(pool, WatchedQueuePool) else None

    async def run(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """`work(connection)` on a kept connection, or a new one, kept afterwards when `work` ended
        normally or with an answer for the client (a refusal, a missing resource, `NeedsTransaction`)."""
        connection = self._idle.pop() if self._idle else await self.engine.connect()
        reusable = False
        try:
            result = await work(connection)
            reusable = True
            return result
        except (DomainError, NeedsTransaction):
            reusable = True
            raise
        except exc.DBAPIError as error:
            if error.connection_invalidated:
                await self.drop()
            raise
        finally:
            await self._hand_back(connection, reusable=reusable)

    async def _hand_back(self, connection: AsyncConnection, *, reusable: bool) -> None:
        """After a request: keep `connection` for the next one, or give it back to the pool."""
        pool = self._pool()
        if reusable and pool is not None and len(self._idle) < pool.size() and not pool.waiting() and not connection.invalidated:
            if connection.in_transaction():  # a statement through SQLAlchemy began one (in autocommit: nothing to end)
                await connection.rollback()
            self._idle.append(connection)
            pool.keep_aside(self)
            return
        await asyncio.shield(connection.close())

    async def drop(self) -> None:
        """Discard every kept connection: one of them was found dead, and the others were opened
        before it died (a restart of the database). The pool opens fresh ones."""
        while self._idle:
            await self._idle.pop().invalidate()

    def idle(self) -> int:
        return len(self._idle)

    def give_one_back(self) -> bool:
        if not self._idle:
            return False
        connection = self._idle.pop(0)  # the longest idle
        connection.sync_connection.close()  # type: ignore[union-attr]
        return True


def one_statement_connections(engine: AsyncEngine) -> KeptConnections | None:
    """The connections `run_write` makes its writes in one statement on: None on SQLite."""
    autocommit = one_statement_engine(engine)
    return None if autocommit is None else KeptConnections(autocommit)


async def run_read(connections: KeptConnections, work: Callable[[AsyncConnection], Awaitable[T]], *, attempts: int = ATTEMPTS) -> T:
    """`work(connection)` on a bare connection (see `engine.read_only`), for a request that only
    reads rows and renders them: an ORM session's identity map and unit of work would be pure cost
    there. Failures are settled as for `run_transaction`."""

    async def once() -> T:
        return await connections.run(work)

    return await _retrying(once, attempts)


async def _retrying(once: Callable[[], Awaitable[T]], attempts: int) -> T:
    for attempt in range(1, attempts + 1):
        try:
            return await once()
        except DomainError:
            raise
        except Exception as exc:
            retry = await settle_failure(exc, attempt, attempts)
            if not retry:
                raise
    raise AssertionError("unreachable: the last attempt returns or raises")  # pragma: no cover


async def settle_failure(error: Exception, attempt: int, attempts: int = ATTEMPTS) -> bool:
    """Decide what a failed transaction means: True to run it again (after a short pause), raise
    Unavailable when the database cannot serve, False when it is not the database's state (a bug)."""
    failure = classify(error)
    if attempt == 1 and isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        # A pooled connection that died while idle (the database restarted, a proxy timed it out):
        # the pool has dropped it; the next attempt gets a fresh one. Connections are not pinged
        # before use, so this is how a stale one is found.
        return True
    if failure is Failure.RETRY and attempt < attempts:
        await asyncio.sleep(random.uniform(0.005, 0.02) * attempt)
        return True
    if failure is not None:
        logger.warning("database %s: %s", "contention" if failure is Failure.RETRY else "unavailable", _one_line(error))
        raise Unavailable() from None
    return False


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200]}" if text else type(error).__name__
