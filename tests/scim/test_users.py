from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import GroupMembership, User
from tests.support.clients import CORE_USER, ENTERPRISE, ScimClient


async def test_create_returns_201_with_id_location_and_etag(scim: ScimClient) -> None:
    response = await scim.post("/Users", {"schemas": [CORE_USER], "userName": "alice@contoso.com"})
    assert response.status_code == 201
    body = response.json()
    assert body["id"] and body["userName"] == "alice@contoso.com"
    assert response.headers["location"] == body["meta"]["location"]
    assert body["meta"]["location"].startswith("https://scim.example.test/gateway/ng/api/scim/account/acme/Users/")
    assert response.headers["etag"] == body["meta"]["version"] == 'W/"1"'
    assert response.headers["content-type"].startswith("application/scim+json")
    assert "active" not in body  # unassigned, which does not deactivate


async def test_removing_active_leaves_it_unassigned_not_deactivated(scim: ScimClient) -> None:
    user = await scim.create_user("a@x")
    response = await scim.patch(f"/Users/{user['id']}", [{"op": "remove", "path": "active"}])
    assert response.status_code == 200 and "active" not in response.json()
    assert await scim.find("Users", "active eq false") == []
    assert [u["id"] for u in await scim.find("Users", "not (active eq false)")] == [user["id"]]


async def test_user_name_is_unique_ignoring_case(scim: ScimClient) -> None:
    await scim.create_user("Alice@Contoso.com")
    response = await scim.post("/Users", {"userName": "alice@contoso.COM"})
    assert response.status_code == 409
    assert response.json()["scimType"] == "uniqueness"
    assert response.json()["status"] == "409"


async def test_external_id_is_not_unique(scim: ScimClient) -> None:
    await scim.create_user("a@x", externalId="same")
    await scim.create_user("b@x", externalId="same")
    assert len(await scim.find("Users", 'externalId eq "same"')) == 2


async def test_missing_or_wrongly_typed_user_name_is_400(scim: ScimClient) -> None:
    for body in ({"displayName": "No Name"}, {"userName": ""}, {"userName": 42}, {"userName": ["a"]}):
        response = await scim.post("/Users", body)
        assert response.status_code == 400, body
        assert response.json()["scimType"] == "invalidValue"


async def test_wrong_types_are_400_and_change_nothing(scim: ScimClient, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    for body in (
        {"userName": "x@y", "active": "maybe"},
        {"userName": "x@y", "emails": "x@y"},
        {"userName": "x@y", "emails": [{"value": "a", "primary": True}, {"value": "b", "primary": True}]},
        {"userName": "x@y", "name": "Just A String"},
        {"userName": "x@y", "title": {"nested": 1}},
    ):
        response = await scim.post("/Users", body)
        assert response.status_code == 400, (body, response.text)
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(User)) == 0


async def test_unknown_attributes_are_ignored(scim: ScimClient) -> None:
    user = await scim.create_user("a@x", shoeSize=44, **{"urn:example:custom:1.0:User": {"x": 1}})
    assert "shoeSize" not in user
    assert "urn:example:custom:1.0:User" not in user


async def test_full_user_round_trips_as_sent(scim: ScimClient) -> None:
    sent = {
        "externalId": "bjensen",
        "name": {
            "formatted": "Ms. Barbara J Jensen, III",
            "familyName": "Jensen",
            "givenName": "Barbara",
            "middleName": "Jane",
            "honorificPrefix": "Ms.",
            "honorificSuffix": "III",
        },
        "displayName": "Babs Jensen",
        "nickName": "Babs",
        "profileUrl": "https://login.example.com/bjensen",
        "title": "Tour Guide",
        "userType": "Employee",
        "preferredLanguage": "en-US",
        "locale": "en-US",
        "timezone": "America/Los_Angeles",
        "emails": [{"value": "bjensen@example.com", "type": "work", "primary": True}, {"value": "babs@jensen.org", "type": "home"}],
        "phoneNumbers": [{"value": "555-555-5555", "type": "work"}, {"value": "555-555-4444", "type": "mobile"}],
        "addresses": [
            {
                "type": "work",
                "streetAddress": "100 Universal City Plaza",
                "locality": "Hollywood",
                "region": "CA",
                "postalCode": "91608",
                "country": "USA",
                "formatted": "100 Universal City Plaza\nHollywood, CA 91608 USA",
                "primary": True,
            }
        ],
        "ims": [{"value": "someaimhandle", "type": "aim"}],
        "photos": [{"value": "https://photos.example.com/profilephoto.jpg", "type": "photo"}],
        "entitlements": [{"value": "delete-users"}],
        "roles": [{"value": "admin", "display": "Administrator", "type": "x", "primary": False}],
        "x509Certificates": [{"value": "MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAwTjELMAkGA1UEBhMCVVMx"}],
        ENTERPRISE: {
            "employeeNumber": "701984",
            "costCenter": "4130",
            "organization": "Universal Studios",
            "division": "Theme Park",
            "department": "Tour Operations",
        },
    }
    created = await scim.create_user("bjensen@example.com", **sent)
    fetched = (await scim.get(f"/Users/{created['id']}")).json()
    for key, value in sent.items():
        assert fetched[key] == value, key
    assert fetched["schemas"] == [CORE_USER, ENTERPRISE]


async def test_active_false_deactivates_but_user_is_still_readable(scim: ScimClient) -> None:
    user = await scim.create_user("a@x")
    response = await scim.patch(f"/Users/{user['id']}", [{"op": "replace", "path": "active", "value": False}])
    assert response.status_code == 200 and response.json()["active"] is False
    assert (await scim.get(f"/Users/{user['id']}")).json()["active"] is False
    assert [u["id"] for u in await scim.find("Users", 'userName eq "a@x"')] == [user["id"]]
    assert [u["id"] for u in await scim.find("Users", "active eq false")] == [user["id"]]


async def test_put_replaces_keeping_id_and_created(scim: ScimClient) -> None:
    user = await scim.create_user("a@x", title="Engineer", nickName="Al")
    response = await scim.put(f"/Users/{user['id']}", {"schemas": [CORE_USER], "userName": "a@x", "displayName": "Al A", "id": "ignored"})
    body = response.json()
    assert response.status_code == 200
    assert body["id"] == user["id"]
    assert body["meta"]["created"] == user["meta"]["created"]  # type: ignore[index]
    assert body["displayName"] == "Al A"
    assert "title" not in body and "nickName" not in body
    assert body["meta"]["version"] == 'W/"2"'


async def test_meta_timestamps_are_rfc3339_in_utc(scim: ScimClient, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """meta.created and meta.lastModified are xsd:dateTime (RFC 7643 §2.3.5) in UTC with `Z`, to the
    microsecond as stored; a stored time on a whole second has no fraction."""
    user = await scim.create_user("time@x")
    meta = (await scim.get(f"/Users/{user['id']}")).json()["meta"]
    async with sessionmaker() as session:
        stored = (await session.execute(select(User.created_at, User.updated_at).where(User.id == user["id"]))).one()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z", meta["created"]), meta
    assert datetime.fromisoformat(meta["created"]) == stored.created_at
    assert datetime.fromisoformat(meta["lastModified"]) == stored.updated_at
    whole_second = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    async with sessionmaker() as session, session.begin():
        await session.execute(update(User).where(User.id == user["id"]).values(created_at=whole_second))
    assert (await scim.get(f"/Users/{user['id']}")).json()["meta"]["created"] == "2026-01-02T03:04:05Z"


async def test_delete_removes_user_and_memberships(scim: ScimClient, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    user = await scim.create_user("a@x")
    group = await scim.create_group("G", members=[{"value": user["id"]}])
    assert (await scim.delete(f"/Users/{user['id']}")).status_code == 204
    assert (await scim.get(f"/Users/{user['id']}")).status_code == 404
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(GroupMembership)) == 0
    fetched = (await scim.get(f"/Groups/{group['id']}")).json()
    assert "members" not in fetched
    assert fetched["meta"]["version"] != group["meta"]["version"]  # type: ignore[index]


async def test_groups_attribute_lists_the_users_groups_and_is_read_only(scim: ScimClient) -> None:
    user = await scim.create_user("a@x")
    group = await scim.create_group("Sales", members=[{"value": user["id"]}])
    fetched = (await scim.get(f"/Users/{user['id']}")).json()
    assert fetched["groups"] == [
        {"value": group["id"], "$ref": group["meta"]["location"], "display": "Sales", "type": "direct"}  # type: ignore[index]
    ]
    response = await scim.patch(f"/Users/{user['id']}", [{"op": "add", "path": "groups", "value": [{"value": group["id"]}]}])
    assert response.status_code == 400
    assert response.json()["scimType"] == "mutability"


async def test_unknown_user_is_404_with_scim_body(scim: ScimClient) -> None:
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        kwargs = (
            {} if method in ("GET", "DELETE") else {"json": {"userName": "x", "Operations": [{"op": "add", "path": "title", "value": "x"}]}}
        )
        response = await scim.request(method, "/Users/does-not-exist", **kwargs)
        assert response.status_code == 404, method
        assert response.json()["status"] == "404"
        assert response.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]


async def test_manager_is_returned_in_complex_form_with_display_name(scim: ScimClient) -> None:
    boss = await scim.create_user("boss@x", displayName="The Boss")
    user = await scim.create_user("a@x", **{ENTERPRISE: {"manager": boss["id"]}})
    assert user[ENTERPRISE]["manager"] == {"value": boss["id"], "$ref": boss["meta"]["location"], "displayName": "The Boss"}  # type: ignore[index]


async def test_put_and_patch_answer_with_the_users_groups_unless_excluded(scim: ScimClient) -> None:
    user = await scim.create_user("a@x", displayName="A")
    group = await scim.create_group("Engineering", members=[{"value": user["id"]}])
    patched = await scim.patch(f"/Users/{user['id']}", [{"op": "replace", "path": "displayName", "value": "B"}])
    assert patched.status_code == 200
    assert [(g["value"], g["display"]) for g in patched.json()["groups"]] == [(group["id"], "Engineering")]
    replaced = await scim.put(f"/Users/{user['id']}", {"schemas": [CORE_USER], "userName": "a@x", "displayName": "C"})
    assert replaced.status_code == 200 and replaced.json()["displayName"] == "C"
    assert [g["value"] for g in replaced.json()["groups"]] == [group["id"]]
    excluded = await scim.patch(f"/Users/{user['id']}?excludedAttributes=groups", [{"op": "replace", "path": "title", "value": "T"}])
    assert excluded.status_code == 200 and "groups" not in excluded.json() and excluded.json()["title"] == "T"
    assert (await scim.get(f"/Users/{user['id']}")).json()["meta"]["version"] == 'W/"4"'
