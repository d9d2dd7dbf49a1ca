"""Engine and session factories, the database timeouts, and what a database failure means.

Every wait on the database is bounded: connecting, checking a connection out of the pool, and each
statement. A request that hits a bound fails fast (503) instead of hanging for the whole outage.

On SQLite, transactions that write begin IMMEDIATE (they take the database's one write lock up
front, so two read-then-write transactions cannot deadlock); read-only ones begin DEFERRED and never
wait for a writer (WAL mode lets readers run beside it).
"""

from __future__ import annotations

import enum
import json
import time
from typing import Any, Protocol

import orjson
from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlalchemy.util.concurrency import await_

from app.settings import DatabaseTimeouts, ensure_sqlite_folder

READ_ONLY = "scimgraph_read_only"
NO_WAIT = "scimgraph_no_wait"
ONE_STATEMENT = "scimgraph_one_statement"  # session.info key: see `app.db.transactions.run_write`
# PostgreSQL SQLSTATEs after which the whole transaction may simply be run again.
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected
# Statement timeout, lock timeout, and the classes "connection exception", "insufficient resources",
# "operator intervention" (admin shutdown, cannot connect now): the database cannot serve us right now.
_UNAVAILABLE_SQLSTATES = frozenset({"57014", "55P03"})
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57P")
# SQLite virtual-machine steps between two looks at the statement deadline (microseconds of work).
_PROGRESS_STEPS = 10_000


DEFAULT_POOL_SIZE = 20


def json_text(value: Any) -> str:
    """JSON columns as text: orjson (every write carries one), or the standard library for what orjson
    refuses (an integer beyond 64 bits, which strict request decoding still lets through)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False)


class KeptAside(Protocol):
    """Connections of a pool kept checked out between uses while idle (`app.db.transactions.KeptConnections`)."""

    def idle(self) -> int: ...

    def give_one_back(self) -> bool:
        """Hand one idle connection back to its pool (synchronously, as pool code runs); False if none."""
        ...


class WatchedQueuePool(AsyncAdaptedQueuePool):
    """The pool SQLAlchemy gives an asyncio engine, counting the checkouts that are waiting: for a
    connection to come back (the pool and its overflow are all in use) or for a new one to open. A
    checkout that finds an idle connection never waits, so it is never seen in the count.

    Connections kept aside while idle (`keep_aside`) count as idle, not in use, and a checkout that
    finds no idle connection in the pool takes one of them back first: keeping never makes another
    request open a connection or wait."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._waiting = 0
        self._kept_aside: list[KeptAside] = []

    def waiting(self) -> int:
        return self._waiting

    def keep_aside(self, holder: KeptAside) -> None:
        if holder not in self._kept_aside:
            self._kept_aside.append(holder)

    def checkedout(self) -> int:
        return super().checkedout() - self._idle_aside()

    def checkedin(self) -> int:
        return super().checkedin() + self._idle_aside()

    def _idle_aside(self) -> int:
        return sum(holder.idle() for holder in self._kept_aside)

    def _do_get(self) -> Any:
        if self._pool.empty():
            any(holder.give_one_back() for holder in self._kept_aside)
        self._waiting += 1
        try:
            return super()._do_get()
        finally:
            self._waiting -= 1

    def died_with(self, connection: Any, error: BaseException) -> None:
        """`connection` was found dead, and so is every connection opened before it (the database
        restarted): each is opened anew at its next checkout instead of failing a request first. What
        SQLAlchemy does on a disconnect it meets itself, for the statements run around it
        (app/db/statements.py)."""
        self._invalidate(connection, error, _checkin=False)

    def dispose(self) -> None:
        for holder in self._kept_aside:
            while holder.give_one_back():
                pass
        super().dispose()


def create_engine(
    database_url: str, timeouts: DatabaseTimeouts | None = None, *, pool_size: int = DEFAULT_POOL_SIZE, **kwargs: Any
) -> AsyncEngine:
    """An engine with every wait bounded. On PostgreSQL the pool keeps `pool_size` connections (and
    opens up to half as many more under a burst): opening one costs milliseconds, so a pool smaller
    than the concurrent requests turns into a connect per request. A pooled connection is not
    pinged before use; one found dead runs its transaction again on a fresh connection instead
    (`app.db.transactions`)."""
    timeouts = timeouts or DatabaseTimeouts()
    kwargs = {"json_serializer": json_text, "json_deserializer": orjson.loads, **kwargs}
    if database_url.startswith("sqlite"):
        ensure_sqlite_folder(database_url)
        # SQLite's busy timeout is how long a writer waits for the write lock.
        engine = create_async_engine(database_url, connect_args={"timeout": timeouts.statement}, **kwargs)
        _tune_sqlite(engine, statement_timeout=timeouts.statement)
        return engine
    connect_args = {
        "timeout": timeouts.connect,
        # Enforced by the server (the statement is cancelled) and, for a silent network, by the client.
        "command_timeout": timeouts.statement + 1,
        "server_settings": {"statement_timeout": str(int(timeouts.statement * 1000))},
    }
    engine = create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=pool_size // 2,
        pool_timeout=timeouts.pool_checkout,
        poolclass=WatchedQueuePool,
        connect_args=connect_args,
        **kwargs,
    )
    if kwargs["json_deserializer"] is orjson.loads and engine.dialect.driver == "asyncpg":
        _decode_json_in_one_call(engine)
    return engine


def _decode_json_in_one_call(engine: AsyncEngine) -> None:
    """json values decoded by orjson straight from the bytes asyncpg receives. SQLAlchemy's codec
    makes a str of them first and calls the decoder from a function of its own: two more steps per
    value, where a page of 100 users holds 400 values."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        codec = dbapi_connection.driver_connection.set_type_codec
        await_(codec("json", encoder=str.encode, decoder=orjson.loads, schema="pg_catalog", format="binary"))


def _tune_sqlite(engine: AsyncEngine, *, statement_timeout: float) -> None:
    busy_timeout_ms = int(statement_timeout * 1000)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        # Let SQLAlchemy issue BEGIN itself (below) instead of the driver's implicit one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # LIKE must honour case like PostgreSQL does; case-insensitive filters lower() both sides.
        cursor.execute("PRAGMA case_sensitive_like=ON")
        cursor.close()
        # The built-in lower() folds ASCII only; this one folds all of Unicode as PostgreSQL's does.
        # Safe to replace: no index is built on a lower() expression.
        from app.db.casefold import unicode_lower

        dbapi_connection.create_function("lower", 1, unicode_lower, deterministic=True)
        # SQLite has no statement timeout: a progress handler interrupts a statement that runs past
        # its deadline (set before each one, below), as PostgreSQL's statement_timeout would.
        deadline = record.info["statement_deadline"] = [float("inf")]
        handler = lambda: 1 if time.monotonic() > deadline[0] else 0  # noqa: E731 - called by SQLite, must be cheap
        await_(dbapi_connection.driver_connection.set_progress_handler(handler, _PROGRESS_STEPS))

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _on_statement(connection: Any, *_: Any) -> None:
        connection.connection.info["statement_deadline"][0] = time.monotonic() + statement_timeout

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        options = connection.get_execution_options()
        # A no-wait transaction fails at once when another holds the write lock, instead of queueing.
        wanted = 0 if options.get(NO_WAIT, False) else busy_timeout_ms
        info = connection.connection.info
        if info.get("busy_timeout_ms", busy_timeout_ms) != wanted:
            connection.exec_driver_sql(f"PRAGMA busy_timeout={wanted}")
        info["busy_timeout_ms"] = wanted
        connection.exec_driver_sql("BEGIN DEFERRED" if options.get(READ_ONLY, False) else "BEGIN IMMEDIATE")


def create_sessionmaker(engine: AsyncEngine, *, read_only: bool = False, no_wait: bool = False) -> async_sessionmaker[AsyncSession]:
    """Sessions for requests that write; `read_only` for those that only read (on SQLite they never
    take the write lock; on PostgreSQL they run without BEGIN and COMMIT — at READ COMMITTED each
    statement sees its own snapshot either way, so the two round trips bought nothing); `no_wait`
    for best-effort writes that would rather fail than wait for SQLite's write lock (on PostgreSQL
    such writes skip locked rows themselves)."""
    bind = engine
    if read_only:
        bind = read_only_engine(engine)
    elif no_wait:
        bind = engine.execution_options(**{NO_WAIT: True})
    return async_sessionmaker(bind, expire_on_commit=False, autoflush=False)


def one_statement_engine(engine: AsyncEngine) -> AsyncEngine | None:
    """`engine` for writes made by one statement with no transaction around it (see
    `app.db.transactions.run_write`): on PostgreSQL, a statement outside BEGIN and COMMIT commits
    by itself, all or nothing, which saves two of a write's three or four round trips. None on
    SQLite, whose writes are one statement per table."""
    if engine.dialect.name != "postgresql":
        return None
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def read_only_engine(engine: AsyncEngine) -> AsyncEngine:
    """`engine` for connections that only read (see `create_sessionmaker(read_only=True)`)."""
    options: dict[str, Any] = {READ_ONLY: True}
    if engine.dialect.name == "postgresql":
        options["isolation_level"] = "AUTOCOMMIT"
    return engine.execution_options(**options)


class Contention(Exception):
    """A transaction met a row it must not wait for: waiting there, with the locks it holds, could
    deadlock. Like a deadlock, it runs again from the start (see `classify`), without first waiting
    for PostgreSQL's deadlock detection."""


class Failure(enum.Enum):
    """What a database error means for the request that met it."""

    RETRY = "retry"  # a deadlock, a serialization failure or a dead pooled connection: run it all again
    UNAVAILABLE = "unavailable"  # the database cannot serve now: 503, the client retries later


def classify(error: BaseException) -> Failure | None:
    """RETRY, UNAVAILABLE, or None for an error that is not the database's state (a bug, a constraint).
    Looks through the chain of causes: drivers wrap each other's exceptions."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        found = _classify_one(current)
        if found is not None:
            return found
        current = current.__cause__ or current.__context__
    return None


def _classify_one(error: BaseException) -> Failure | None:
    if isinstance(error, Contention):
        return Failure.RETRY
    if isinstance(error, exc.TimeoutError):  # no pooled connection within pool_checkout
        return Failure.UNAVAILABLE
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return Failure.UNAVAILABLE
    if isinstance(error, (OSError, TimeoutError)):  # refused, reset, unreachable, connect/command timeout
        return Failure.UNAVAILABLE
    sqlstate = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    if isinstance(sqlstate, str):
        if sqlstate in _RETRYABLE_SQLSTATES:
            return Failure.RETRY
        if sqlstate in _UNAVAILABLE_SQLSTATES or sqlstate.startswith(_UNAVAILABLE_SQLSTATE_CLASSES):
            return Failure.UNAVAILABLE
    message = str(error).lower()
    if type(error).__name__ == "ConnectionDoesNotExistError" or "connection is closed" in message:
        return Failure.UNAVAILABLE
    # SQLite: the write lock stayed taken for the whole busy timeout, a statement ran past its deadline,
    # or the file is unreachable.
    if "database is locked" in message or message == "interrupted" or "unable to open database" in message:
        return Failure.UNAVAILABLE
    return None
