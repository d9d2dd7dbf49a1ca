from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from app.db import migrate
from app.db.engine import create_engine
from app.db.models import metadata


def _diff_and_tables(url: str) -> tuple[list[object], set[str]]:
    async def run() -> tuple[list[object], set[str]]:
        engine = create_engine(url)
        try:
            async with engine.connect() as connection:

                def inspect_sync(sync_connection: object) -> tuple[list[object], set[str]]:
                    context = MigrationContext.configure(sync_connection, opts={"compare_type": True})  # type: ignore[arg-type]
                    return compare_metadata(context, metadata), set(inspect(sync_connection).get_table_names())  # type: ignore[arg-type]

                return await connection.run_sync(inspect_sync)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_upgrade_downgrade_upgrade_round_trips(database_url: str) -> None:
    migrate.downgrade(database_url, "base")
    _, tables = _diff_and_tables(database_url)
    assert tables <= {"alembic_version"}
    migrate.upgrade(database_url)
    diff, tables = _diff_and_tables(database_url)
    assert {"users", "user_groups", "group_memberships", "api_tokens", "audit_events"} <= tables
    assert diff == []


def test_models_and_migrations_agree(database_url: str) -> None:
    diff, _ = _diff_and_tables(database_url)
    assert diff == [], f"autogenerate found differences: {diff}"
