"""Statements on the request path, compiled once and run with as little machinery as the database allows.

SQLAlchemy's execution of a statement on asyncpg — the DBAPI emulation, its cursor and result
objects, the greenlet hand-offs — costs about 250 µs of CPU, five times what asyncpg itself spends
on the same lookup (measured on the development machine: 300 µs against 45 µs, on one held
connection). On a GET by id that was the largest single cost. A `Prepared` statement is an ordinary
Core statement, built once at import time with bound parameters; on PostgreSQL it is compiled once
to SQL text and run directly on the asyncpg connection underneath the caller's SQLAlchemy connection
— in the same transaction, savepoint and pool checkout — and on SQLite it runs through SQLAlchemy as
usual. Values go through the column types' own bind and result processing either way, and errors
come out as SQLAlchemy's exceptions (an `IntegrityError` is still one), with a connection found dead
invalidated in the pool as SQLAlchemy would.

An integer parameter declared `literal_execute` (a page's LIMIT) is written into the SQL text instead,
one text per value: PostgreSQL keeps one plan of a prepared statement for every run only when that
plan is estimated to cost no more than the plans it makes for the values given, and a LIMIT it cannot
see makes it look far dearer (`app.services.common.LIMIT` says more).

Rows are tuples whose fields are the selected columns' keys (`row.user_name`, `row[0]`, `row._mapping`),
like SQLAlchemy's `Row`; those of a statement that leaves some of a table's columns out answer them with
None (`absent_as_none`). A statement with an expanding `IN` list cannot be compiled once; build those
per request and run them with `connection.execute`.
"""

from __future__ import annotations

import functools
import operator
from collections import namedtuple
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import exc
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.base import Executable

from app.db.engine import WatchedQueuePool

Params = Mapping[str, Any]
E = TypeVar("E", bound=Executable)
_REQUIRED = object()
MAX_FORMS = 256  # compiled forms kept per statement (one per set of columns, for an INSERT or UPDATE)


def _default(name: str, fixed: Any) -> Any:
    """The value of a parameter the caller did not give: the statement's own, else an error."""
    if fixed is not _REQUIRED:
        return fixed
    raise exc.ArgumentError(f"a value is required for the bound parameter {name!r}")


# The execution option that names the columns a statement leaves out yet its rows answer, as None
# (`absent_as_none`).
ABSENT = "absent_columns"


def absent_as_none(statement: E, keys: Sequence[str]) -> E:
    """`statement`, whose rows also answer `keys` (columns it does not select) with None, by name and
    in `_mapping`: whatever reads a table's whole rows reads the rows of a statement of some of its
    columns as before, while the database and the driver leave the others out. (Selecting them as
    NULL keeps the shape too, but PostgreSQL still makes and sends every one of those values: for a
    page of 50 users, 34 NULLs a row were about 40 % of the statement's time there, bench/README.md.)"""
    return statement.execution_options(**{ABSENT: tuple(keys)}) if keys else statement


@functools.lru_cache(maxsize=MAX_FORMS)
def _row_type(keys: tuple[str, ...], absent: tuple[str, ...] = ()) -> type[tuple[Any, ...]]:
    base = namedtuple("Row", keys)  # type: ignore[misc]
    nones = dict.fromkeys(absent)

    def mapping(row: tuple[Any, ...]) -> dict[str, Any]:
        return {**nones, **dict(zip(row._fields, row, strict=True))}  # type: ignore[attr-defined]

    return type("Row", (base,), {"__slots__": (), "_mapping": property(mapping), **nones})


def _absent(statement: Any) -> tuple[str, ...]:
    return statement.get_execution_options().get(ABSENT, ())


def rows_of(statement: Any, result: Any) -> list[Any]:
    """The rows of a result of `statement` that SQLAlchemy ran: as they are, or as rows of our own
    type when the statement leaves columns out (`absent_as_none`)."""
    absent = _absent(statement)
    if not absent:
        return list(result)
    row = _row_type(tuple(result.keys()), absent)
    return [_new_tuple(row, values) for values in result]


_new_tuple: Callable[..., tuple[Any, ...]] = tuple.__new__


class _Compiled:
    """The PostgreSQL form: SQL text, the order and processing of its parameters, and of its columns."""

    def __init__(self, statement: Any, dialect: Dialect, column_keys: list[str] | None) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=column_keys)
        self.sql: str = compiled.string
        # Per parameter, in order: its name, its type's processing, and its value when the statement
        # holds one (a literal of the statement) or _REQUIRED when the caller must give it.
        self.binds: list[tuple[str, Callable[[Any], Any] | None, Any]] = []
        # Integer parameters written into the SQL text (`bindparam(..., literal_execute=True)`), by
        # name with their value when the statement holds one; one text per set of their values.
        self.literals: list[tuple[str, Any]] = []
        self._texts: dict[tuple[int, ...], str] = {}
        written = {bind.key for bind in compiled.literal_execute_params}
        for name in compiled.positiontup or []:
            bind = compiled.binds[name]
            fixed = _REQUIRED if bind.required or bind.callable is not None else bind.value
            if name in written:
                self.literals.append((name, fixed))
            else:
                self.binds.append((name, bind.type.dialect_impl(dialect).bind_processor(dialect), fixed))
        columns = list(statement.exported_columns) if statement.is_select or getattr(statement, "_returning", ()) else []
        self.row = _row_type(tuple(column.key for column in columns), _absent(statement)) if columns else None
        processors = [column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns]
        # The columns whose values the column type processes (a timestamp tagged UTC), by position.
        self.processed = tuple((i, process) for i, process in enumerate(processors) if process is not None)

    def bound(self, params: Params | None) -> tuple[str, list[Any]]:
        """The SQL text to run with `params`, and its arguments in order."""
        params = params or {}
        arguments = []
        for name, process, fixed in self.binds:
            value = params[name] if name in params else _default(name, fixed)
            arguments.append(value if process is None else process(value))
        return (self._text(params) if self.literals else self.sql), arguments

    def _text(self, params: Params) -> str:
        # operator.index: only an integer is ever written into the SQL.
        values = tuple(operator.index(params[name] if name in params else _default(name, fixed)) for name, fixed in self.literals)
        text = self._texts.get(values)
        if text is None:
            text = self.sql
            for (name, _), value in zip(self.literals, values, strict=True):
                text = text.replace(f"__[POSTCOMPILE_{name}]", str(value))
            if len(self._texts) < MAX_FORMS:
                self._texts[values] = text
        return text

    def rows(self, records: Sequence[Any]) -> list[Any]:
        # Built with tuple.__new__ from a list patched in place: three times cheaper than a generator
        # over every column of every row (a page of 100 users has 3,700 values, a few of them processed).
        row, processed = self.row, self.processed
        assert row is not None, "a statement that returns no rows"
        if not processed:
            return [_new_tuple(row, record) for record in records]
        out = []
        for record in records:
            values = list(record)
            for i, process in processed:
                values[i] = process(values[i])
            out.append(_new_tuple(row, values))
        return out


class Prepared:
    """A Core statement with bound parameters, compiled once per process for PostgreSQL."""

    __slots__ = ("statement", "_by_columns", "_postgresql")

    def __init__(self, statement: Executable) -> None:
        if statement.compile().post_compile_params:  # type: ignore[attr-defined]
            raise TypeError("a statement with an expanding IN list cannot be prepared once; execute it per request")
        self.statement = statement
        # An INSERT or UPDATE without fixed values sets the columns its parameters name: one form per set.
        self._by_columns = getattr(statement, "is_dml", False) and not getattr(statement, "_values", None)
        self._postgresql: dict[tuple[str, ...], _Compiled] = {}

    async def all(self, connection: AsyncConnection, params: Params | None = None) -> list[Any]:
        if connection.dialect.name != "postgresql":
            return rows_of(self.statement, await connection.execute(self.statement, params))
        compiled = self._compiled(connection.dialect, params)
        sql, arguments = compiled.bound(params)
        return compiled.rows(await _run(connection, sql, lambda driver: driver.fetch(sql, *arguments)))

    async def first(self, connection: AsyncConnection, params: Params | None = None) -> Any | None:
        rows = await self.all(connection, params)
        return rows[0] if rows else None

    async def scalar(self, connection: AsyncConnection, params: Params | None = None) -> Any:
        row = await self.first(connection, params)
        return None if row is None else row[0]

    async def execute(self, connection: AsyncConnection, params: Params | Sequence[Params] | None = None) -> None:
        """Run a statement for its effect, once or (with a list of parameter sets) once per set."""
        if isinstance(params, Sequence) and not params:
            return
        if connection.dialect.name != "postgresql":
            await connection.execute(self.statement, params)
            return
        if isinstance(params, Sequence) and len(params) == 1:
            params = params[0]  # one set: a plain execution costs less than asyncpg's executemany pipeline
        if isinstance(params, Sequence):
            compiled = self._compiled(connection.dialect, params[0])
            texts, many = zip(*(compiled.bound(p) for p in params), strict=True)
            if len(set(texts)) > 1:
                raise exc.ArgumentError("the parameter sets of one executemany write different values into the SQL")
            await _run(connection, texts[0], lambda driver: driver.executemany(texts[0], many))
            return
        compiled = self._compiled(connection.dialect, params)
        sql, arguments = compiled.bound(params)
        await _run(connection, sql, lambda driver: driver.execute(sql, *arguments))

    def _compiled(self, dialect: Dialect, params: Params | None) -> _Compiled:
        columns = tuple(params) if self._by_columns and params else ()
        compiled = self._postgresql.get(columns)
        if compiled is None:
            compiled = _Compiled(self.statement, dialect, list(columns) or None)
            # The column sets of an UPDATE follow what clients change: the forms kept are bounded.
            if len(self._postgresql) < MAX_FORMS:
                self._postgresql[columns] = compiled
        return compiled


async def on_driver(connection: AsyncConnection, what: str, call: Callable[[Any], Awaitable[Any]]) -> Any:
    """`call(asyncpg connection)` in the transaction of `connection` (PostgreSQL only), its errors
    SQLAlchemy's: for what SQLAlchemy has no statement for, such as COPY. `what` names it in errors."""
    return await _run(connection, what, call)


# Called before each statement run here; SQLAlchemy's `before_cursor_execute` does not see them.
_observers: list[Callable[[Any, str], None]] = []


def observe(observer: Callable[[Any, str], None]) -> Callable[[], None]:
    """Have `observer(engine, sql)` called before each statement this module runs on the driver (the
    synchronous engine of the statement's connection, which shares its pool with the engine's option
    engines): statement counts per request see them as they see SQLAlchemy's. Returns the function
    that stops it."""
    _observers.append(observer)
    return lambda: _observers.remove(observer)


async def _run(connection: AsyncConnection, sql: str, call: Callable[[Any], Awaitable[Any]]) -> Any:
    """`call(asyncpg connection)` in the transaction of `connection`."""
    for observer in _observers:
        observer(connection.sync_engine, sql)
    adapted = await _adapted_connection(connection)
    try:
        # The transaction SQLAlchemy would have begun with its first statement (none in autocommit).
        if adapted._transaction is None and not adapted.autocommit:
            await adapted._start_transaction()
        return await call(adapted._connection)
    except Exception as error:
        raise await _as_sqlalchemy_error(connection, adapted, sql, error) from error


async def _adapted_connection(connection: AsyncConnection) -> Any:
    """The DBAPI-adapted asyncpg connection of `connection`. A connection in use holds it already and
    hands it over without a trip through the event loop; one that was invalidated reconnects."""
    sync = connection.sync_connection
    if sync is not None and not sync.invalidated and not sync.closed:
        return sync.connection.dbapi_connection
    return (await connection.get_raw_connection()).dbapi_connection


async def _as_sqlalchemy_error(connection: AsyncConnection, adapted: Any, sql: str, error: Exception) -> Exception:
    """The exception SQLAlchemy would have raised for `error`: the driver's error in the DBAPI's
    terms, wrapped, with a dead connection invalidated so that the pool does not hand it out again."""
    try:
        adapted._handle_exception(error)
    except Exception as translated:
        error = translated
    dialect = connection.dialect
    dbapi_error = dialect.loaded_dbapi.Error
    if not isinstance(error, dbapi_error):
        return error
    disconnect = dialect.is_disconnect(error, adapted, None)
    wrapped = exc.DBAPIError.instance(sql, None, error, dbapi_error, connection_invalidated=disconnect, dialect=dialect)
    if disconnect:
        pool = connection.sync_engine.pool
        if isinstance(pool, WatchedQueuePool):
            pool.died_with(connection.sync_connection.connection, error)  # type: ignore[union-attr]
        await connection.invalidate()
    return wrapped
