"""Filters run in SQL, pagination (RFC 7644 §3.4.2.4), sorting and attribute projection (§3.9)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.clients import ENTERPRISE, ScimClient


@pytest.fixture
async def people(scim: ScimClient) -> dict[str, dict[str, object]]:
    out = {}
    out["barbara"] = await scim.create_user(
        "bjensen@example.com",
        externalId="ext-1",
        name={"familyName": "Jensen", "givenName": "Barbara"},
        displayName="Babs",
        title="Tour Guide",
        emails=[{"value": "bjensen@contoso.com", "type": "work", "primary": True}, {"value": "babs@home.org", "type": "home"}],
        addresses=[{"type": "work", "streetAddress": "1 Plaza", "locality": "Hollywood"}],
        **{ENTERPRISE: {"department": "Tours", "employeeNumber": "17"}},
    )
    out["jim"] = await scim.create_user(
        "jim@example.com",
        name={"familyName": "Jones", "givenName": "Jim"},
        emails=[{"value": "jim@fabrikam.com", "type": "work"}],
        phoneNumbers=[{"value": "+1 555", "type": "mobile"}],
        active=False,
    )
    out["zed"] = await scim.create_user("zed@example.com", title="Tour_Guide%")
    return out


@pytest.mark.parametrize(
    ("filter_text", "expected"),
    [
        ('userName eq "BJENSEN@example.com"', ["barbara"]),
        ('userName ne "bjensen@example.com"', ["jim", "zed"]),
        ('userName co "ensen"', ["barbara"]),
        ('userName sw "j"', ["jim"]),
        ('userName ew "@EXAMPLE.COM"', ["barbara", "jim", "zed"]),
        ('userName gt "jim@example.com"', ["zed"]),
        ('userName ge "jim@example.com"', ["jim", "zed"]),
        ('userName lt "jim@example.com"', ["barbara"]),
        ('userName le "jim@example.com"', ["barbara", "jim"]),
        ("title pr", ["barbara", "zed"]),
        ("not (title pr)", ["jim"]),
        ('title eq "tour_guide%"', ["zed"]),  # LIKE wildcards in values are literal
        ('title co "_"', ["zed"]),
        ('name.familyName sw "J" and name.givenName eq "jim"', ["jim"]),
        ('name.FamilyName eq "jensen" or active eq false', ["barbara", "jim"]),
        ("active eq true", ["barbara", "zed"]),
        ("active ne true", ["jim"]),  # ne on a boolean is "not equal", as for any other type
        ("active ne false", ["barbara", "zed"]),
        ('emails[type eq "work" and value co "@contoso.com"]', ["barbara"]),
        ('emails[type eq "home" and value co "@contoso.com"]', []),
        ('emails.value eq "JIM@fabrikam.com"', ["jim"]),
        ('emails eq "babs@home.org"', ["barbara"]),
        ('emails.Value ew ".org"', ["barbara"]),
        ('phoneNumbers[type eq "mobile"]', ["jim"]),
        ("phoneNumbers pr", ["jim"]),
        ('addresses[type eq "work"].streetAddress eq "1 Plaza"' if False else 'addresses.locality eq "hollywood"', ["barbara"]),
        (f'{ENTERPRISE}:department eq "tours"', ["barbara"]),
        (f'{ENTERPRISE.upper()}:EMPLOYEENUMBER eq "17"', ["barbara"]),
        ('urn:ietf:params:scim:schemas:core:2.0:User:userName eq "zed@example.com"', ["zed"]),
        ('externalId eq "ext-1"', ["barbara"]),
        ('externalId eq "EXT-1"', []),  # externalId is caseExact
        ('meta.resourceType eq "User"', ["barbara", "jim", "zed"]),
        ("not (not (active eq true))", ["barbara", "zed"]),
    ],
)
async def test_filters(scim: ScimClient, people: dict[str, dict[str, object]], filter_text: str, expected: list[str]) -> None:
    found = await scim.find("Users", filter_text)
    ids = {str(p["id"]): name for name, p in people.items()}
    assert sorted(ids[str(u["id"])] for u in found) == expected


async def test_meta_timestamps_compare(scim: ScimClient, people: dict[str, dict[str, object]]) -> None:
    created = people["jim"]["meta"]["created"]  # type: ignore[index]
    after = await scim.find("Users", f'meta.created gt "{created}"')
    assert [u["id"] for u in after] == [people["zed"]["id"]]
    assert len(await scim.find("Users", f'meta.Created ge "{created}"')) == 2
    assert len(await scim.find("Users", 'meta.lastModified lt "2000-01-01T00:00:00Z"')) == 0


async def test_id_filter(scim: ScimClient, people: dict[str, dict[str, object]]) -> None:
    assert [u["id"] for u in await scim.find("Users", f'id eq "{people["jim"]["id"]}"')] == [people["jim"]["id"]]


@pytest.mark.parametrize(
    "filter_text",
    [
        'shoeSize eq "44"',
        'userName eq "a" and nope pr',
        "userName xx 1",
        'emails[shoe eq "x"]',
        'active co "t"',
        'active eq "maybe"',
        'meta.created gt "yesterday"',
        'name eq "x"',
        "(((",
        'urn:unknown:schema:attr eq "x"',
    ],
)
async def test_bad_filters_are_400_invalid_filter(scim: ScimClient, filter_text: str) -> None:
    response = await scim.get("/Users", params={"filter": filter_text})
    assert response.status_code == 400, response.text
    assert response.json()["scimType"] == "invalidFilter"


async def test_filter_with_no_match_is_an_empty_list_never_404(scim: ScimClient) -> None:
    response = await scim.get("/Users", params={"filter": 'userName eq "nobody"'})
    assert response.status_code == 200
    assert response.json() == {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": 0,
        "itemsPerPage": 0,
        "startIndex": 1,
        "Resources": [],
    }


async def test_pagination_echoes_start_index_and_reports_all_matches(scim: ScimClient) -> None:
    for i in range(12):
        await scim.create_user(f"user{i:02}@x")
    seen = []
    start = 1
    while True:
        page = (await scim.get("/Users", params={"startIndex": str(start), "count": "5", "sortBy": "userName"})).json()
        assert page["startIndex"] == start
        assert page["totalResults"] == 12
        seen += [u["userName"] for u in page["Resources"]]
        if page["itemsPerPage"] < 5:
            break
        start += 5
    assert seen == [f"user{i:02}@x" for i in range(12)]


async def test_pagination_edges(scim: ScimClient) -> None:
    for i in range(3):
        await scim.create_user(f"u{i}@x")
    only_total = (await scim.get("/Users", params={"count": "0"})).json()
    assert (only_total["totalResults"], only_total["itemsPerPage"], only_total["Resources"]) == (3, 0, [])
    past_end = (await scim.get("/Users", params={"startIndex": "10"})).json()
    assert (past_end["totalResults"], past_end["Resources"], past_end["startIndex"]) == (3, [], 10)
    below_one = (await scim.get("/Users", params={"startIndex": "-4", "count": "-1"})).json()
    assert (below_one["startIndex"], below_one["itemsPerPage"]) == (1, 0)
    capped = (await scim.get("/Users", params={"count": "100000"})).json()
    assert capped["itemsPerPage"] == 3
    for bad in ({"startIndex": "one"}, {"count": "1.5"}, {"sortOrder": "sideways"}, {"sortBy": "shoeSize"}):
        response = await scim.get("/Users", params=bad)
        assert response.status_code == 400, bad
        assert response.json()["scimType"] == "invalidValue"


async def test_sorting(scim: ScimClient, people: dict[str, dict[str, object]]) -> None:
    def names(page: dict[str, Any]) -> list[str]:
        return [u["userName"] for u in page["Resources"]]

    ascending = (await scim.get("/Users", params={"sortBy": "name.familyName"})).json()
    assert names(ascending) == ["bjensen@example.com", "jim@example.com", "zed@example.com"]  # absent last
    descending = (await scim.get("/Users", params={"sortBy": "userName", "sortOrder": "descending"})).json()
    assert names(descending) == ["zed@example.com", "jim@example.com", "bjensen@example.com"]
    by_email = (await scim.get("/Users", params={"sortBy": "emails"})).json()
    assert names(by_email)[:2] == ["bjensen@example.com", "jim@example.com"]


async def test_attributes_projection_always_keeps_id_and_schemas(scim: ScimClient, people: dict[str, dict[str, object]]) -> None:
    page = (await scim.get("/Users", params={"attributes": "userName,name.givenName", "filter": 'userName sw "bj"'})).json()
    assert page["Resources"] == [
        {
            "schemas": people["barbara"]["schemas"],
            "id": people["barbara"]["id"],
            "userName": "bjensen@example.com",
            "name": {"givenName": "Barbara"},
        }
    ]
    one = (await scim.get(f"/Users/{people['barbara']['id']}", params={"attributes": f"{ENTERPRISE}:department"})).json()
    assert one[ENTERPRISE] == {"department": "Tours"}
    assert "userName" not in one


async def test_excluded_attributes(scim: ScimClient, people: dict[str, dict[str, object]]) -> None:
    one = (await scim.get(f"/Users/{people['barbara']['id']}", params={"excludedAttributes": "emails,name.givenName,id"})).json()
    assert "emails" not in one
    assert one["name"] == {"familyName": "Jensen"}
    assert one["id"] == people["barbara"]["id"]  # returned: always


async def test_search_endpoint_posts_the_same_query(scim: ScimClient, people: dict[str, dict[str, object]]) -> None:
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "filter": 'userName sw "j" or userName sw "z"',
        "attributes": ["userName"],
        "sortBy": "userName",
        "startIndex": 1,
        "count": 1,
    }
    page = (await scim.post("/Users/.search", body)).json()
    assert page["totalResults"] == 2
    assert page["Resources"] == [{"schemas": people["jim"]["schemas"], "id": people["jim"]["id"], "userName": "jim@example.com"}]


async def test_root_search_spans_users_and_groups(scim: ScimClient, people: dict[str, dict[str, object]]) -> None:
    await scim.create_group("Babs Fans")
    page = (await scim.post("/.search", {"filter": 'displayName sw "Babs"'})).json()
    assert page["totalResults"] == 2
    assert sorted(r["meta"]["resourceType"] for r in page["Resources"]) == ["Group", "User"]
    only_users = (await scim.post("/.search", {"filter": 'userName sw "zed"'})).json()
    assert only_users["totalResults"] == 1
    bad = await scim.post("/.search", {"filter": "shoeSize pr"})
    assert bad.status_code == 400 and bad.json()["scimType"] == "invalidFilter"


async def test_group_filters(scim: ScimClient, people: dict[str, dict[str, object]]) -> None:
    sales = await scim.create_group("Sales", externalId="g-1", members=[{"value": people["jim"]["id"]}])
    await scim.create_group("Support")
    assert [g["id"] for g in await scim.find("Groups", 'displayName eq "SALES"')] == [sales["id"]]
    assert [g["id"] for g in await scim.find("Groups", 'externalId eq "g-1"')] == [sales["id"]]
    assert [g["id"] for g in await scim.find("Groups", f'members[value eq "{people["jim"]["id"]}"]')] == [sales["id"]]
    assert [g["id"] for g in await scim.find("Groups", f'members.value eq "{people["jim"]["id"]}"')] == [sales["id"]]
    assert len(await scim.find("Groups", 'displayName sw "S"')) == 2
    users_in_sales = await scim.find("Users", f'groups.value eq "{sales["id"]}"')
    assert [u["id"] for u in users_in_sales] == [people["jim"]["id"]]
