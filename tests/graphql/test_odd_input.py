"""Odd but well-formed GraphQL input: refusals that name a very long id or one holding NUL are typed
results and are audited; string literals holding a lone surrogate are syntax errors that run nothing."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.support.clients import GraphQLClient, make_tenant

DENIED = "query { auditEvents(filter: {outcome: DENIED}) { totalCount nodes { action resourceType resourceId detail } } }"
REFUSALS = {
    "deleteUser": (
        'mutation { r: deleteUser(input: {id: "%s"}) { __typename ... on PermissionDeniedError { permission } } }',
        "user.delete",
        "User",
    ),
    "updateUser": (
        'mutation { r: updateUser(input: {id: "%s", name: "N"}) { __typename ... on PermissionDeniedError { permission } } }',
        "user.update",
        "User",
    ),
    "deleteUserGroup": (
        'mutation { r: deleteUserGroup(input: {id: "%s"}) { __typename ... on PermissionDeniedError { permission } } }',
        "group.delete",
        "UserGroup",
    ),
    "addUsersToUserGroup": (
        'mutation { r: addUsersToUserGroup(input: {userGroupId: "%s", userIds: []}) { __typename ... on '
        "PermissionDeniedError { permission } } }",
        "group.members",
        "UserGroup",
    ),
}


@pytest.fixture
async def reader(client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]) -> GraphQLClient:
    return GraphQLClient(client, await make_tenant(sessionmaker, "acme", ["users:read", "groups:read"]))


@pytest.mark.parametrize("mutation", sorted(REFUSALS))
@pytest.mark.parametrize(("given_id", "recorded_id"), [("x" * 300, "x" * 256), ("a\\u0000b", "a\ufffdb")], ids=["300 characters", "NUL"])
async def test_a_refusal_naming_an_odd_id_is_typed_and_audited(
    reader: GraphQLClient, gql: GraphQLClient, mutation: str, given_id: str, recorded_id: str
) -> None:
    document, action, resource_type = REFUSALS[mutation]
    result = (await reader(document % given_id))["r"]
    assert result["__typename"] == "PermissionDeniedError" and result["permission"].endswith(":write")
    events = (await gql(DENIED))["auditEvents"]
    assert events["totalCount"] == 1
    assert events["nodes"][0]["action"] == action and events["nodes"][0]["resourceType"] == resource_type
    assert events["nodes"][0]["resourceId"] == recorded_id


@pytest.mark.parametrize(
    "document",
    [
        'mutation { createUserGroup(input: {name: "\\ud800"}) { __typename } }',
        'mutation { createUser(input: {email: "a@x.com", name: "A \\udfff"}) { __typename } }',
        'query { users(filter: {search: "\\ud83d"}) { totalCount } }',
        'query { userByEmail(email: "\\ud800@x.com") { id } }',
    ],
)
async def test_a_lone_surrogate_in_a_string_literal_is_a_syntax_error_and_runs_nothing(gql: GraphQLClient, document: str) -> None:
    body = (await gql.raw(document)).json()
    assert body["data"] is None
    assert "Invalid Unicode escape sequence" in body["errors"][0]["message"]
    counts = await gql("query { users { totalCount } userGroups { totalCount } auditEvents { totalCount } }")
    assert counts == {"users": {"totalCount": 0}, "userGroups": {"totalCount": 0}, "auditEvents": {"totalCount": 0}}
