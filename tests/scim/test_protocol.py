"""ETags (RFC 7644 §3.14), errors (§3.12), media types and discovery (§4)."""

from __future__ import annotations

import httpx
import pytest

from tests.support.clients import ENTERPRISE, ScimClient, Tenant


async def test_if_none_match_gives_304(scim: ScimClient) -> None:
    user = await scim.create_user("a@x")
    response = await scim.get(f"/Users/{user['id']}", headers={"If-None-Match": 'W/"1"'})
    assert response.status_code == 304
    changed = await scim.get(f"/Users/{user['id']}", headers={"If-None-Match": 'W/"0"'})
    assert changed.status_code == 200 and changed.headers["etag"] == 'W/"1"'


async def test_if_match_guards_writes(scim: ScimClient) -> None:
    user = await scim.create_user("a@x")
    stale = {"If-Match": 'W/"7"'}
    op = [{"op": "replace", "path": "title", "value": "x"}]
    for response in (
        await scim.patch(f"/Users/{user['id']}", op, headers=stale),
        await scim.put(f"/Users/{user['id']}", {"userName": "a@x"}, headers=stale),
        await scim.delete(f"/Users/{user['id']}", headers=stale),
    ):
        assert response.status_code == 412
        assert response.json()["status"] == "412"
    ok = await scim.patch(f"/Users/{user['id']}", op, headers={"If-Match": 'W/"1"'})
    assert ok.status_code == 200 and ok.headers["etag"] == 'W/"2"'
    assert (await scim.patch(f"/Users/{user['id']}", op, headers={"If-Match": "*"})).status_code == 200


async def test_group_etags(scim: ScimClient) -> None:
    group = await scim.create_group("G")
    response = await scim.patch(
        f"/Groups/{group['id']}", [{"op": "replace", "path": "displayName", "value": "H"}], headers={"If-Match": 'W/"1"'}
    )
    assert response.status_code == 204 and response.headers["etag"] == 'W/"2"'
    stale = await scim.delete(f"/Groups/{group['id']}", headers={"If-Match": 'W/"1"'})
    assert stale.status_code == 412


@pytest.mark.parametrize("body", [b"{not json", b"", b"[1, 2]", b'"string"', b"\xff\xfe"])
async def test_malformed_bodies_are_400_invalid_syntax(scim: ScimClient, body: bytes) -> None:
    response = await scim.request("POST", "/Users", content=body, headers={"Content-Type": "application/scim+json"})
    assert response.status_code == 400
    assert response.json()["scimType"] == "invalidSyntax"


async def test_application_json_requests_are_accepted(scim: ScimClient) -> None:
    response = await scim.request("POST", "/Users", content=b'{"userName": "a@x"}', headers={"Content-Type": "application/json"})
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/scim+json"


async def test_unknown_endpoint_and_method(scim: ScimClient) -> None:
    missing = await scim.get("/Nope")
    assert missing.status_code == 404 and missing.json()["status"] == "404"
    wrong = await scim.request("DELETE", "/Users")
    assert wrong.status_code == 405 and "GET" in wrong.headers["allow"]


@pytest.mark.parametrize("path", ["/ServiceProviderConfig", "/ResourceTypes", "/Schemas", "/ResourceTypes/User"])
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_discovery_endpoints_are_read_only(scim: ScimClient, path: str, method: str) -> None:
    response = await scim.request(method, path, json={})
    assert response.status_code == 405
    assert response.json()["status"] == "405"


async def test_service_provider_config_advertises_what_is_implemented(scim: ScimClient) -> None:
    config = (await scim.get("/ServiceProviderConfig")).json()
    assert config["patch"]["supported"] is True
    assert config["filter"] == {"supported": True, "maxResults": 1000}
    assert config["sort"]["supported"] is True and config["etag"]["supported"] is True
    assert config["bulk"]["supported"] is False and config["changePassword"]["supported"] is False
    assert config["authenticationSchemes"][0]["type"] == "oauthbearertoken"


async def test_resource_types_and_schemas(scim: ScimClient) -> None:
    types = (await scim.get("/ResourceTypes")).json()
    assert {r["id"] for r in types["Resources"]} == {"User", "Group"}
    user_type = (await scim.get("/ResourceTypes/User")).json()
    assert user_type["schemaExtensions"] == [{"schema": ENTERPRISE, "required": False}]
    schemas = (await scim.get("/Schemas")).json()
    assert {s["id"] for s in schemas["Resources"]} == {
        "urn:ietf:params:scim:schemas:core:2.0:User",
        "urn:ietf:params:scim:schemas:core:2.0:Group",
        ENTERPRISE,
    }
    user_schema = (await scim.get("/Schemas/urn:ietf:params:scim:schemas:core:2.0:User")).json()
    by_name = {a["name"]: a for a in user_schema["attributes"]}
    assert by_name["userName"]["uniqueness"] == "server" and by_name["userName"]["caseExact"] is False
    for multi in ("emails", "phoneNumbers", "addresses"):
        type_sub = next(s for s in by_name[multi]["subAttributes"] if s["name"] == "type")
        assert {"work", "home", "other"} <= set(type_sub["canonicalValues"])
    assert "mobile" in next(s for s in by_name["phoneNumbers"]["subAttributes"] if s["name"] == "type")["canonicalValues"]
    assert by_name["groups"]["mutability"] == "readOnly"
    assert (await scim.get("/Schemas/urn:nope")).status_code == 404


async def test_discovery_needs_a_token(client: httpx.AsyncClient, tenant: Tenant) -> None:
    assert (await client.get(f"{tenant.base}/ServiceProviderConfig")).status_code == 401


async def test_no_client_mistake_produces_a_500(scim: ScimClient) -> None:
    user = await scim.create_user("a@x")
    nasty = [
        ("PATCH", f"/Users/{user['id']}", {"Operations": [{"op": "add", "path": "emails[", "value": 1}]}),
        ("PATCH", f"/Users/{user['id']}", {"Operations": [{"op": "add", "path": 5, "value": 1}]}),
        ("PATCH", f"/Users/{user['id']}", {"Operations": [{"op": "replace", "path": "name", "value": "x"}]}),
        ("PATCH", f"/Users/{user['id']}", {"Operations": [{"op": "add", "path": "emails", "value": ["x"]}]}),
        ("PATCH", f"/Users/{user['id']}", {"Operations": [{"op": "add", "value": {"emails": "x"}}]}),
        ("PATCH", f"/Users/{user['id']}", {"Operations": [{"op": "replace", "path": "userName", "value": None}]}),
        ("PATCH", f"/Users/{user['id']}", {"Operations": [{"op": "replace", "path": "userName", "value": "x" * 300}]}),
        ("POST", "/Users", {"userName": "b@x", ENTERPRISE: "not an object"}),
        ("POST", "/Users", {"userName": "b@x", "emails": [{"value": {"nested": True}}]}),
        ("POST", "/Users", {"userName": "\u0000"}),
        ("POST", "/Groups", {"displayName": "x" * 300}),
        ("POST", "/Groups", {"displayName": "G", "members": "everyone"}),
        ("POST", "/Users/.search", {"filter": 12}),
        ("POST", "/Users/.search", {"attributes": 12}),
        ("GET", "/Users?filter=" + "(" * 5000, None),
    ]
    for method, path, body in nasty:
        response = await scim.request(method, path, json=body)
        assert response.status_code < 500, (method, path, body, response.text)
        assert response.headers["content-type"].startswith("application/scim+json")


async def test_nul_characters_are_a_client_error(scim: ScimClient) -> None:
    assert (await scim.post("/Users", {"userName": "a\u0000b"})).status_code == 400
    assert (await scim.get("/Users", params={"filter": 'userName eq "a\u0000"'})).status_code == 400
    assert (await scim.get("/Users/abc%00def")).status_code == 404
    assert (await scim.request("GET", "/Users/a%0Ab")).json()["status"] == "404"  # a newline the router cannot match
