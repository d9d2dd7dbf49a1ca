"""Helpers shared by the services: paging, dialect-aware inserts, flush-or-conflict, row locks.

Row locks follow one order everywhere, so that concurrent requests queue rather than deadlock: the
rows a request names first, then users in id order, then groups in id order. A row about to change
is locked FOR NO KEY UPDATE, which still lets other transactions insert rows that reference it (a
membership of a user being renamed); only deleting it conflicts with those references. SQLite has
no row locks (it runs one writer at a time) and ignores them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import DomainError, NotFound
from app.validation import has_nul

T = TypeVar("T")
# Bound parameters per statement stay well below SQLite's and asyncpg's limits.
CHUNK = 1000


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def page(
    session: AsyncSession,
    model: Any,
    where: ColumnElement[bool],
    order_by: Sequence[Any],
    offset: int,
    limit: int,
) -> tuple[int, list[Any]]:
    """Total matches and one page of rows, both computed by the database."""
    total = int(await session.scalar(select(func.count()).select_from(model).where(where)) or 0)
    if limit <= 0 or offset >= total:
        return total, []
    query: Select[Any] = select(model).where(where).order_by(*order_by).offset(offset).limit(limit)
    return total, list(await session.scalars(query))


_OWNED_QUERIES: dict[tuple[Any, bool, int], tuple[Any, Select[Any]]] = {}


def _owned_query(model: Any, for_update: bool, where: ColumnElement[bool] | None) -> Select[Any]:
    """The by-id lookup, built once per model, lock mode and extra condition (a module constant
    such as `groups.visible_to(...)`), with bound parameters: building and hashing a statement per
    request cost more than running it."""
    key = (model, for_update, id(where))
    cached = _OWNED_QUERIES.get(key)
    if cached is None:
        query = select(model).where(model.id == bindparam("id"), model.account_id == bindparam("account_id"))
        if where is not None:
            query = query.where(where)
        if for_update:
            query = query.with_for_update(key_share=True)
        cached = _OWNED_QUERIES[key] = (where, query)  # the condition is kept, so its id stays its own
    return cached[1]


async def fetch_owned(
    session: AsyncSession,
    model: Any,
    *,
    account_id: int,
    id: str,
    label: str,
    for_update: bool = False,
    where: ColumnElement[bool] | None = None,
) -> Any:
    """A row of the caller's account by id (and `where`, e.g. what the caller may see), locked for
    update when asked, or NotFound."""
    if has_nul(id):
        raise NotFound(label, id.replace("\x00", ""))
    row = await session.scalar(_owned_query(model, for_update, where), {"id": id, "account_id": account_id})
    if row is None:
        raise NotFound(label, id)
    return row


async def lock_ids(session: AsyncSession, column: Any, where: ColumnElement[bool], *, shared: bool = False) -> list[Any]:
    """Lock the rows matching `where` in the order of `column` (their id) and return those ids.

    `shared` takes FOR KEY SHARE: the rows cannot be deleted until this transaction ends, which is
    what a row that will reference them needs. A row deleted meanwhile by another transaction is
    not returned: the caller skips it instead of meeting a foreign-key error."""
    query = select(column).where(where).order_by(column)
    query = query.with_for_update(read=True, key_share=True) if shared else query.with_for_update(key_share=True)
    return list(await session.scalars(query))


_INSERTS_SKIPPING: dict[tuple[str, str, tuple[str, ...], str], Any] = {}


def _insert_skipping(dialect: str, table: Any, key: tuple[str, ...], returning: str) -> Any:
    """INSERT … ON CONFLICT (key) DO NOTHING RETURNING `returning`, in the database's dialect, built
    once per table: a row whose key exists already is skipped and returns nothing."""
    cache_key = (dialect, table.name, key, returning)
    statement = _INSERTS_SKIPPING.get(cache_key)
    if statement is None:
        build = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = build(table).on_conflict_do_nothing(index_elements=list(key)).returning(table.c[returning])
        _INSERTS_SKIPPING[cache_key] = statement
    return statement


async def insert_new(session: AsyncSession, table: Any, values: dict[str, Any], *, key: tuple[str, ...]) -> bool:
    """Insert one row unless a row with the same `key` columns (a unique constraint) exists: True when
    stored. One statement and no savepoint — a conflict (another request got there first) is not an
    error, so the transaction goes on."""
    connection = await session.connection()
    statement = _insert_skipping(connection.dialect.name, table, key, key[0])
    return (await connection.execute(statement, values)).first() is not None


async def insert_new_rows(
    session: AsyncSession, table: Any, rows: Sequence[dict[str, Any]], *, key: tuple[str, ...], returning: str
) -> list[Any]:
    """Insert the rows whose `key` is not there yet, in chunks; `returning` of each row stored."""
    connection = await session.connection()
    statement = _insert_skipping(connection.dialect.name, table, key, returning)
    stored: list[Any] = []
    for part in chunks(rows):
        stored.extend((await connection.execute(statement, list(part))).scalars())
    return stored


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


async def membership_windows(
    session: AsyncSession,
    keys: Sequence[str],
    *,
    key_column: Any,
    item_column: Any,
    item_model: Any,
    order_by: Sequence[Any],
    offset: int,
    limit: int,
) -> dict[str, list[Any]]:
    """For each key (a group, or a user), one window of the rows at the other end of its memberships
    — a window function, so one query for any number of keys rather than one per key."""
    pages: dict[str, list[Any]] = {key: [] for key in keys}
    if limit <= 0:
        return pages
    for part in chunks(list(keys)):
        rank = func.row_number().over(partition_by=key_column, order_by=tuple(order_by)).label("rank")
        ranked = (
            select(key_column.label("key"), item_column.label("item"), rank)
            .join(item_model, item_model.id == item_column)
            .where(key_column.in_(part))
            .subquery()
        )
        result = await session.execute(
            select(ranked.c.key, item_model)
            .join(item_model, item_model.id == ranked.c.item)
            .where(ranked.c.rank > offset, ranked.c.rank <= offset + limit)
            .order_by(ranked.c.key, ranked.c.rank)
        )
        for key, item in result:
            pages[key].append(item)
    return pages
