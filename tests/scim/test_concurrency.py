"""Entra and Okta send requests in parallel: one request is one transaction, and the database's
constraints decide races — on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import AuditEvent, GroupMembership, User, UserAttributeValue
from tests.support.clients import ScimClient


async def test_parallel_member_adds_all_land_exactly_once(scim: ScimClient, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    ids = [str((await scim.create_user(f"u{i}@x"))["id"]) for i in range(24)]
    group = await scim.create_group("G")

    async def add(chunk: list[str]) -> int:
        response = await scim.patch(f"/Groups/{group['id']}", [{"op": "Add", "path": "members", "value": [{"value": i} for i in chunk]}])
        return response.status_code

    # Overlapping chunks: every id is added by two requests at once.
    chunks = [ids[i : i + 6] for i in range(0, 24, 3)]
    statuses = await asyncio.gather(*(add(c) for c in chunks))
    assert set(statuses) == {204}
    async with sessionmaker() as session:
        rows = (await session.execute(select(GroupMembership.user_id).where(GroupMembership.group_id == group["id"]))).scalars().all()
    assert sorted(rows) == sorted(ids)


async def test_parallel_duplicate_creates_make_exactly_one_user(scim: ScimClient, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async def create(i: int) -> int:
        name = "Race@Example.com" if i % 2 else "race@example.com"
        response = await scim.post("/Users", {"userName": name, "emails": [{"value": f"{i}@example.com", "type": "work"}]})
        return response.status_code

    statuses = await asyncio.gather(*(create(i) for i in range(10)))
    assert sorted(statuses) == [201] + [409] * 9
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(User)) == 1
        # The refused creates left neither an email index row nor an audit event behind.
        assert await session.scalar(select(func.count()).select_from(UserAttributeValue)) == 1
        assert await session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "user.create")) == 1


async def test_parallel_group_creates_with_same_name(scim: ScimClient) -> None:
    async def create() -> int:
        return (await scim.post("/Groups", {"displayName": "Same"})).status_code

    statuses = await asyncio.gather(*(create() for _ in range(6)))
    assert sorted(statuses) == [201] + [409] * 5
