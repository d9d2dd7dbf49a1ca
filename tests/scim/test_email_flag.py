"""UPDATE_EMAILS_VIA_SCIM (a note on Harness's SCIM page): off by default — email changes from the identity provider
are skipped, the rest applies, and the skip is audited; on — they apply."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import AuditEvent, Outcome
from app.services import flags
from tests.support.clients import ScimClient, Tenant, set_flag


async def test_flag_off_skips_email_change_applies_the_rest_and_audits(
    scim: ScimClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user = await scim.create_user("alice@contoso.com", emails=[{"value": "alice@contoso.com", "type": "work", "primary": True}])
    response = await scim.patch(
        f"/Users/{user['id']}",
        [
            {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "alice@fabrikam.com"},
            {"op": "Replace", "path": "userName", "value": "alice@fabrikam.com"},
            {"op": "Replace", "path": "displayName", "value": "Alice F"},
        ],
    )
    assert response.status_code == 200
    body = response.json()
    assert body["emails"][0]["value"] == "alice@contoso.com"
    assert body["userName"] == "alice@contoso.com"
    assert body["displayName"] == "Alice F"
    async with sessionmaker() as session:
        ignored = await session.scalar(select(AuditEvent).where(AuditEvent.outcome == Outcome.IGNORED.value))
    assert ignored is not None
    assert ignored.resource_id == user["id"]
    assert sorted(ignored.detail["attributes"]) == ["emails", "userName"]


async def test_flag_off_still_allows_a_user_name_that_is_not_the_email(scim: ScimClient) -> None:
    user = await scim.create_user("alice", emails=[{"value": "alice@contoso.com", "type": "work"}])
    response = await scim.patch(f"/Users/{user['id']}", [{"op": "replace", "path": "userName", "value": "alice2"}])
    assert response.json()["userName"] == "alice2"


async def test_flag_on_applies_email_changes(scim: ScimClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    await set_flag(sessionmaker, tenant, flags.UPDATE_EMAILS_VIA_SCIM.name, True)
    user = await scim.create_user("alice@contoso.com", emails=[{"value": "alice@contoso.com", "type": "work", "primary": True}])
    response = await scim.patch(
        f"/Users/{user['id']}",
        [
            {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "alice@fabrikam.com"},
            {"op": "Replace", "path": "userName", "value": "alice@fabrikam.com"},
        ],
    )
    body = response.json()
    assert body["emails"][0]["value"] == "alice@fabrikam.com" and body["userName"] == "alice@fabrikam.com"
    assert [u["id"] for u in await scim.find("Users", 'emails.value eq "alice@fabrikam.com"')] == [user["id"]]


async def test_flag_off_applies_to_put_as_well(scim: ScimClient) -> None:
    user = await scim.create_user("bob@contoso.com", emails=[{"value": "bob@contoso.com", "type": "work"}])
    response = await scim.put(
        f"/Users/{user['id']}", {"userName": "bob@contoso.com", "emails": [{"value": "robert@contoso.com", "type": "work"}], "title": "CTO"}
    )
    assert response.json()["emails"] == [{"value": "bob@contoso.com", "type": "work"}]
    assert response.json()["title"] == "CTO"
