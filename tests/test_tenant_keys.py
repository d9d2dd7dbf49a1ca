"""Every table that belongs to an account leads its keys with `account_id`: its primary key, its unique
constraints and indexes, its foreign keys and its other indexes. That is what distributing the
tables by account requires (docs/scaling.md), and what keeps every indexed lookup within one account.
The rule is checked on the models and on a database the migrations built (Alembic's comparison of
the two does not look at primary keys)."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import Column, ForeignKey, Index, Integer, MetaData, String, Table, UniqueConstraint, inspect

from app.db.engine import create_engine
from app.db.models import metadata

ROOT = "accounts"  # the tenants themselves
# SQLite counts up only a column that is the whole primary key (see models.AuditEvent); it is never distributed.
SQLITE_COUNTED_IDS = {("audit_events", "primary key")}


def _broken(table: str, columns: list[str], what: str, found: list[str]) -> None:
    if not columns or columns[0] != "account_id":
        found.append(f"{table}: {what} ({', '.join(columns)}) does not lead with account_id")


def broken_keys(tables: dict[str, dict[str, Any]]) -> list[str]:
    """What breaks the rule, given for each table its columns, primary key, unique constraints,
    indexes (with whether unique) and foreign keys, as column-name lists."""
    found: list[str] = []
    for name, table in sorted(tables.items()):
        if name == ROOT:
            continue
        if "account_id" not in table["columns"]:
            found.append(f"{name}: no account_id column")
        _broken(name, table["primary_key"], "primary key", found)
        for columns in table["unique"]:
            _broken(name, columns, "unique constraint", found)
        for columns in table["indexes"]:
            _broken(name, columns, "index", found)
        for columns in table["foreign_keys"]:
            _broken(name, columns, "foreign key", found)
    return found


def _from_metadata(meta: MetaData) -> dict[str, dict[str, Any]]:
    return {
        table.name: {
            "columns": [c.name for c in table.columns],
            "primary_key": [c.name for c in table.primary_key.columns],
            "unique": [[c.name for c in u.columns] for u in table.constraints if isinstance(u, UniqueConstraint)],
            "indexes": [[c.name for c in i.columns] for i in table.indexes],
            "foreign_keys": [[c.name for c in fk.columns] for fk in table.foreign_key_constraints],
        }
        for table in meta.sorted_tables
    }


def _from_database(url: str) -> dict[str, dict[str, Any]]:
    def read(sync_connection: Any) -> dict[str, dict[str, Any]]:
        inspector = inspect(sync_connection)
        return {
            name: {
                "columns": [c["name"] for c in inspector.get_columns(name)],
                "primary_key": inspector.get_pk_constraint(name)["constrained_columns"],
                "unique": [u["column_names"] for u in inspector.get_unique_constraints(name)],
                "indexes": [i["column_names"] for i in inspector.get_indexes(name)],
                "foreign_keys": [fk["constrained_columns"] for fk in inspector.get_foreign_keys(name)],
            }
            for name in inspector.get_table_names()
            if name != "alembic_version"
        }

    async def run() -> dict[str, dict[str, Any]]:
        engine = create_engine(url)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(read)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_every_tenant_table_of_the_models_leads_its_keys_with_the_account() -> None:
    assert broken_keys(_from_metadata(metadata)) == []


def test_every_tenant_table_the_migrations_made_leads_its_keys_with_the_account(database_url: str) -> None:
    tables = _from_database(database_url)
    assert set(tables) == {t.name for t in metadata.sorted_tables}
    expected = []
    if database_url.startswith("sqlite"):
        expected = [f"{table}: {what} (id) does not lead with account_id" for table, what in sorted(SQLITE_COUNTED_IDS)]
    assert broken_keys(tables) == expected


def test_the_rule_finds_each_kind_of_key_that_breaks_it() -> None:
    meta = MetaData()
    Table("accounts", meta, Column("id", Integer, primary_key=True))
    Table("parents", meta, Column("account_id", Integer, primary_key=True), Column("id", String, primary_key=True))
    Table(
        "children",
        meta,
        Column("id", Integer, primary_key=True),
        Column("account_id", Integer, nullable=False),
        Column("parent_id", String, ForeignKey("parents.id")),
        Column("name", String),
        UniqueConstraint("name"),
        Index("ix_children_parent_id", "parent_id"),
    )
    Table("notes", meta, Column("id", Integer, primary_key=True))
    assert broken_keys(_from_metadata(meta)) == [
        "children: primary key (id) does not lead with account_id",
        "children: unique constraint (name) does not lead with account_id",
        "children: index (parent_id) does not lead with account_id",
        "children: foreign key (parent_id) does not lead with account_id",
        "notes: no account_id column",
        "notes: primary key (id) does not lead with account_id",
    ]
