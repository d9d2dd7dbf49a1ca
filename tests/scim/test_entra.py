"""Microsoft Entra ID (Azure AD): its request sequences and every habit in its tolerance checklist.
Each quirk has its own test, named after it. Flows run in both PATCH forms: the default one and the
`aadOptscim062020` one."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.clients import CORE_GROUP, CORE_USER, ENTERPRISE, ScimClient

ADSCIM_GROUP = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"


def entra_user(upn: str, **overrides: Any) -> dict[str, Any]:
    """The body Entra posts for a new user with the default attribute mappings."""
    body: dict[str, Any] = {
        "schemas": [CORE_USER, ENTERPRISE],
        "externalId": upn.split("@")[0],
        "userName": upn,
        "active": True,
        "emails": [{"primary": True, "type": "work", "value": upn}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "Given Family", "familyName": "Family", "givenName": "Given"},
        "displayName": "Given Family",
        "title": None,
        "roles": [],
        ENTERPRISE: {"employeeNumber": "1001", "department": "Sales", "manager": None},
    }
    body.update(overrides)
    return body


# --- Test Connection --------------------------------------------------------------------------------


async def test_test_connection_probe_gets_an_empty_list(scim: ScimClient) -> None:
    response = await scim.request("GET", "/Users?filter=userName+eq+%2289a2e76e-5f8a-4f19-9c8e-0e3f1d2c3b4a%22")
    assert response.status_code == 200
    assert (response.json()["totalResults"], response.json()["Resources"]) == (0, [])


async def test_test_connection_probe_on_external_id(scim: ScimClient) -> None:
    response = await scim.get("/Users", params={"filter": 'externalId eq "89a2e76e-5f8a"'})
    assert response.status_code == 200 and response.json()["totalResults"] == 0


async def test_requests_without_user_agent_are_served(scim: ScimClient) -> None:
    response = await scim.get("/Users", headers={"User-Agent": ""})
    assert response.status_code == 200


# --- user flows ------------------------------------------------------------------------------------


async def test_create_user_flow(scim: ScimClient) -> None:
    probe = await scim.find("Users", 'userName eq "alice@contoso.com"')
    assert probe == []
    response = await scim.post("/Users", entra_user("alice@contoso.com"))
    assert response.status_code == 201
    created = response.json()
    assert created["id"]
    assert created[ENTERPRISE] == {"employeeNumber": "1001", "department": "Sales"}
    again = await scim.find("Users", 'userName eq "alice@contoso.com"')
    assert [u["id"] for u in again] == [created["id"]]


DEFAULT_FORM = [
    {"op": "Replace", "path": "displayName", "value": "Alice Smith"},
    {"op": "Replace", "path": "name.familyName", "value": "Smith"},
    {"op": "Replace", "path": f"{ENTERPRISE}:employeeNumber", "value": "2002"},
    {"op": "Add", "path": "nickName", "value": "Ali"},
    {"op": "Replace", "path": 'phoneNumbers[type eq "mobile"].value', "value": "+1 555 0100"},
    {"op": "Add", "path": 'addresses[type eq "work"].locality', "value": "Redmond"},
]
OPTSCIM_FORM = [
    {
        "op": "replace",
        "value": {"displayName": "Alice Smith", "name.familyName": "Smith", f"{ENTERPRISE}:employeeNumber": "2002", "nickName": "Ali"},
    },
    {"op": "replace", "path": 'phoneNumbers[type eq "mobile"].value', "value": "+1 555 0100"},
    {"op": "add", "value": {'addresses[type eq "work"].locality': "Redmond"}}
    if False
    else {"op": "add", "path": 'addresses[type eq "work"].locality', "value": "Redmond"},
]


@pytest.mark.parametrize("operations", [DEFAULT_FORM, OPTSCIM_FORM], ids=["default", "aadOptscim062020"])
async def test_update_user_flow(scim: ScimClient, operations: list[dict[str, Any]]) -> None:
    user = (await scim.post("/Users", entra_user("alice@contoso.com"))).json()
    assert (await scim.get(f"/Users/{user['id']}")).status_code == 200
    response = await scim.patch(f"/Users/{user['id']}", operations)
    assert response.status_code == 200
    body = response.json()
    assert body["displayName"] == "Alice Smith"
    assert body["name"]["familyName"] == "Smith" and body["name"]["givenName"] == "Given"
    assert body[ENTERPRISE]["employeeNumber"] == "2002" and body[ENTERPRISE]["department"] == "Sales"
    assert body["nickName"] == "Ali"
    assert body["phoneNumbers"] == [{"type": "mobile", "value": "+1 555 0100"}]
    assert body["addresses"] == [{"type": "work", "locality": "Redmond"}]


@pytest.mark.parametrize(
    ("disable", "enable"), [("False", "True"), (False, True)], ids=["default-string-booleans", "aadOptscim062020-booleans"]
)
async def test_disable_and_reenable_flow(scim: ScimClient, disable: Any, enable: Any) -> None:
    user = (await scim.post("/Users", entra_user("alice@contoso.com"))).json()
    off = await scim.patch(f"/Users/{user['id']}", [{"op": "Replace", "path": "active", "value": disable}])
    assert off.status_code == 200 and off.json()["active"] is False
    assert (await scim.find("Users", 'userName eq "alice@contoso.com"'))[0]["active"] is False
    on = await scim.patch(f"/Users/{user['id']}", [{"op": "Replace", "path": "active", "value": enable}])
    assert on.json()["active"] is True


async def test_delete_user_flow(scim: ScimClient) -> None:
    user = (await scim.post("/Users", entra_user("alice@contoso.com"))).json()
    assert (await scim.delete(f"/Users/{user['id']}")).status_code == 204
    assert await scim.find("Users", 'userName eq "alice@contoso.com"') == []


# --- group flows -----------------------------------------------------------------------------------


async def _entra_group(scim: ScimClient, name: str = "Sales") -> dict[str, Any]:
    assert await scim.find("Groups", f'displayName eq "{name}"', excludedAttributes="members") == []
    response = await scim.post(
        "/Groups", {"schemas": [CORE_GROUP, ADSCIM_GROUP], "externalId": "0a1b2c3d", "displayName": name, "meta": {"resourceType": "Group"}}
    )
    assert response.status_code == 201
    return response.json()  # type: ignore[no-any-return]


async def _member_ids(scim: ScimClient, group_id: str) -> list[str]:
    return sorted(m["value"] for m in (await scim.get(f"/Groups/{group_id}")).json().get("members", []))


@pytest.mark.parametrize("form", ["default", "aadOptscim062020"])
async def test_group_flow(scim: ScimClient, form: str) -> None:
    users = [(await scim.post("/Users", entra_user(f"u{i}@contoso.com"))).json()["id"] for i in range(4)]
    group = await _entra_group(scim)
    read = await scim.get(f"/Groups/{group['id']}", params={"excludedAttributes": "members"})
    assert read.status_code == 200 and "members" not in read.json()
    add = await scim.patch(
        f"/Groups/{group['id']}",
        [{"op": "Add" if form == "default" else "add", "path": "members", "value": [{"$ref": None, "value": u} for u in users]}],
    )
    assert add.status_code == 204
    assert await _member_ids(scim, group["id"]) == sorted(users)
    if form == "default":
        remove = [{"op": "Remove", "path": "members", "value": [{"value": users[0]}, {"value": users[1]}]}]
    else:
        remove = [{"op": "remove", "path": f'members[value eq "{users[0]}"]'}, {"op": "remove", "path": f'members[value eq "{users[1]}"]'}]
    assert (await scim.patch(f"/Groups/{group['id']}", remove)).status_code == 204
    assert await _member_ids(scim, group["id"]) == sorted(users[2:])
    rename = await scim.patch(f"/Groups/{group['id']}", [{"op": "Replace", "path": "displayName", "value": "Sales EMEA"}])
    assert rename.status_code == 204
    assert (await scim.get(f"/Groups/{group['id']}")).json()["displayName"] == "Sales EMEA"
    assert (await scim.delete(f"/Groups/{group['id']}")).status_code == 204


async def test_manager_arrives_in_a_later_patch_in_each_form(scim: ScimClient) -> None:
    boss = (await scim.post("/Users", entra_user("boss@contoso.com"))).json()
    user = (await scim.post("/Users", entra_user("alice@contoso.com"))).json()
    for value in (boss["id"], {"value": boss["id"]}, [{"value": boss["id"], "$ref": None}]):
        response = await scim.patch(f"/Users/{user['id']}", [{"op": "Replace", "path": f"{ENTERPRISE}:manager", "value": value}])
        assert response.json()[ENTERPRISE]["manager"] == {
            "value": boss["id"],
            "$ref": boss["meta"]["location"],
            "displayName": "Given Family",
        }
    cleared = await scim.patch(f"/Users/{user['id']}", [{"op": "Replace", "path": f"{ENTERPRISE}:manager", "value": ""}])
    assert "manager" not in cleared.json()[ENTERPRISE]


async def test_manager_check_query_with_unquoted_values(scim: ScimClient) -> None:
    boss = (await scim.post("/Users", entra_user("boss@contoso.com"))).json()
    user = (await scim.post("/Users", entra_user("alice@contoso.com", **{ENTERPRISE: {"manager": {"value": boss["id"]}}}))).json()
    found = await scim.find("Users", f"id eq {user['id']} and manager eq {boss['id']}", attributes="id")
    assert found == [{"schemas": user["schemas"], "id": user["id"]}]


# --- the tolerance checklist, one test per line ------------------------------------------------------


async def test_quirk_op_is_case_insensitive(scim: ScimClient) -> None:
    user = await scim.create_user("a@x")
    for op in ("Add", "REPLACE", "rEpLaCe"):
        assert (await scim.patch(f"/Users/{user['id']}", [{"op": op, "path": "title", "value": op}])).json()["title"] == op
    assert (await scim.patch(f"/Users/{user['id']}", [{"op": "Remove", "path": "title"}])).json().get("title") is None


@pytest.mark.parametrize("value", ["True", "true", "TRUE", "False", "false", "fAlSe"])
async def test_quirk_booleans_as_strings(scim: ScimClient, value: str) -> None:
    expected = value.lower() == "true"
    created = await scim.create_user("a@x", active=value, emails=[{"value": "a@x", "primary": value}])
    assert created["active"] is expected and created["emails"][0]["primary"] is expected  # type: ignore[index]
    patched = await scim.patch(f"/Users/{created['id']}", [{"op": "Replace", "path": "active", "value": value}])
    assert patched.json()["active"] is expected
    put = await scim.put(f"/Users/{created['id']}", {"userName": "a@x", "active": value})
    assert put.json()["active"] is expected


async def test_quirk_pathless_replace_with_dotted_and_urn_keys(scim: ScimClient) -> None:
    user = (await scim.post("/Users", entra_user("alice@contoso.com"))).json()
    response = await scim.patch(
        f"/Users/{user['id']}", [{"op": "replace", "value": {"name.givenName": "Ally", f"{ENTERPRISE}:department": "Ops", "active": False}}]
    )
    body = response.json()
    assert body["name"]["givenName"] == "Ally" and body[ENTERPRISE]["department"] == "Ops" and body["active"] is False


async def test_quirk_pathless_add_with_dotted_keys(scim: ScimClient) -> None:
    user = await scim.create_user("a@x")
    response = await scim.patch(f"/Users/{user['id']}", [{"op": "add", "value": {"name.familyName": "Doe", "title": "Dr"}}])
    assert response.json()["name"] == {"familyName": "Doe"} and response.json()["title"] == "Dr"


@pytest.mark.parametrize("op", ["Replace", "Add"])
@pytest.mark.parametrize(
    ("path", "attribute", "element"),
    [
        ('emails[type eq "work"].value', "emails", {"type": "work", "value": "new@x"}),
        ('phoneNumbers[type eq "mobile"].value', "phoneNumbers", {"type": "mobile", "value": "new@x"}),
        ('addresses[type eq "work"].streetAddress', "addresses", {"type": "work", "streetAddress": "new@x"}),
    ],
)
async def test_quirk_filtered_path_creates_missing_element(
    scim: ScimClient, op: str, path: str, attribute: str, element: dict[str, str]
) -> None:
    user = await scim.create_user("a@x")
    response = await scim.patch(f"/Users/{user['id']}", [{"op": op, "path": path, "value": "new@x"}])
    assert response.status_code == 200
    assert response.json()[attribute] == [element]
    # A second time it updates the element instead of adding another.
    again = await scim.patch(f"/Users/{user['id']}", [{"op": op, "path": path, "value": "newer@x"}])
    assert len(again.json()[attribute]) == 1


async def test_quirk_remove_on_filtered_path_with_value_removes(scim: ScimClient) -> None:
    user = await scim.create_user("a@x", phoneNumbers=[{"type": "work", "value": "1"}, {"type": "mobile", "value": "2"}])
    response = await scim.patch(f"/Users/{user['id']}", [{"op": "Remove", "path": 'phoneNumbers[type eq "work"].value', "value": "1"}])
    assert response.json()["phoneNumbers"] == [{"type": "mobile", "value": "2"}]


async def test_quirk_extension_attribute_addressed_with_colon(scim: ScimClient) -> None:
    user = await scim.create_user("a@x")
    response = await scim.patch(f"/Users/{user['id']}", [{"op": "Add", "path": f"{ENTERPRISE}:department", "value": "Finance"}])
    assert response.json()[ENTERPRISE] == {"department": "Finance"}
    assert [u["id"] for u in await scim.find("Users", f'{ENTERPRISE}:department eq "Finance"')] == [user["id"]]


async def test_quirk_both_member_removal_forms_ref_null_and_several_members(scim: ScimClient) -> None:
    ids = [(await scim.create_user(f"{n}@x"))["id"] for n in "abcd"]
    group = await scim.create_group("G")
    await scim.patch(f"/Groups/{group['id']}", [{"op": "Add", "path": "members", "value": [{"$ref": None, "value": i} for i in ids]}])
    await scim.patch(f"/Groups/{group['id']}", [{"op": "Remove", "path": "members", "value": [{"value": ids[0]}]}])
    await scim.patch(f"/Groups/{group['id']}", [{"op": "remove", "path": f'members[value eq "{ids[1]}"]'}])
    assert await _member_ids(scim, str(group["id"])) == sorted(ids[2:])


async def test_quirk_remove_members_with_value_list_never_clears(scim: ScimClient) -> None:
    ids = [(await scim.create_user(f"{n}@x"))["id"] for n in "abc"]
    group = await scim.create_group("G", members=[{"value": i} for i in ids])
    await scim.patch(f"/Groups/{group['id']}", [{"op": "Remove", "path": "members", "value": [{"value": ids[0]}]}])
    assert await _member_ids(scim, str(group["id"])) == sorted(ids[1:])
    await scim.patch(f"/Groups/{group['id']}", [{"op": "Remove", "path": "members"}])  # bare remove clears
    assert await _member_ids(scim, str(group["id"])) == []


async def test_quirk_unknown_schema_urns_client_meta_empty_roles_and_nulls(scim: ScimClient) -> None:
    body = entra_user("alice@contoso.com", schemas=[CORE_USER, "urn:made:up", "not even a urn"], nickName=None)
    body["meta"] = {"resourceType": "User", "created": "1999-01-01T00:00:00Z", "version": 'W/"99"'}
    response = await scim.post("/Users", body)
    assert response.status_code == 201
    created = response.json()
    assert created["meta"]["version"] == 'W/"1"' and not created["meta"]["created"].startswith("1999")
    assert "roles" not in created and "title" not in created and "nickName" not in created


async def test_quirk_excluded_attributes_members_on_get_and_list(scim: ScimClient) -> None:
    user = await scim.create_user("a@x")
    group = await scim.create_group("G", members=[{"value": user["id"]}])
    one = await scim.get(f"/Groups/{group['id']}", params={"excludedAttributes": "members"})
    assert "members" not in one.json() and one.json()["displayName"] == "G"
    listed = await scim.find("Groups", 'displayName eq "G"', excludedAttributes="members")
    assert "members" not in listed[0]


@pytest.mark.parametrize("filter_text", ['DisplayName eq "G"', 'displayname EQ "G"', "displayName eq G", 'displayName+eq+"G"'])
async def test_quirk_filter_leniency(scim: ScimClient, filter_text: str) -> None:
    await scim.create_group("G")
    response = await scim.request("GET", f"/Groups?filter={filter_text}")
    assert response.status_code == 200 and response.json()["totalResults"] == 1


async def test_quirk_filter_attribute_names_in_any_case(scim: ScimClient) -> None:
    user = await scim.create_user("a@x", name={"familyName": "Doe"}, emails=[{"value": "a@x", "type": "work"}])
    for text in ('name.FamilyName eq "doe"', 'emails.Value eq "A@X"', f'meta.Created le "{user["meta"]["created"]}"'):  # type: ignore[index]
        assert [u["id"] for u in await scim.find("Users", text)] == [user["id"]], text


async def test_quirk_json_escapes_inside_quoted_filter_values(scim: ScimClient) -> None:
    await scim.create_group('Say "hi" \\ team')
    found = await scim.find("Groups", r'displayName eq "Say \"hi\" \\ team"')
    assert len(found) == 1


async def test_quirk_user_name_is_case_insensitive(scim: ScimClient) -> None:
    user = await scim.create_user("Alice@Contoso.com")
    assert [u["id"] for u in await scim.find("Users", 'userName eq "ALICE@contoso.COM"')] == [user["id"]]
    assert (await scim.post("/Users", {"userName": "alice@contoso.com"})).status_code == 409


async def test_quirk_duplicate_user_name_is_409_uniqueness(scim: ScimClient) -> None:
    await scim.post("/Users", entra_user("alice@contoso.com"))
    response = await scim.post("/Users", entra_user("alice@contoso.com"))
    assert (response.status_code, response.json()["scimType"], response.json()["status"]) == (409, "uniqueness", "409")


async def test_quirk_values_stored_as_sent_with_duplicate_types(scim: ScimClient) -> None:
    emails = [{"value": "A@Contoso.COM", "type": "work"}, {"value": "second@contoso.com", "type": "work"}]
    user = await scim.create_user("a@x", emails=emails, displayName="  spaced  ")
    assert user["emails"] == emails and user["displayName"] == "  spaced  "


async def test_quirk_every_response_has_id_and_scim_media_type(scim: ScimClient) -> None:
    user = await scim.create_user("a@x")
    for response in (await scim.get(f"/Users/{user['id']}"), await scim.get("/Users"), await scim.get("/Nope")):
        assert response.headers["content-type"] == "application/scim+json"
    assert all("id" in u for u in (await scim.get("/Users")).json()["Resources"])


@pytest.mark.parametrize("empty", ["", None])
async def test_quirk_empty_or_null_patch_value_clears(scim: ScimClient, empty: Any) -> None:
    user = await scim.create_user("a@x", title="Boss", name={"givenName": "A", "familyName": "B"})
    response = await scim.patch(
        f"/Users/{user['id']}",
        [{"op": "Replace", "path": "title", "value": empty}, {"op": "Replace", "path": "name.givenName", "value": empty}],
    )
    assert "title" not in response.json() and response.json()["name"] == {"familyName": "B"}


async def test_quirk_unknown_query_parameters_are_ignored(scim: ScimClient) -> None:
    response = await scim.get("/Users", params={"aadOptscim062020": "true", "filter": 'userName eq "x"'})
    assert response.status_code == 200


async def test_quirk_noop_patch_succeeds(scim: ScimClient) -> None:
    user = await scim.create_user("a@x")
    response = await scim.patch(f"/Users/{user['id']}", [{"op": "Replace", "path": "active", "value": "True"}])
    assert response.status_code == 200 and response.json()["meta"]["version"] == 'W/"1"'


async def test_quirk_add_on_active_is_accepted(scim: ScimClient) -> None:
    user = await scim.create_user("a@x")
    response = await scim.patch(f"/Users/{user['id']}", [{"op": "Add", "path": "active", "value": "False"}])
    assert response.json()["active"] is False


async def test_quirk_endpoints_in_any_case_and_with_a_trailing_slash(scim: ScimClient) -> None:
    """Microsoft's SCIM test collection asks for `/users` and `/Users/?filter=…`; ids keep their case."""
    user = await scim.create_user("case@example.com")
    group = await scim.create_group("Case")
    assert (await scim.post("/users", {"schemas": [CORE_USER], "userName": "lower@example.com"})).status_code == 201
    for path, params in [
        ("/users", {}),
        ("/Users/", {"filter": 'userName eq "case@example.com"'}),
        (f"/users/{user['id']}/", {}),
        (f"/GROUPS/{group['id']}", {}),
        ("/serviceproviderconfig", {}),
        ("/resourcetypes/user", {}),
        ("/schemas/", {}),
    ]:
        response = await scim.get(path, params=params)
        assert response.status_code == 200, (path, response.text)
    found = (await scim.get("/Users/", params={"filter": 'userName eq "case@example.com"'})).json()
    assert [r["id"] for r in found["Resources"]] == [user["id"]]
    assert (await scim.get(f"/users/{user['id'].upper()}")).status_code == 404  # ids are case-exact
    assert (await scim.get("/userz")).status_code == 404


async def test_quirk_member_as_a_bare_id_or_a_lone_object(scim: ScimClient) -> None:
    """Microsoft's SCIM test collection adds a member as `"value": "<id>"`; a lone object, bare ids in
    a list and an unknown id alongside valid ones work too: the valid ids apply, the rest are skipped."""
    a, b, c = [(await scim.create_user(f"{n}@example.com"))["id"] for n in "abc"]
    group = await scim.create_group("Members")
    for value in (a, {"value": b}, [c, "no-such-user"]):
        response = await scim.patch(f"/Groups/{group['id']}", [{"op": "add", "path": "members", "value": value}])
        assert response.status_code == 204, (value, response.text)
    members = (await scim.get(f"/Groups/{group['id']}")).json()["members"]
    assert sorted(m["value"] for m in members) == sorted([a, b, c])
    removed = await scim.patch(f"/Groups/{group['id']}", [{"op": "remove", "path": "members", "value": [a, "never-a-member"]}])
    assert removed.status_code == 204, removed.text
    assert sorted(m["value"] for m in (await scim.get(f"/Groups/{group['id']}")).json()["members"]) == sorted([b, c])
    created = await scim.post("/Groups", {"schemas": [CORE_GROUP], "displayName": "Bare", "members": b})
    assert created.status_code == 201 and [m["value"] for m in created.json()["members"]] == [b]


async def test_quirk_value_filter_in_attributes_and_excluded_attributes(scim: ScimClient) -> None:
    """Microsoft's SCIM test collection asks for `attributes=emails[type eq "work"]`: the answer carries
    the emails, narrowed to the matching elements; in `excludedAttributes` the matching ones go."""
    emails = [
        {"type": "work", "value": "w@example.com", "primary": True},
        {"type": "home", "value": "h@example.com"},
        {"type": "other", "value": "o,x@example.com"},
    ]
    user = await scim.create_user("w@example.com", emails=emails)
    path = f"/Users/{user['id']}"

    one = (await scim.get(path, params={"attributes": 'emails[type eq "work"]'})).json()
    assert one["emails"] == [emails[0]] and one["id"] == user["id"] and "userName" not in one
    listed = (await scim.get("/Users", params={"filter": f'id eq "{user["id"]}"', "attributes": 'emails[type eq "work"]'})).json()
    assert listed["Resources"][0]["emails"] == [emails[0]]
    values = (await scim.get(path, params={"attributes": 'userName,emails[type eq "work" or value co ","].value'})).json()
    assert values["userName"] == "w@example.com"
    assert values["emails"] == [{"value": "w@example.com"}, {"value": "o,x@example.com"}]
    union = (await scim.get(path, params={"attributes": 'emails[type eq "home"],emails.type'})).json()
    assert union["emails"] == [{"type": "work"}, emails[1], {"type": "other"}]
    nothing = (await scim.get(path, params={"attributes": 'userName,emails[type eq "fax"]'})).json()
    assert "emails" not in nothing and nothing["userName"] == "w@example.com"

    excluded = (await scim.get(path, params={"excludedAttributes": 'emails[type eq "work"]'})).json()
    assert excluded["emails"] == emails[1:] and excluded["userName"] == "w@example.com"
    excluded_sub = (await scim.get(path, params={"excludedAttributes": 'emails[type ne "work"].value'})).json()
    assert excluded_sub["emails"] == [emails[0], {"type": "home"}, {"type": "other"}]

    searched = await scim.post(
        "/Users/.search",
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "filter": f'id eq "{user["id"]}"',
            "attributes": ['emails[type eq "home"]'],
        },
    )
    assert searched.status_code == 200, searched.text
    assert searched.json()["Resources"][0]["emails"] == [emails[1]]

    for bad in ('emails[type eq "work"', 'emails[nope eq "x"]', 'userName[value eq "x"]', 'emails[type eq "work"].nope', "emails[type eq]"):
        response = await scim.get(path, params={"attributes": bad})
        assert response.status_code == 400, (bad, response.text)
        assert response.json()["scimType"] == "invalidFilter", bad
    assert (await scim.get(path, params={"attributes": 'nosuch[type eq "work"]'})).status_code == 200


CUSTOM = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User"


async def test_quirk_custom_extension_attribute_in_every_entra_form(scim: ScimClient) -> None:
    """Entra's "Edit attribute list" adds attributes under a custom extension URN: POST sends the
    extension object, PATCH the attribute's full path, or a path-less value keyed by that path or by
    the URN. Every form is stored, returned under the URN (named in `schemas`) and filterable."""
    created = await scim.post(
        "/Users", entra_user("cc@contoso.com", schemas=[CORE_USER, ENTERPRISE, CUSTOM], **{CUSTOM: {"costCode": "CC-1"}})
    )
    assert created.status_code == 201, created.text
    user = created.json()
    assert user[CUSTOM] == {"costCode": "CC-1"} and CUSTOM in user["schemas"]
    path = f"/Users/{user['id']}"
    for operation, expected in [
        ({"op": "Add", "path": f"{CUSTOM}:costCode", "value": "CC-7"}, {"costCode": "CC-7"}),
        ({"op": "Replace", "value": {f"{CUSTOM}:costCode": "CC-8"}}, {"costCode": "CC-8"}),
        ({"op": "Replace", "value": {CUSTOM: {"region": "EMEA"}}}, {"costCode": "CC-8", "region": "EMEA"}),
        (
            {"op": "Add", "path": f"{CUSTOM}:badges", "value": ["a", 2, True]},
            {"costCode": "CC-8", "region": "EMEA", "badges": ["a", 2, True]},
        ),
        ({"op": "Remove", "path": f"{CUSTOM}:region"}, {"costCode": "CC-8", "badges": ["a", 2, True]}),
    ]:
        response = await scim.patch(path, [operation])
        assert response.status_code == 200, (operation, response.text)
        assert response.json()[CUSTOM] == expected, operation
    assert (await scim.get(path)).json()[CUSTOM] == {"costCode": "CC-8", "badges": ["a", 2, True]}
    for filter_text in (f'{CUSTOM}:costCode eq "cc-8"', f"{CUSTOM}:costCode pr", f'{CUSTOM}:badges eq "2"'):
        assert [u["id"] for u in await scim.find("Users", filter_text)] == [user["id"]], filter_text
    assert await scim.find("Users", f'{CUSTOM}:costCode eq "CC-1"') == []
    assert await scim.find("Users", f"{CUSTOM}:region pr") == []
    projected = (await scim.get(path, params={"attributes": f"{CUSTOM}:costCode"})).json()
    assert projected[CUSTOM] == {"costCode": "CC-8"} and "userName" not in projected
    # A PUT without the extension clears it, as any attribute left out of a PUT.
    replaced = await scim.put(path, {"schemas": [CORE_USER], "userName": "cc@contoso.com"})
    assert replaced.status_code == 200 and CUSTOM not in replaced.json() and replaced.json()["schemas"] == [CORE_USER]
    assert await scim.find("Users", f"{CUSTOM}:costCode pr") == []


async def test_quirk_custom_extension_on_groups(scim: ScimClient) -> None:
    urn = "urn:ietf:params:scim:schemas:extension:Contoso:2.0:Group"
    group = await scim.create_group("Finance", **{urn: {"costCode": "F-1"}})
    assert group[urn] == {"costCode": "F-1"} and urn in group["schemas"]
    response = await scim.patch(f"/Groups/{group['id']}", [{"op": "replace", "path": f"{urn}:costCode", "value": "F-2"}])
    assert response.status_code == 204, response.text
    assert (await scim.get(f"/Groups/{group['id']}")).json()[urn] == {"costCode": "F-2"}
    assert [g["id"] for g in await scim.find("Groups", f'{urn}:costCode eq "f-2"')] == [group["id"]]
    assert await scim.find("Groups", f'{urn}:costCode eq "F-1"') == []


async def test_quirk_custom_extension_values_are_checked_for_what_no_database_stores(scim: ScimClient) -> None:
    user = await scim.create_user("nul@contoso.com")
    response = await scim.patch(f"/Users/{user['id']}", [{"op": "add", "path": f"{CUSTOM}:code", "value": "a\u0000b"}])
    assert response.status_code == 400 and response.json()["scimType"] == "invalidValue"
    too_long = f"{CUSTOM}:{'x' * 300}"
    assert (await scim.patch(f"/Users/{user['id']}", [{"op": "add", "path": too_long, "value": "v"}])).status_code == 400
    # A path into an attribute of an undefined extension names nothing it can address.
    nested = await scim.patch(f"/Users/{user['id']}", [{"op": "add", "path": f"{CUSTOM}:code.part", "value": "v"}])
    assert nested.status_code == 400 and nested.json()["scimType"] == "invalidPath"
