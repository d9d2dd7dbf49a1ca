"""Bulk loading of the benchmark's data, in SQL rather than through HTTP, into the tables the
application's own migrations created.

Rows are what the service itself writes for the same SCIM documents: every user goes through the
SCIM parsing (`normalize_document`, `user_values`) and the user service's own derivation of its
lower-cased copies, primary email and filter index (`users._assign`, `users._index_rows`), so
filters by userName, externalId or email find seeded users exactly as they find provisioned ones.
On PostgreSQL the rows are copied in with COPY; on SQLite (the smoke test) they are inserted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import asyncpg
from sqlalchemy import JSON, text

from app.db.engine import create_engine
from app.db.models import GroupMembership, ManagedBy, ProvisionedBy, User, UserAttributeValue, UserGroup
from app.scim.parsing import normalize_document, user_values
from app.scim.schema import USER
from app.services import users as user_service
from app.services.identifiers import derive_identifier
from bench.dataset import Dataset, entra_user, group_id, group_name, user_id

CHUNK = 5_000  # rows per COPY or INSERT batch
USER_COLUMNS = [column.name for column in User.__table__.columns]  # type: ignore[attr-defined]


def _user_rows(dataset: Dataset, account_id: int, created: datetime) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    for n in range(dataset.users):
        values = user_values(normalize_document(entra_user(n), USER))
        at = created + timedelta(microseconds=n)  # distinct creation times, in seed order, like a real sync
        # What create_user builds, on a plain object: a mapped User costs ten times as much to construct.
        user = SimpleNamespace(**dict.fromkeys(USER_COLUMNS))
        user.__dict__.update(
            id=user_id(n),
            account_id=account_id,
            user_name=values.user_name,
            user_name_ci=values.user_name.lower(),
            provisioned_by=ProvisionedBy.SCIM.value,
            created_at=at,
            updated_at=at,
            version=1,
            multi_valued={},
        )
        user_service._assign(user, values.given())  # type: ignore[arg-type]
        yield dict(user.__dict__), user_service._index_rows(user)  # type: ignore[arg-type]


def _group_rows(dataset: Dataset, account_id: int, created: datetime) -> list[dict[str, Any]]:
    rows = []
    for n in range(dataset.groups):
        name = group_name(n)
        rows.append(
            {
                "id": group_id(n),
                "account_id": account_id,
                "org_identifier": None,
                "project_identifier": None,
                "scope": "",
                "identifier": derive_identifier(name),
                "display_name": name,
                "display_name_ci": name.lower(),
                "description": None,
                "external_id": group_id(n),
                "managed_by": ManagedBy.IDENTITY_PROVIDER.value,
                "created_at": created,
                "updated_at": created,
                "version": 1,
            }
        )
    return rows


def _membership_rows(dataset: Dataset, account_id: int, created: datetime) -> Iterator[dict[str, Any]]:
    for group, n in dataset.memberships():
        yield {"account_id": account_id, "group_id": group_id(group), "user_id": user_id(n), "added_via": "SCIM", "created_at": created}


class _Writer:
    """Buffers rows per table and writes them in chunks."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.postgres = database_url.startswith("postgresql")
        self.counts: dict[str, int] = {}

    async def __aenter__(self) -> _Writer:
        if self.postgres:
            self.pg = await asyncpg.connect(self.database_url.replace("postgresql+asyncpg://", "postgresql://"))
        else:
            self.engine = create_engine(self.database_url)
            self.sqlite = await self.engine.connect()
            await self.sqlite.begin()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.postgres:
            await self.pg.close()
        else:
            if exc[0] is None:
                await self.sqlite.commit()
            await self.sqlite.close()
            await self.engine.dispose()

    async def write(self, table: Any, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        self.counts[table.name] = self.counts.get(table.name, 0) + len(rows)
        if not self.postgres:
            await self.sqlite.execute(table.insert(), rows)
            return
        columns = [c.name for c in table.columns if c.name in rows[0]]
        as_json = {c.name for c in table.columns if isinstance(c.type, JSON)}  # COPY takes their text
        records = [tuple(json.dumps(r[c]) if c in as_json else r[c] for c in columns) for r in rows]
        await self.pg.copy_records_to_table(table.name, records=records, columns=columns)


async def seed(database_url: str, account_id: int, dataset: Dataset) -> dict[str, Any]:
    """Load `dataset` into the account; returns row counts and the time it took."""
    started = time.perf_counter()
    created = datetime(2024, 1, 1, tzinfo=UTC)
    async with _Writer(database_url) as writer:
        users: list[dict[str, Any]] = []
        values: list[dict[str, Any]] = []
        for row, index_rows in _user_rows(dataset, account_id, created):
            users.append(row)
            values.extend(index_rows)
            if len(users) >= CHUNK:
                await writer.write(User.__table__, users)  # type: ignore[attr-defined]
                await writer.write(UserAttributeValue.__table__, values)  # type: ignore[attr-defined]
                users, values = [], []
        await writer.write(User.__table__, users)  # type: ignore[attr-defined]
        await writer.write(UserAttributeValue.__table__, values)  # type: ignore[attr-defined]
        await writer.write(UserGroup.__table__, _group_rows(dataset, account_id, created))  # type: ignore[attr-defined]
        batch: list[dict[str, Any]] = []
        for row in _membership_rows(dataset, account_id, created):
            batch.append(row)
            if len(batch) >= CHUNK:
                await writer.write(GroupMembership.__table__, batch)  # type: ignore[attr-defined]
                batch = []
        await writer.write(GroupMembership.__table__, batch)  # type: ignore[attr-defined]
        counts = dict(writer.counts)
    await analyze(database_url)
    return {"rows": counts, "seconds": round(time.perf_counter() - started, 1)}


async def analyze(database_url: str) -> None:
    """Fresh planner statistics, as autovacuum would have them on a database that grew slowly."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            if engine.dialect.name == "postgresql":
                await connection.execution_options(isolation_level="AUTOCOMMIT")
                await connection.execute(text("VACUUM ANALYZE"))
            else:
                await connection.execute(text("ANALYZE"))
                await connection.commit()
    finally:
        await engine.dispose()
