"""Alembic environment: runs migrations over the application's async engine."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from alembic import context
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.engine import create_engine
from app.db.models import metadata
from app.settings import DEFAULT_DATABASE_URL

config = context.config


def _database_url() -> str:
    return config.attributes.get("database_url") or os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
        if connection.dialect.name == "sqlite":
            _check_foreign_keys(connection)


def _suspend_sqlite_foreign_keys(engine: AsyncEngine) -> None:
    """SQLite alters a table by copying it and dropping the original. With foreign keys enforced,
    that drop would also delete every row that references the table (ON DELETE CASCADE: a user's
    memberships and attribute rows), so migrations run with enforcement off."""

    @event.listens_for(engine.sync_engine, "connect")
    def _off(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=OFF")
        cursor.close()


def _check_foreign_keys(connection: Connection) -> None:
    """With enforcement off, check every reference once the migrations are done; a broken one
    fails the migration, which rolls back."""
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        raise RuntimeError(f"the migration left {len(broken)} broken foreign key references, e.g. {tuple(broken[0])}")


async def _run_async() -> None:
    engine = create_engine(_database_url())
    if engine.dialect.name == "sqlite":
        _suspend_sqlite_foreign_keys(engine)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_database_url(), target_metadata=metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
