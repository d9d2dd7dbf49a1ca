"""Request bodies a JSON library would accept, or choke on, are 400s with a specific message and no
traceback: deep nesting, huge numbers, NaN, duplicate keys, lone surrogates, wrong encodings and
media types — for SCIM and GraphQL, and GraphQL authenticates before it looks at the body."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from app.jsonbody import MAX_DEPTH
from tests.support.clients import CORE_USER, Tenant

SCIM_JSON = {"Content-Type": "application/scim+json"}
DEEP = "[" * 500 + "]" * 500
QUERY = "query($v: JSON) { users(first: 1) { totalCount } }"


def _assert_clean(caplog: pytest.LogCaptureFixture, response: httpx.Response) -> None:
    assert "Traceback" not in response.text
    assert [r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR] == []


async def _scim_post(client: httpx.AsyncClient, tenant: Tenant, body: bytes, headers: dict[str, str] = SCIM_JSON) -> httpx.Response:
    return await client.post(f"{tenant.base}/Users", content=body, headers={**tenant.headers, **headers})


def _user(**extra: object) -> str:
    return json.dumps({"schemas": [CORE_USER], "userName": "x@example.com", **extra})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_user(nested="@").replace('"@"', DEEP).encode(), f"nests deeper than {MAX_DEPTH} levels"),
        (_user(title="@").replace('"@"', "9" * 5000).encode(), "a number of 5000 characters"),
        (_user(title="@").replace('"@"', "1e999").encode(), "out of range"),
        (_user(title="@").replace('"@"', "NaN").encode(), "NaN is not a JSON value"),
        (b'{"userName": "a@example.com", "userName": "b@example.com"}', "the key 'userName' more than once"),
        (b'{"userName": "a@example.com", "USERNAME": "b@example.com"}', "keys are case-insensitive"),
        (_user(title="@").replace('"@"', '"\\ud800"').encode(), "lone UTF-16 surrogate"),
        (_user(title="@").replace('"@"', '"\\udc00x"').encode(), "lone UTF-16 surrogate"),
        ('{"userName": "caf\u00e9"}'.encode("latin-1"), "is not UTF-8"),
        (b"", "is empty"),
        (b'{"userName": ', "is not valid JSON"),
    ],
    ids=[
        "nesting-500",
        "digits-5000",
        "float-overflow",
        "nan",
        "duplicate-key",
        "duplicate-key-case",
        "lone-high-surrogate",
        "lone-low-surrogate",
        "latin-1",
        "empty",
        "truncated",
    ],
)
async def test_scim_refuses_hostile_json_with_400(
    body: bytes, message: str, client: httpx.AsyncClient, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    response = await _scim_post(client, tenant, body)
    assert response.status_code == 400, response.text
    assert response.json()["scimType"] == "invalidSyntax"
    assert message in response.json()["detail"]
    _assert_clean(caplog, response)
    assert (await client.get(f"{tenant.base}/Users", headers=tenant.headers)).json()["totalResults"] == 0


async def test_a_proper_surrogate_pair_is_a_character(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await _scim_post(client, tenant, _user(displayName="@").replace('"@"', '"\\ud83d\\ude00"').encode())
    assert response.status_code == 201, response.text
    assert response.json()["displayName"] == "\U0001f600"


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", "application/scim+json; charset=utf-16", ""]
)
async def test_scim_refuses_other_media_types_with_415(content_type: str, client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await _scim_post(client, tenant, _user().encode(), {"Content-Type": content_type} if content_type else {})
    assert response.status_code == 415, response.text
    assert response.json()["status"] == "415"


@pytest.mark.parametrize(
    "content_type", ["application/scim+json", "application/json", "application/scim+json; charset=UTF-8", "Application/JSON"]
)
async def test_scim_accepts_both_json_media_types(content_type: str, client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await _scim_post(client, tenant, _user().encode(), {"Content-Type": content_type})
    assert response.status_code == 201, response.text


async def test_graphql_authenticates_before_reading_the_body(client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    """Before: variables nested 500 deep were a RecursionError and a 131 KB traceback, without a token."""
    body = json.dumps({"query": QUERY, "variables": {"v": "@"}}).replace('"@"', DEEP)
    response = await client.post("/graphql", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 401
    _assert_clean(caplog, response)


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ('{"v": ' + DEEP + "}", f"nests deeper than {MAX_DEPTH} levels"),
        ('{"v": ' + "7" * 5000 + "}", "a number of 5000 characters"),
        ('{"v": "\\udfff"}', "lone UTF-16 surrogate"),
        ('{"v": 1, "v": 2}', "the key 'v' more than once"),
    ],
    ids=["nesting-500", "digits-5000", "lone-surrogate", "duplicate-key"],
)
async def test_graphql_refuses_hostile_json_with_400(
    variables: str, message: str, client: httpx.AsyncClient, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    body = '{"query": %s, "variables": %s}' % (json.dumps(QUERY), variables)
    response = await client.post("/graphql", content=body, headers={**tenant.headers, "Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    error = response.json()["errors"][0]
    assert message in error["message"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    _assert_clean(caplog, response)


async def test_graphql_keys_differing_in_case_are_distinct(client: httpx.AsyncClient, tenant: Tenant) -> None:
    """Only SCIM folds key case (its attribute names are case-insensitive); GraphQL names are not."""
    body = '{"query": "{ users(first: 1) { totalCount } }", "variables": {"a": 1, "A": 2}}'
    response = await client.post("/graphql", content=body, headers={**tenant.headers, "Content-Type": "application/json"})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"query": "query A { viewer { accountName } }", "operationName": "B"}, 'Unknown operation named "B".'),
        ({"variables": {}}, "No GraphQL query found in the request"),
    ],
    ids=["unknown-operation-name", "no-query"],
)
async def test_graphql_operation_it_cannot_choose_is_a_json_400(
    payload: dict[str, object], message: str, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """As GraphiQL sends when its editor changed faster than it noticed: an error body, in JSON like the rest."""
    response = await client.post("/graphql", json=payload, headers=tenant.headers)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert message in error["message"]


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        ({"query": "{ viewer { accountName } }"}, "text/plain", "Unsupported content type"),
        ({"query": 7}, "application/json", "`query` must be a string or null"),
        ({"query": "{ viewer { accountName } }", "variables": [1]}, "application/json", "`variables` must be an object or null"),
        ({"query": "{ viewer { accountName } }", "extensions": "x"}, "application/json", "`extensions` must be an object or null"),
    ],
    ids=["not-json-by-content-type", "query-not-a-string", "variables-not-an-object", "extensions-not-an-object"],
)
async def test_graphql_request_of_the_wrong_shape_is_a_json_400(
    body: dict[str, object], content_type: str, message: str, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    response = await client.post("/graphql", content=json.dumps(body), headers={**tenant.headers, "Content-Type": content_type})
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and message in error["message"]


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_graphql_other_than_post_is_405(method: str, client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.request(method, "/graphql", headers={**tenant.headers, "Accept": "*/*"})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert response.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"
