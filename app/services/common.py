"""Helpers shared by the services: paging, dialect-aware inserts, flush-or-conflict."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import NotFound
from app.validation import has_nul

T = TypeVar("T")
# Bound parameters per statement stay well below SQLite's and asyncpg's limits.
CHUNK = 1000


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def insert_ignoring_conflicts(session: AsyncSession, table: Any) -> Any:
    """INSERT … ON CONFLICT DO NOTHING, in the dialect of the session's database."""
    dialect = session.get_bind().dialect.name
    statement = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    return statement.on_conflict_do_nothing()


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


async def fetch_owned(session: AsyncSession, model: Any, *, account_id: int, id: str, label: str, for_update: bool = False) -> Any:
    """A row of the caller's account by id, locked for update when asked, or NotFound."""
    if has_nul(id):
        raise NotFound(label, id.replace("\x00", ""))
    query = select(model).where(model.id == id, model.account_id == account_id)
    if for_update:
        query = query.with_for_update()
    row = await session.scalar(query)
    if row is None:
        raise NotFound(label, id)
    return row


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
