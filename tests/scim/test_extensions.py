"""The first time an account receives an attribute of a custom schema extension, it is recorded
once, with an `extension.discovered` audit event naming it."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import AuditEvent, ExtensionAttribute
from tests.support.clients import CORE_USER, ScimClient

CUSTOM = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User"


async def _discovered(sessionmaker: async_sessionmaker[AsyncSession]) -> list[str]:
    async with sessionmaker() as session:
        events = await session.scalars(select(AuditEvent).where(AuditEvent.action == "extension.discovered").order_by(AuditEvent.id))
        return [str(e.resource_id) for e in events]


async def test_each_new_extension_attribute_is_announced_once(scim: ScimClient, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    a = await scim.post("/Users", {"schemas": [CORE_USER, CUSTOM], "userName": "a@x.com", CUSTOM: {"costCode": "1"}})
    b = await scim.post("/Users", {"schemas": [CORE_USER, CUSTOM], "userName": "b@x.com", CUSTOM: {"CostCode": "2"}})
    assert a.status_code == b.status_code == 201
    assert await _discovered(sessionmaker) == [f"{CUSTOM}:costCode"]  # names are case-insensitive
    await scim.patch(f"/Users/{a.json()['id']}", [{"op": "add", "path": f"{CUSTOM}:region", "value": "EMEA"}])
    await scim.patch(f"/Users/{a.json()['id']}", [{"op": "replace", "path": f"{CUSTOM}:region", "value": "APAC"}])
    group_urn = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:Group"
    await scim.create_group("G", **{group_urn: {"costCode": "g"}})
    assert await _discovered(sessionmaker) == [f"{CUSTOM}:costCode", f"{CUSTOM}:region", f"{group_urn}:costCode"]
    async with sessionmaker() as session:
        recorded = {(r.resource_type, r.name) for r in await session.scalars(select(ExtensionAttribute))}
    assert recorded == {("User", "costCode"), ("User", "region"), ("Group", "costCode")}


async def test_a_refused_write_announces_nothing(scim: ScimClient, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    await scim.create_user("taken@x.com")
    refused = await scim.post("/Users", {"schemas": [CORE_USER, CUSTOM], "userName": "taken@x.com", CUSTOM: {"costCode": "1"}})
    assert refused.status_code == 409
    assert await _discovered(sessionmaker) == []
