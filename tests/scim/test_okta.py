"""Okta's habits: lowercase ops, replace with value objects, group PUT with members, upper-cased
userName filters."""

from __future__ import annotations

from tests.support.clients import CORE_GROUP, CORE_USER, ScimClient


async def test_okta_user_lifecycle(scim: ScimClient) -> None:
    assert await scim.find("Users", 'userName eq "JANE.DOE@EXAMPLE.COM"') == []
    created = await scim.create_user(
        "jane.doe@example.com",
        name={"givenName": "Jane", "familyName": "Doe"},
        emails=[{"primary": True, "value": "jane.doe@example.com", "type": "work"}],
        displayName="Jane Doe",
        locale="en-US",
        externalId="00u1abcd",
        groups=[],
        password="ignored-secret",
    )
    assert "password" not in created
    found = await scim.find("Users", 'userName eq "JANE.DOE@EXAMPLE.COM"')
    assert [u["id"] for u in found] == [created["id"]]
    off = await scim.patch(f"/Users/{created['id']}", [{"op": "replace", "value": {"active": False}}])
    assert off.status_code == 200 and off.json()["active"] is False
    renamed = await scim.patch(f"/Users/{created['id']}", [{"op": "replace", "value": {"displayName": "Jane Q. Doe"}}])
    assert renamed.json()["displayName"] == "Jane Q. Doe"
    full = await scim.put(
        f"/Users/{created['id']}",
        {
            "schemas": [CORE_USER],
            "id": created["id"],
            "userName": "jane.doe@example.com",
            "name": {"givenName": "Janet", "familyName": "Doe"},
            "active": True,
        },
    )
    assert full.status_code == 200 and full.json()["name"]["givenName"] == "Janet" and full.json()["active"] is True


async def test_okta_group_push_with_put_members(scim: ScimClient) -> None:
    a, b, c = [await scim.create_user(f"{n}@example.com") for n in "abc"]
    group = await scim.create_group("Engineering", members=[{"value": a["id"], "display": "a@example.com"}])
    renamed = await scim.patch(f"/Groups/{group['id']}", [{"op": "replace", "value": {"id": group["id"], "displayName": "Eng"}}])
    assert renamed.status_code == 204
    response = await scim.put(
        f"/Groups/{group['id']}",
        {
            "schemas": [CORE_GROUP],
            "id": group["id"],
            "displayName": "Eng",
            "members": [{"value": b["id"], "display": "b"}, {"value": c["id"], "display": "c"}],
        },
    )
    assert response.status_code == 200
    assert sorted(m["value"] for m in response.json()["members"]) == sorted([b["id"], c["id"]])
    assert response.json()["displayName"] == "Eng"


async def test_okta_lowercase_member_ops(scim: ScimClient) -> None:
    a = await scim.create_user("a@example.com")
    group = await scim.create_group("G")
    assert (
        await scim.patch(f"/Groups/{group['id']}", [{"op": "add", "path": "members", "value": [{"value": a["id"], "display": "a"}]}])
    ).status_code == 204
    assert (await scim.patch(f"/Groups/{group['id']}", [{"op": "remove", "path": f'members[value eq "{a["id"]}"]'}])).status_code == 204
    assert "members" not in (await scim.get(f"/Groups/{group['id']}")).json()
