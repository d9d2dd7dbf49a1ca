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
