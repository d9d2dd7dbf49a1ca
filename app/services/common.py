"""Helpers shared by the services: paging, dialect-aware inserts, flush-or-conflict, row locks.

Row locks follow one order everywhere, so that concurrent requests queue rather than deadlock: the
rows a request names first, then users in id order, then groups in id order. A row about to change
is locked FOR NO KEY UPDATE, which still lets other transactions insert rows that reference it (a
membership of a user being renamed); only deleting it conflicts with those references. A group is
the exception: the identity provider's member adds and removes hold their group FOR KEY SHARE from
their first statement and take its write lock only with their last (services.groups.change_members),
so a change that locks a group first takes it FOR UPDATE, which waits for those in progress before
it holds anything they need. SQLite has no row locks (it runs one writer at a time) and ignores them.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    ColumnElement,
    Integer,
    Select,
    String,
    Table,
    Text,
    and_,
    any_,
    bindparam,
    column,
    exists,
    func,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.elements import BindParameter, True_
from sqlalchemy.sql.functions import FunctionElement

from app.db.engine import Contention
from app.db.statements import Prepared, absent_as_none, rows_of
from app.db.transactions import NeedsTransaction, in_one_statement, the_write
from app.errors import DomainError, NotFound
from app.services.caller import Caller
from app.validation import has_nul

T = TypeVar("T")
S = TypeVar("S", bound=Executable)


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


# A value a caller did not give: the stored one stays (on create, the column's default applies).
UNSET: Any = _Unset()
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's answer to a NOWAIT lock that is held
# Bound parameters per statement stay well below SQLite's and asyncpg's limits.
CHUNK = 1000


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# What the read helpers run on: the request's ORM session (writes, GraphQL) or a bare connection
# (SCIM's read-only requests, which never need an identity map). Either way they run Core
# statements and return plain rows, whose attribute names are the model's column names.
Reader = AsyncSession | AsyncConnection

# The columns of a table that a reader of its rows uses, by name; None: all of them. See `read_columns`.
Columns = frozenset[str] | None


def read_columns(table: Table, columns: Columns, pick: Callable[[Any], Any] = lambda c: c) -> list[Any]:
    """The columns of `table` that `columns` names (all of them for None), in its order, each through
    `pick`: the database and the driver skip values nobody looks at — for a page of 50 users and their
    groups, most of what the driver decoded (bench/README.md). A statement of them goes through
    `as_whole_rows`, so that its rows keep the table's shape."""
    return [pick(c) for c in table.c if columns is None or c.key in columns]


def as_whole_rows(statement: S, table: Table, columns: Columns) -> S:
    """`statement`, of the `read_columns` of `table` for `columns`, whose rows answer the columns it
    leaves out with None: whatever reads a whole row reads them as before."""
    return statement if columns is None else absent_as_none(statement, [c.key for c in table.c if c.key not in columns])


def select_columns(table: Table, columns: Columns) -> Select[Any]:
    """A select of the `read_columns` of `table` for `columns`, whose rows keep the table's shape
    (`as_whole_rows`)."""
    return as_whole_rows(select(*read_columns(table, columns)), table, columns)


def columns_key(columns: Columns) -> tuple[str, ...] | None:
    """`columns` as part of the key of a kept statement (`kept`)."""
    return None if columns is None else tuple(sorted(columns))


async def connection_of(reader: Reader) -> AsyncConnection:
    """The connection behind `reader` (its transaction's, for a session)."""
    return reader if isinstance(reader, AsyncConnection) else await reader.connection()


class json_rows(FunctionElement[Any]):
    """An aggregate: the rows it runs over as one JSON array of arrays (one per row, of the given
    columns), in no particular order; NULL or [] over no rows. json_agg on PostgreSQL,
    json_group_array on SQLite."""

    type = JSON()
    name = "json_rows"
    inherit_cache = True


@compiles(json_rows)  # PostgreSQL's form is also the one printed for no database in particular
@compiles(json_rows, "postgresql")
def _json_rows_postgresql(element: json_rows, compiler: Any, **kw: Any) -> str:
    return f"json_agg(json_build_array({compiler.process(element.clauses, **kw)}))"


@compiles(json_rows, "sqlite")
def _json_rows_sqlite(element: json_rows, compiler: Any, **kw: Any) -> str:
    return f"json_group_array(json_array({compiler.process(element.clauses, **kw)}))"


_STATEMENTS: dict[Hashable, Prepared] = {}
# The keys of list statements name client-chosen filters and orders: the statements kept are bounded.
_STATEMENTS_LIMIT = 1024


def kept(key: Hashable | None, build: Callable[[], Executable]) -> Prepared | Executable:
    """The statement `build()` makes, prepared (app.db.statements) and kept under `key`: building a
    statement and deriving its cache key costs more than running it, and a kept one skips both.
    Equal keys must mean equal statements (whatever varies goes into bound parameters). With no
    key, or no room left, it is built for this use only."""
    prepared = None if key is None else _STATEMENTS.get(key)
    if prepared is None:
        if key is None or len(_STATEMENTS) >= _STATEMENTS_LIMIT:
            return build()
        prepared = _STATEMENTS[key] = Prepared(build())
    return prepared


async def fetch(connection: AsyncConnection, statement: Prepared | Executable, params: Mapping[str, Any]) -> list[Any]:
    """The rows of a statement from `kept`."""
    if isinstance(statement, Prepared):
        return await statement.all(connection, params)
    return rows_of(statement, await connection.execute(statement, params))


OFFSET: BindParameter[Any] = bindparam("offset")
# A page's size is written into its SQL (app.db.statements), and the first page has no OFFSET (see
# `paged`). Given LIMIT or OFFSET as a parameter, PostgreSQL's plan for any value assumes a tenth of
# the matching rows — 12,560 of an account's 125,600 users, for a page of 100 — and looks far dearer
# than the plan for the page asked for, so PostgreSQL planned such a statement again on every run:
# about a third of a millisecond of its CPU for a page of 100 users. Clients keep to a few page
# sizes; the texts kept per statement are bounded (statements.MAX_FORMS), and so are the statements
# asyncpg keeps prepared per connection.
LIMIT: BindParameter[Any] = bindparam("limit", type_=Integer, literal_execute=True)


def paged(statement: Select[Any], offset: int) -> Select[Any]:
    """`statement` cut to a page of at most LIMIT rows from OFFSET; for the first page, with no
    OFFSET at all. A statement kept for later use (`kept`) is one or the other: its key must say which."""
    statement = statement.limit(LIMIT)
    return statement if offset == 0 else statement.offset(OFFSET)


@dataclass(frozen=True)
class PageQuery:
    """What a list asks for: the rows that match `where`, in `order_by` order, at most `limit` of them
    from `offset` (and, with `after`, after a given row). The conditions may hold bound parameters,
    whose values are `params`. A `key`, when given, names `where` and `order_by` (equal keys: equal
    SQL), so that their statements are built once (see `kept`)."""

    where: ColumnElement[bool]
    order_by: Sequence[Any]
    offset: int
    limit: int
    params: Mapping[str, Any] = field(default_factory=dict)
    key: Hashable | None = None
    # Keyset pagination: the page holds only rows after a previous page's last (see `after_row`,
    # whose parameters are among `params`: a key names it too); the total still counts every match.
    after: ColumnElement[bool] | None = None

    def within(self, scope_key: Hashable, **params: Any) -> PageQuery:
        """The same query within a scope (the caller's account, what they may see): its parameters
        added, and the key told apart from the same query in another kind of scope."""
        return replace(self, params={**self.params, **params}, key=self.key and (scope_key, self.key))

    def page_params(self) -> dict[str, Any]:
        return {**self.params, "offset": self.offset, "limit": self.limit}


async def page(
    reader: Reader, model: Any, scope: ColumnElement[bool], query: PageQuery, *, counted: Prepared | None = None, columns: Columns = None
) -> tuple[int, list[Any]]:
    """One page of the rows of `model` (plain rows) within `scope` that match the query, and how many
    match (see `total_of_page`); of the rows' values, only `columns` (see `read_columns`). `scope`
    must be the same for equal keys of `query`."""
    rows = await rows_of_page(reader, model, scope, query, columns)
    return await count_of_page(reader, model, scope, query, len(rows), counted=counted), rows


async def rows_of_page(reader: Reader, model: Any, scope: ColumnElement[bool], query: PageQuery, columns: Columns = None) -> list[Any]:
    """The page of `page` without its total, for a caller that counts only when asked (see
    `count_of_page`); of its rows' values, only `columns` (see `read_columns`)."""
    if query.limit <= 0:
        return []
    connection = await connection_of(reader)
    table = model.__table__
    seek = () if query.after is None else (query.after,)
    statement = kept(
        query.key and ("page", table.name, query.key, query.after is not None, query.offset == 0, columns_key(columns)),
        lambda: paged(select_columns(table, columns).where(scope, query.where, *seek).order_by(*query.order_by), query.offset),
    )
    return await fetch(connection, statement, query.page_params())


async def count_of_page(
    reader: Reader, model: Any, scope: ColumnElement[bool], query: PageQuery, found: int, *, counted: Prepared | None = None
) -> int:
    """The total of `page` for the page `rows_of_page` found `found` rows of."""
    connection = await connection_of(reader)
    return await total_of_page(connection, model.__table__, (scope, query.where), query, found, counted=counted)


def after_row(order_by: Sequence[Any], values: Sequence[Any]) -> tuple[ColumnElement[bool], dict[str, Any]]:
    """The rows after the one whose `order_by` columns (ascending, the last one unique) hold `values`:
    a keyset page's start, which neither skips nor repeats rows when others come or go before it.
    The values are parameters (`after_0`, `after_1`, …), returned with the condition, so that every
    page of a list is one statement."""
    names = [f"after_{i}" for i in range(len(order_by))]

    def after(position: int) -> ColumnElement[bool]:
        value: BindParameter[Any]
        column, value = order_by[position], bindparam(names[position])  # the value takes the column's type
        if position == len(order_by) - 1:
            return column > value
        return or_(column > value, and_(column == value, after(position + 1)))

    return after(0), dict(zip(names, values, strict=True))


@dataclass(frozen=True)
class Filter:
    """A list's condition with the values of its parameters, and a key that names its SQL (equal
    keys: equal SQL), so that the statements of its pages are built once (see `kept`)."""

    where: ColumnElement[bool]
    params: Mapping[str, Any]
    key: Hashable

    def page(self, order_by: Sequence[Any], limit: int, after: Sequence[Any] | None = None) -> PageQuery:
        """The first `limit` matches in `order_by` order, or with `after` (the `order_by` values of a
        row), the first after that row (see `after_row`)."""
        if after is None:
            return PageQuery(self.where, order_by, 0, limit, self.params, key=self.key)
        seek, params = after_row(order_by, after)
        return PageQuery(self.where, order_by, 0, limit, {**self.params, **params}, key=self.key, after=seek)


def total_if_known(offset: int, limit: int, found: int) -> int | None:
    """The total a page tells by itself, or None. A page that is not full ends the result: when it
    starts at the first match or holds any row, the total is the rows before it plus its own."""
    if found < limit and (found or offset == 0):
        return offset + found
    return None


async def total_of_page(
    connection: AsyncConnection,
    table: Any,
    conditions: Sequence[ColumnElement[bool]],
    query: PageQuery,
    found: int,
    *,
    counted: Prepared | None = None,
    counted_with_page: int | None = None,
) -> int:
    """How many rows of `table` match all `conditions`, given that the page `query` asked for held
    `found`. A page that tells its total (`total_if_known`) is not counted again (an equality on a
    unique column, such as Entra's `userName eq` lookup, is then one statement). A query with no
    condition of its own asks for every row of the scope: `counted`, when given, is a statement that
    has them counted already (with the query's parameters), or `counted_with_page` is its count as
    the page's statement read it. Otherwise the database counts (with the count statement kept under
    the query's key, as for `page`)."""
    known = total_if_known(query.offset, query.limit, found) if query.after is None else None
    if known is not None:
        return known
    if counted is not None and isinstance(query.where, True_):
        if counted_with_page is not None:
            return counted_with_page
        return int(await counted.scalar(connection, query.params) or 0)
    statement = kept(
        query.key and ("count", table.name, query.key), lambda: select(func.count().label("total")).select_from(table).where(*conditions)
    )
    [(total,)] = await fetch(connection, statement, query.params)
    return int(total)


# The caller's app integration (None for a token bound to none), for conditions on what it sees.
VIEWER_INTEGRATION: BindParameter[Any] = bindparam("viewer_integration", type_=String(36))


def viewer_params(caller: Caller) -> dict[str, Any]:
    """The parameters of statements whose conditions name VIEWER_INTEGRATION."""
    return {"viewer_integration": caller.integration_id}


def owned_params(label: str, id: str, account_id: int) -> dict[str, Any]:
    """The parameters of a lookup by id in the caller's account; no id holds a NUL character (a
    PostgreSQL text cannot), so such an id is simply not found."""
    if has_nul(id):
        raise NotFound(label, id)
    return {"id": id, "account_id": account_id}


async def owned_row(reader: Reader, lookup: Prepared, label: str, id: str, account_id: int, params: Mapping[str, Any] | None = None) -> Any:
    """The row `lookup` (a by-id statement with parameters `id` and `account_id`, and `params`)
    finds, or NotFound."""
    row = await lookup.first(await connection_of(reader), {**owned_params(label, id, account_id), **(params or {})})
    if row is None:
        raise NotFound(label, id)
    return row


def one_row(table: Any) -> ColumnElement[bool]:
    """The row of `table` (users, user_groups) that parameters `b_account_id` and `b_id` name."""
    return and_(table.c.account_id == bindparam("b_account_id"), table.c.id == bindparam("b_id"))


def one_row_params(record: Any) -> dict[str, Any]:
    return {"b_account_id": record.account_id, "b_id": record.id}


def row_updater(table: Any) -> Prepared:
    """An UPDATE of one row of `table` (see `one_row`), of the columns its parameters name."""
    return Prepared(update(table).where(one_row(table)))


async def lock_ids(
    session: AsyncSession,
    column: Any,
    where: ColumnElement[bool],
    *,
    shared: bool = False,
    exclusive: bool = False,
    without_waiting: bool = False,
) -> list[Any]:
    """Lock the rows matching `where` in the order of `column` (their id) and return those ids.

    `shared` takes FOR KEY SHARE: the rows cannot be deleted until this transaction ends, which is
    what a row that will reference them needs. A row deleted meanwhile by another transaction is
    not returned: the caller skips it instead of meeting a foreign-key error. `exclusive` takes FOR
    UPDATE, which also keeps out those FOR KEY SHARE locks (a row about to go, or to stop being
    referable); the default, FOR NO KEY UPDATE, lets them through.

    `without_waiting` is for rows that may come before rows the transaction holds already, out of
    the order above: a row another transaction holds raises Contention (NOWAIT), and the whole
    transaction runs again, rather than waiting where a deadlock could form."""
    query = select(column).where(where).order_by(column)
    if shared:
        query = query.with_for_update(read=True, key_share=True, nowait=without_waiting)
    else:
        query = query.with_for_update(key_share=not exclusive, nowait=without_waiting)
    if not without_waiting:
        return list(await session.scalars(query))
    try:
        return list(await session.scalars(query))
    except DBAPIError as error:
        if LOCK_NOT_AVAILABLE in (getattr(error.orig, "sqlstate", None), getattr(error.orig, "pgcode", None)):
            raise Contention(f"a row of {column} is locked by another transaction") from error
        raise


_INSERTS_SKIPPING: dict[tuple[str, str, tuple[str, ...], str], Any] = {}


def _insert_skipping(dialect: str, table: Any, key: tuple[str, ...], returning: str) -> Prepared:
    """INSERT … ON CONFLICT (key) DO NOTHING RETURNING `returning`, in the database's dialect, built
    once per table: a row whose key exists already is skipped and returns nothing."""
    cache_key = (dialect, table.name, key, returning)
    prepared = _INSERTS_SKIPPING.get(cache_key)
    if prepared is None:
        build = postgresql.insert if dialect == "postgresql" else sqlite.insert
        prepared = Prepared(build(table).on_conflict_do_nothing(index_elements=list(key)).returning(table.c[returning]))
        _INSERTS_SKIPPING[cache_key] = prepared
    return prepared


Rows = tuple[Any, Sequence[dict[str, Any]]]  # a table, and rows to insert into it


async def insert_new(
    session: AsyncSession,
    table: Any,
    values: dict[str, Any],
    *,
    key: tuple[str, ...],
    with_rows: Sequence[Rows] = (),
    unless: tuple[str, ColumnElement[bool]] | None = None,
) -> bool:
    """Insert one row unless a row with the same `key` columns (a unique constraint) exists: True when
    stored. A conflict (another request got there first) is not an error: nothing is stored and the
    transaction goes on, with no savepoint. `with_rows` are rows of other tables stored only together
    with it (its index rows, its audit event, its assignment); see `_rows_of`. `unless`, a name and a condition on
    rows of `table` (its parameters named as `values` name them), is one more reason not to store:
    a row matching it exists. The caller finds out which reason held.

    On PostgreSQL all of it is one statement, not one per table: on the request path each statement
    is a round trip, and those are most of what a write costs."""
    connection = await session.connection()
    dialect = connection.dialect.name
    build_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert

    def stored_row() -> Any:
        binds = {name: bindparam(name, type_=table.c[name].type) for name in values}
        if unless is None:
            chosen = build_insert(table).values(binds)
        else:
            row = select(*binds.values()).where(~exists().where(unless[1]))
            chosen = build_insert(table).from_select(list(binds), row)
        return chosen.on_conflict_do_nothing(index_elements=list(key)).returning(table.c[key[0]])

    guard = unless and unless[0]
    if dialect != "postgresql":
        statement = (
            _insert_skipping(dialect, table, key, key[0])
            if unless is None
            else kept(("insert unless", dialect, table.name, tuple(values), key, guard), stored_row)
        )
        if not await fetch(connection, statement, values):
            return False
        await _insert_rows(connection, with_rows)
        return True
    others = tuple(other for other, _ in with_rows)

    def build() -> Executable:
        stored = stored_row().cte("stored")
        return select(stored.c[key[0]]).add_cte(*_rows_of(others, after=stored))

    statement = kept(("insert together", table.name, tuple(values), key, tuple(t.name for t in others), guard), build)
    with the_write(session):
        return bool(await fetch(connection, statement, {**values, **_rows_params(with_rows)}))


async def write_changes(
    session: AsyncSession, updater: Prepared, record: Any, before: dict[str, Any], *, with_rows: Sequence[Rows] = ()
) -> None:
    """Store the columns of `record` that differ from `before` (its attributes when it was read), with
    one UPDATE by `updater` (see `row_updater`; none when nothing changed), and `with_rows`, rows of
    other tables that go with the change (its audit events) — on PostgreSQL all in one statement.

    In one statement without a transaction (see `run_write`) the row was read without a lock: the
    write applies only while the row's `version` is still the one read — the UPDATE, or with no
    change the row locked against deletion for the statement — `with_rows` only with it, and
    otherwise nothing is written and `NeedsTransaction` is raised (another request changed or
    removed the row in between; the work runs again on the row locked)."""
    table = updater.statement.table  # type: ignore[attr-defined]
    changes = {column: value for column, value in vars(record).items() if column in table.c and before.get(column) != value}
    connection = await session.connection()
    conditional = in_one_statement(session)
    if not conditional and (connection.dialect.name != "postgresql" or not with_rows):
        if changes:
            await updater.execute(connection, {**changes, **one_row_params(record)})
        await _insert_rows(connection, with_rows)
        return
    others = tuple(other for other, _ in with_rows)

    def build() -> Executable:
        assignments = {name: bindparam(name, type_=table.c[name].type) for name in changes}
        if not conditional:
            parts = [update(table).where(one_row(table)).values(assignments).cte("changed")] if changes else []
            return select(true().label("written")).add_cte(*parts, *_rows_of(others))
        current = and_(one_row(table), table.c.version == bindparam("b_version"))
        if changes:
            written = update(table).where(current).values(assignments).returning(table.c.id).cte("changed")
        else:
            written = select(table.c.id).where(current).with_for_update(key_share=True).cte("unchanged")
        return select(func.count().label("written")).select_from(written).add_cte(*_rows_of(others, after=written))

    statement = kept(("write together", table.name, tuple(changes), tuple(t.name for t in others), conditional), build)
    params = {**changes, **one_row_params(record), **_rows_params(with_rows)}
    if conditional:
        params["b_version"] = before["version"]
    with the_write(session):
        [(written,)] = await fetch(connection, statement, params)
        if conditional and not written:
            raise NeedsTransaction()


async def update_with_rows(session: AsyncSession, statement: Any, params: Mapping[str, Any], *, with_rows: Sequence[Rows]) -> Any:
    """Run `statement`, an UPDATE … RETURNING of at most one row, and store `with_rows` (rows of other
    tables that go with the change, as `write_changes` stores them) only when it changed a row — on
    PostgreSQL in one statement. The row it returned, or None when it changed none."""
    connection = await session.connection()
    if connection.dialect.name != "postgresql":
        row = (await connection.execute(statement, dict(params))).first()
        if row is not None:
            await _insert_rows(connection, with_rows)
        return row
    others = tuple(table for table, _ in with_rows)

    def build() -> Executable:
        changed = statement.cte("changed")
        return select(*changed.c).add_cte(*_rows_of(others, after=changed))

    rows = await fetch(connection, kept(("update with rows", statement, others), build), {**params, **_rows_params(with_rows)})
    return rows[0] if rows else None


def _rows_of(tables: Sequence[Any], *, after: Any = None) -> list[Any]:
    """PostgreSQL's WITH clauses that store rows of other `tables` beside a write: for each, an
    INSERT … SELECT of its rows (a row whose key is stored already stays as it is: an assignment
    recorded before), passed as one JSON array (parameter `rows_<i>`) whose objects
    name every column but the one the database counts up (`audit_events.id`). With `after` (a WITH
    clause that returns a row when it stored one) they are stored only together with that row."""
    inserts = []
    for i, other in enumerate(tables):
        filled = [c for c in other.c if c is not other.autoincrement_column]
        rows = (
            func.jsonb_to_recordset(bindparam(f"rows_{i}", type_=postgresql.JSONB))
            .table_valued(*(column(c.key, c.type) for c in filled))
            .render_derived(name=f"rows_{i}", with_types=True)
        )
        chosen = select(*(rows.c[c.key] for c in filled))
        chosen = chosen.select_from(rows) if after is None else chosen.select_from(after).join(rows, true())
        stored = postgresql.insert(other).from_select([c.key for c in filled], chosen).on_conflict_do_nothing()
        inserts.append(stored.cte(f"stored_{i}"))
    return inserts


def _rows_params(with_rows: Sequence[Rows]) -> dict[str, list[dict[str, Any]]]:
    return {f"rows_{i}": list(rows) for i, (_, rows) in enumerate(with_rows)}


async def _insert_rows(connection: AsyncConnection, with_rows: Sequence[Rows]) -> None:
    """SQLite's form of `_rows_of`."""
    for table, rows in with_rows:
        if rows:
            await connection.execute(sqlite.insert(table).on_conflict_do_nothing(), list(rows))


def id_set(dialect: str) -> Select[Any]:
    """A SELECT of one text column, `id`: the ids given as the bound parameter `ids` (see
    `id_values`). However many ids there are, they are one parameter, so a statement over them is
    compiled once and sent in one round trip: a PostgreSQL array, or a JSON array that SQLite reads
    with json_each."""
    if dialect == "postgresql":
        return select(func.unnest(bindparam("ids", type_=postgresql.ARRAY(Text))).label("id"))
    return select(column("value", Text).label("id")).select_from(func.json_each(bindparam("ids", type_=Text)))


def among_ids(key: Any, dialect: str) -> ColumnElement[bool]:
    """`key` is one of the ids of the bound parameter `ids` (see `id_values`). On PostgreSQL `= ANY` of
    the array, which one index scan takes whole: as `IN` the `id_set`, PostgreSQL looked the ids up
    one by one, from a nested loop over them made distinct first — for a user's groups, the statement
    of a GraphQL page of 50 users, about a tenth more of its CPU (bench/README.md)."""
    if dialect == "postgresql":
        return key == any_(bindparam("ids", type_=postgresql.ARRAY(Text)))
    return key.in_(id_set(dialect))


def id_values(dialect: str, ids: Iterable[str]) -> Any:
    """The value of `id_set`'s parameter."""
    return list(ids) if dialect == "postgresql" else json.dumps(list(ids))


async def insert_unique(session: AsyncSession, row: Any) -> bool:
    """Insert `row` in a savepoint: True when stored, False when a unique constraint refused it
    (another request got there first). Then only the insert is undone, `row` leaves the session,
    and the transaction goes on, so the caller may look at the winner or try another value."""
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:
        return False
    return True


@contextlib.asynccontextmanager
async def unique_changes(session: AsyncSession, conflict: Callable[[], DomainError]) -> AsyncIterator[None]:
    """Make the block's changes in a savepoint and flush them there; when a unique constraint refuses
    them, only they are undone and `conflict()` is raised.

    The changes must be made inside the block: opening a savepoint first flushes what is already
    pending, outside the savepoint, where a violation would abort the whole transaction."""
    try:
        async with session.begin_nested():
            yield
            await session.flush()
    except IntegrityError:
        raise conflict() from None
