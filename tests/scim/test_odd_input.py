"""Odd but well-formed input gets a specific 400 (or is simply stored), never a 500, on both databases:
NUL characters and lone UTF-16 surrogates inside filter string literals, values whose lower-cased
form is longer than the value, and over-long manager ids."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.clients import ENTERPRISE, ScimClient


@pytest.mark.parametrize(
    ("resource", "filter_text"),
    [
        ("Users", 'userName eq "a\\u0000b"'),  # the JSON escape inside the filter's string literal
        ("Users", 'userName eq "a\x00b"'),  # the character itself (%00 in the URL)
        ("Users", 'displayName co "\\u0000"'),
        ("Users", 'emails[value eq "x\\u0000@example.com"]'),
        ("Groups", 'displayName eq "G\\u0000"'),
    ],
)
async def test_a_nul_in_a_filter_is_invalid_filter(scim: ScimClient, resource: str, filter_text: str) -> None:
    await scim.create_user("a@example.com", displayName="A")
    response = await scim.get(f"/{resource}", params={"filter": filter_text})
    assert response.status_code == 400, response.text
    assert response.json()["scimType"] == "invalidFilter"
    assert "NUL" in response.json()["detail"]


async def test_a_nul_in_a_search_body_filter_is_invalid_filter(scim: ScimClient) -> None:
    for path in ("/Users/.search", "/.search"):
        response = await scim.post(
            path, {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": 'userName eq "a\\u0000b"'}
        )
        assert response.status_code == 400, response.text
        assert response.json()["scimType"] == "invalidFilter"


@pytest.mark.parametrize(
    ("resource", "filter_text", "code_point"),
    [
        ("Users", 'userName eq "\\ud800"', "U+D800"),
        ("Users", 'displayName co "x\\udfff"', "U+DFFF"),
        ("Users", 'emails[type eq "\\udc00"]', "U+DC00"),
        ("Groups", 'displayName sw "\\ud83d"', "U+D83D"),  # the first half of a pair, alone
    ],
)
async def test_a_lone_surrogate_in_a_filter_is_invalid_filter(scim: ScimClient, resource: str, filter_text: str, code_point: str) -> None:
    response = await scim.get(f"/{resource}", params={"filter": filter_text})
    assert response.status_code == 400, response.text
    assert response.json()["scimType"] == "invalidFilter"
    assert code_point in response.json()["detail"]


async def test_a_surrogate_pair_in_a_filter_is_the_character_it_encodes(scim: ScimClient) -> None:
    user = await scim.create_user("smile@example.com", displayName="Smile 😀")
    assert [u["id"] for u in await scim.find("Users", 'displayName eq "SMILE \\ud83d\\ude00"')] == [user["id"]]


async def test_a_lone_surrogate_in_a_patch_path_filter_is_refused_and_changes_nothing(scim: ScimClient) -> None:
    """`add` with `emails[type eq "…"]` creates the element the filter describes: the surrogate would
    have been written to the database."""
    user = await scim.create_user("a@example.com", emails=[{"value": "a@example.com", "type": "work"}])
    response = await scim.patch(
        f"/Users/{user['id']}", [{"op": "add", "path": 'emails[type eq "\\ud800"].value', "value": "b@example.com"}]
    )
    assert response.status_code == 400, response.text
    assert response.json()["scimType"] == "invalidPath"
    assert "U+D800" in response.json()["detail"]
    after = (await scim.get(f"/Users/{user['id']}")).json()
    assert after["emails"] == user["emails"] and after["meta"]["version"] == user["meta"]["version"]


# "İ" lower-cases to two characters ("i" + U+0307), so these lower-cased copies are twice as long.
LONGEST_USER_NAME = "İ" * 255 + "A"


async def test_user_names_that_grow_when_lower_cased_are_stored_and_found(scim: ScimClient) -> None:
    email = "İ" * 250 + "@x.io"  # its lower-cased copy is 505 characters
    user = await scim.create_user(LONGEST_USER_NAME, displayName="İ" * 300, emails=[{"value": email, "primary": True}])
    assert user["userName"] == LONGEST_USER_NAME
    assert [u["id"] for u in await scim.find("Users", f'userName eq "{LONGEST_USER_NAME.lower()}"')] == [user["id"]]
    assert [u["id"] for u in await scim.find("Users", f'emails.value eq "{email.upper()}"')] == [user["id"]]
    assert [u["id"] for u in await scim.find("Users", 'displayName eq "iii" or displayName sw "İİİ"', sortBy="emails")] == [user["id"]]
    duplicate = await scim.post("/Users", {"userName": "İ" * 255 + "a"})
    assert duplicate.status_code == 409, duplicate.text


async def test_user_name_replaced_by_one_that_grows_when_lower_cased(scim: ScimClient) -> None:
    user = await scim.create_user("plain@example.com")
    response = await scim.patch(f"/Users/{user['id']}", [{"op": "replace", "path": "userName", "value": "İ" * 200}])
    assert response.status_code == 200, response.text
    assert (await scim.get(f"/Users/{user['id']}")).json()["userName"] == "İ" * 200


async def test_group_names_that_grow_when_lower_cased_are_stored_and_found(scim: ScimClient) -> None:
    group = await scim.create_group("İ" * 256)
    assert [g["id"] for g in await scim.find("Groups", f'displayName eq "{"İ" * 256}"')] == [group["id"]]
    renamed = await scim.patch(f"/Groups/{group['id']}", [{"op": "replace", "path": "displayName", "value": "İ" * 200 + " Team"}])
    assert renamed.status_code == 204, renamed.text


LONG_ID = "m" * 300


@pytest.mark.parametrize("manager", [LONG_ID, {"value": LONG_ID}, [{"value": LONG_ID}]])
async def test_a_manager_id_longer_than_any_id_is_400_and_nothing_is_created(scim: ScimClient, manager: Any) -> None:
    response = await scim.post("/Users", {"userName": "a@example.com", ENTERPRISE: {"manager": manager}})
    assert response.status_code == 400, response.text
    assert response.json()["scimType"] == "invalidValue"
    assert "manager" in response.json()["detail"] and "256" in response.json()["detail"]
    assert await scim.find("Users", 'userName eq "a@example.com"') == []


async def test_a_manager_id_longer_than_any_id_in_a_patch_changes_nothing(scim: ScimClient) -> None:
    user = await scim.create_user("a@example.com")
    response = await scim.patch(f"/Users/{user['id']}", [{"op": "Add", "path": f"{ENTERPRISE}:manager", "value": LONG_ID}])
    assert response.status_code == 400, response.text
    after = (await scim.get(f"/Users/{user['id']}")).json()
    assert ENTERPRISE not in after and after["meta"]["version"] == user["meta"]["version"]


async def test_a_manager_id_of_the_longest_stored_length_is_kept(scim: ScimClient) -> None:
    user = await scim.create_user("a@example.com", **{ENTERPRISE: {"manager": "m" * 256}})
    assert user[ENTERPRISE]["manager"]["value"] == "m" * 256  # type: ignore[index]
