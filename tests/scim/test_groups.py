from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import Channel, ManagedBy, UserGroup
from app.services import groups
from app.services.caller import system_caller
from tests.support.clients import ScimClient, Tenant


async def _group_row(sessionmaker: async_sessionmaker[AsyncSession], group_id: str) -> UserGroup:
    async with sessionmaker() as session:
        row = await session.scalar(select(UserGroup).where(UserGroup.id == group_id))
        assert row is not None
        return row


async def test_created_group_is_idp_managed_at_account_scope_with_derived_identifier(
    scim: ScimClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    group = await scim.create_group("example-group", externalId="e1")
    row = await _group_row(sessionmaker, str(group["id"]))
    assert row.identifier == "example_group"
    assert row.managed_by == ManagedBy.IDENTITY_PROVIDER.value
    assert (row.org_identifier, row.project_identifier, row.scope) == (None, None, "")
    assert group["externalId"] == "e1"


async def test_display_name_is_unique_among_idp_groups(scim: ScimClient) -> None:
    await scim.create_group("Sales")
    response = await scim.post("/Groups", {"displayName": "sales"})
    assert response.status_code == 409
    assert response.json()["scimType"] == "uniqueness"


async def test_idp_group_named_like_a_native_group_is_kept_beside_it(
    scim: ScimClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as session, session.begin():
        native, _ = await groups.create_group(
            session, system_caller(tenant.account_id, tenant.identifier, Channel.GRAPHQL), groups.GroupValues(display_name="example-group")
        )
    idp = await scim.create_group("example-group")
    assert (await _group_row(sessionmaker, native.id)).identifier == "example_group"
    assert (await _group_row(sessionmaker, str(idp["id"]))).identifier == "example_group_2"
    third = await scim.create_group("example.group")  # another name that derives the same identifier
    assert (await _group_row(sessionmaker, str(third["id"]))).identifier == "example_group_3"


async def test_rename_changes_display_name_only(scim: ScimClient, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    group = await scim.create_group("Old Name")
    response = await scim.patch(f"/Groups/{group['id']}", [{"op": "Replace", "path": "displayName", "value": "New Name"}])
    assert response.status_code == 204
    row = await _group_row(sessionmaker, str(group["id"]))
    assert (row.display_name, row.identifier) == ("New Name", "Old_Name")


async def test_members_are_listed_with_value_display_and_ref(scim: ScimClient) -> None:
    user = await scim.create_user("a@x", displayName="Alice")
    group = await scim.create_group("G", members=[{"value": user["id"]}])
    assert group["members"] == [{"value": user["id"], "$ref": user["meta"]["location"], "type": "User", "display": "Alice"}]  # type: ignore[index]


async def test_unknown_member_ids_are_skipped_and_audited(
    scim: ScimClient, client: object, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user = await scim.create_user("a@x")
    group = await scim.create_group("G")
    response = await scim.patch(
        f"/Groups/{group['id']}", [{"op": "add", "path": "members", "value": [{"value": user["id"]}, {"value": "ghost"}]}]
    )
    assert response.status_code == 204
    members = (await scim.get(f"/Groups/{group['id']}")).json()["members"]
    assert [m["value"] for m in members] == [user["id"]]
    from app.db.models import AuditEvent

    async with sessionmaker() as session:
        events = (await session.scalars(select(AuditEvent).where(AuditEvent.action == "group.members").order_by(AuditEvent.id))).all()
    assert [(e.outcome, e.detail.get("added"), e.detail.get("skipped")) for e in events] == [
        ("APPLIED", {"ids": [user["id"]], "count": 1}, None),
        ("IGNORED", None, {"ids": ["ghost"], "count": 1}),
    ]


async def test_members_of_another_account_are_skipped(scim: ScimClient, other_scim: ScimClient) -> None:
    stranger = await other_scim.create_user("s@other")
    group = await scim.create_group("G", members=[{"value": stranger["id"]}])
    assert "members" not in group


async def test_put_replaces_member_set_and_name(scim: ScimClient) -> None:
    a, b, c = [await scim.create_user(f"{n}@x") for n in "abc"]
    group = await scim.create_group("G", members=[{"value": a["id"]}, {"value": b["id"]}])
    response = await scim.put(f"/Groups/{group['id']}", {"displayName": "G2", "members": [{"value": b["id"]}, {"value": c["id"]}]})
    assert response.status_code == 200
    body = response.json()
    assert body["displayName"] == "G2"
    assert sorted(m["value"] for m in body["members"]) == sorted([b["id"], c["id"]])
    assert body["id"] == group["id"] and body["meta"]["created"] == group["meta"]["created"]  # type: ignore[index]


async def test_group_patch_with_attributes_returns_200_and_the_resource(scim: ScimClient) -> None:
    group = await scim.create_group("G")
    response = await scim.patch(f"/Groups/{group['id']}?attributes=displayName", [{"op": "replace", "path": "displayName", "value": "H"}])
    assert response.status_code == 200
    assert response.json()["displayName"] == "H"


async def test_patch_is_atomic(scim: ScimClient) -> None:
    user = await scim.create_user("a@x")
    group = await scim.create_group("G")
    response = await scim.patch(
        f"/Groups/{group['id']}",
        [
            {"op": "add", "path": "members", "value": [{"value": user["id"]}]},
            {"op": "replace", "path": "displayName", "value": "Renamed"},
            {"op": "replace", "path": "id", "value": "nope"},
        ],
    )
    assert response.status_code == 400
    after = (await scim.get(f"/Groups/{group['id']}")).json()
    assert after["displayName"] == "G" and "members" not in after
    assert after["meta"]["version"] == group["meta"]["version"]  # type: ignore[index]

    response = await scim.patch(
        f"/Users/{user['id']}", [{"op": "replace", "path": "title", "value": "CEO"}, {"op": "replace", "path": "shoeSize", "value": "1"}]
    )
    assert response.status_code == 400
    assert "title" not in (await scim.get(f"/Users/{user['id']}")).json()


async def test_delete_group_is_204_then_404(scim: ScimClient) -> None:
    group = await scim.create_group("G")
    assert (await scim.delete(f"/Groups/{group['id']}")).status_code == 204
    assert (await scim.get(f"/Groups/{group['id']}")).status_code == 404
    assert (await scim.delete(f"/Groups/{group['id']}")).status_code == 404


@pytest.mark.parametrize("name", ["", "   ", None, 12])
async def test_group_needs_a_display_name(scim: ScimClient, name: object) -> None:
    response = await scim.post("/Groups", {"displayName": name})
    assert response.status_code == 400
