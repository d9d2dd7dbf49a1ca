"""Defects found by schemathesis and scim2-tester, each pinned by a test."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.clients import ENTERPRISE, ScimClient


async def test_nul_in_an_ignored_attribute_is_not_an_error(scim: ScimClient) -> None:
    response = await scim.post("/Users", {"userName": "a@x", "x-unknown\u0000": "y\u0000"})
    assert response.status_code == 201


@pytest.mark.parametrize("params", [{"filter": ""}, {"sortOrder": ""}, {"count": ""}, {"startIndex": ""}])
async def test_empty_list_parameters_are_400(scim: ScimClient, params: dict[str, str]) -> None:
    assert (await scim.get("/Users", params=params)).status_code == 400


@pytest.mark.parametrize("body", [{"sortOrder": {}}, {"count": 2.5}, {"startIndex": True}, {"schemas": [{}]}, {"schemas": "x"}])
async def test_malformed_search_requests_are_400(scim: ScimClient, body: dict[str, Any]) -> None:
    assert (await scim.post("/Users/.search", body)).status_code == 400


async def test_integral_floats_are_integers(scim: ScimClient) -> None:
    assert (await scim.post("/Users/.search", {"count": 2.0})).status_code == 200


# A bare id and a lone member object are accepted (test_quirk_member_as_a_bare_id_or_a_lone_object).
@pytest.mark.parametrize("members", [[{"value": ""}], [{}], [""], 5, [5], {"value": 5}, [{"value": 5}]])
async def test_malformed_members_are_400(scim: ScimClient, members: Any) -> None:
    assert (await scim.post("/Groups", {"displayName": "G", "members": members})).status_code == 400


async def test_null_members_are_dropped(scim: ScimClient) -> None:
    assert (await scim.post("/Groups", {"displayName": "G", "members": [None, None]})).status_code == 201


@pytest.mark.parametrize("manager", [["a", "b"], [{"value": "a"}, {"value": "b"}], {"value": False}, {"value": "a", "$ref": {}}, ["a"]])
async def test_malformed_managers_are_400(scim: ScimClient, manager: Any) -> None:
    assert (await scim.post("/Users", {"userName": "a@x", ENTERPRISE: {"manager": manager}})).status_code == 400


@pytest.mark.parametrize("external_id", [[], {}, 5, [None, None]])
async def test_group_external_id_must_be_a_string(scim: ScimClient, external_id: Any) -> None:
    assert (await scim.post("/Groups", {"displayName": "G", "externalId": external_id})).status_code == 400


@pytest.mark.parametrize("name", ["\x1e", "\u3000 ", "\t"])
async def test_blank_means_the_same_everywhere(scim: ScimClient, name: str) -> None:
    # Python's str.strip() also strips \x1c-\x1f; the OpenAPI pattern (ECMAScript \s) does not.
    status = (await scim.post("/Groups", {"displayName": name})).status_code
    assert status == (201 if name == "\x1e" else 400)


async def test_add_and_replace_need_a_value(scim: ScimClient) -> None:
    user = await scim.create_user("a@x", title="T")
    response = await scim.patch(f"/Users/{user['id']}", [{"op": "add", "path": "title"}])
    assert response.status_code == 400 and response.json()["scimType"] == "invalidSyntax"


@pytest.mark.parametrize("value", [{}, {"value": "x"}, "x@y"])
async def test_multi_valued_attributes_take_lists(scim: ScimClient, value: Any) -> None:
    user = await scim.create_user("a@x")
    response = await scim.patch(f"/Users/{user['id']}", [{"op": "add", "path": "x509Certificates", "value": value}])
    assert response.status_code == 400


async def test_unknown_key_in_a_pathless_value_is_invalid_path(scim: ScimClient) -> None:
    user = await scim.create_user("a@x")
    response = await scim.patch(f"/Users/{user['id']}", [{"op": "replace", "value": {"shoeSize": "44"}}])
    assert response.status_code == 400 and response.json()["scimType"] == "invalidPath"


async def test_values_are_checked_before_a_later_key_overwrites_them(scim: ScimClient) -> None:
    user = await scim.create_user("a@x")
    bad_then_good = {ENTERPRISE: {"department": {}}, f"{ENTERPRISE}:department": ""}
    assert (await scim.patch(f"/Users/{user['id']}", [{"op": "add", "value": bad_then_good}])).status_code == 400
    nul_then_good = {"name": {"givenName": "a\u0000"}, "name.givenName": "ok"}
    assert (await scim.patch(f"/Users/{user['id']}", [{"op": "add", "value": nul_then_good}])).status_code == 400
    bad_primary = [{"value": "", "primary": "\u0084"}]
    assert (await scim.patch(f"/Users/{user['id']}", [{"op": "add", "path": "x509Certificates", "value": bad_primary}])).status_code == 400


async def test_extension_objects_may_echo_schemas(scim: ScimClient) -> None:
    user = await scim.create_user("a@x")
    value = {"schemas": [ENTERPRISE], "department": "R&D"}
    response = await scim.patch(f"/Users/{user['id']}", [{"op": "add", "path": ENTERPRISE, "value": value}])
    assert response.status_code == 200 and response.json()[ENTERPRISE] == {"department": "R&D"}


async def test_malformed_body_is_400_before_a_stale_if_match_is_412(scim: ScimClient) -> None:
    user = await scim.create_user("a@x")
    response = await scim.patch(f"/Users/{user['id']}", [{"op": "add", "path": "shoeSize", "value": 1}], headers={"If-Match": 'W/"9"'})
    assert response.status_code == 400
