from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import AuditEvent
from tests.support.clients import ScimClient, Tenant


async def test_every_scim_write_is_audited_without_secrets(
    scim: ScimClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user = await scim.create_user("a@x", title="T")
    await scim.patch(f"/Users/{user['id']}", [{"op": "replace", "path": "title", "value": "U"}])
    group = await scim.create_group("G")
    await scim.patch(f"/Groups/{group['id']}", [{"op": "add", "path": "members", "value": [{"value": user["id"]}]}])
    await scim.patch(f"/Groups/{group['id']}", [{"op": "replace", "path": "displayName", "value": "H"}])
    await scim.delete(f"/Groups/{group['id']}")
    await scim.delete(f"/Users/{user['id']}")
    async with sessionmaker() as session:
        events = list(await session.scalars(select(AuditEvent).order_by(AuditEvent.id)))
    assert [(e.action, e.resource_id) for e in events] == [
        ("user.create", user["id"]),
        ("user.update", user["id"]),
        ("group.create", group["id"]),
        ("group.members", group["id"]),
        ("group.update", group["id"]),
        ("group.delete", group["id"]),
        ("user.delete", user["id"]),
    ]
    assert {e.caller for e in events} == {tenant.token_id}
    assert {e.channel for e in events} == {"SCIM"}
    assert {e.outcome for e in events} == {"APPLIED"}
    assert events[1].detail == {"changed": ["title"], "values": {"title": {"before": "T", "after": "U"}}}
    assert events[3].detail["added"] == {"count": 1, "ids": [user["id"]]}
    secret = tenant.token.rsplit(".", 1)[1]
    assert all(secret not in repr(e.detail) for e in events)
