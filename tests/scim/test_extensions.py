"""Custom schema extensions: the first time an account receives an attribute of one, it is recorded
once, with an `extension.discovered` audit event naming it; an extension the admin declares is
advertised in /Schemas and /ResourceTypes, and its attributes' values are type-checked."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import AuditEvent, ExtensionAttribute
from tests.support.clients import CORE_USER, GraphQLClient, ScimClient, Tenant, make_tenant

CUSTOM = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User"


async def _discovered(sessionmaker: async_sessionmaker[AsyncSession]) -> list[str]:
    async with sessionmaker() as session:
        events = await session.scalars(select(AuditEvent).where(AuditEvent.action == "extension.discovered").order_by(AuditEvent.id))
        return [str(e.resource_id) for e in events]


async def test_each_new_extension_attribute_is_announced_once(scim: ScimClient, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    a = await scim.post("/Users", {"schemas": [CORE_USER, CUSTOM], "userName": "a@x.com", CUSTOM: {"costCode": "1"}})
    b = await scim.post("/Users", {"schemas": [CORE_USER, CUSTOM], "userName": "b@x.com", CUSTOM: {"CostCode": "2"}})
    assert a.status_code == b.status_code == 201
    assert await _discovered(sessionmaker) == [f"{CUSTOM}:costCode"]  # names are case-insensitive
    await scim.patch(f"/Users/{a.json()['id']}", [{"op": "add", "path": f"{CUSTOM}:region", "value": "EMEA"}])
    await scim.patch(f"/Users/{a.json()['id']}", [{"op": "replace", "path": f"{CUSTOM}:region", "value": "APAC"}])
    group_urn = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:Group"
    await scim.create_group("G", **{group_urn: {"costCode": "g"}})
    assert await _discovered(sessionmaker) == [f"{CUSTOM}:costCode", f"{CUSTOM}:region", f"{group_urn}:costCode"]
    async with sessionmaker() as session:
        recorded = {(r.resource_type, r.name) for r in await session.scalars(select(ExtensionAttribute))}
    assert recorded == {("User", "costCode"), ("User", "region"), ("Group", "costCode")}


async def test_a_refused_write_announces_nothing(scim: ScimClient, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    await scim.create_user("taken@x.com")
    refused = await scim.post("/Users", {"schemas": [CORE_USER, CUSTOM], "userName": "taken@x.com", CUSTOM: {"costCode": "1"}})
    assert refused.status_code == 409
    assert await _discovered(sessionmaker) == []


DECLARE = """mutation($input: SchemaExtensionInput!) {
  declareSchemaExtension(input: $input) {
    __typename
    ... on SchemaExtension { id resourceType attributes { name type multiValued required } }
    ... on Error { message }
  }
}"""
DECLARED = {
    "id": CUSTOM,
    "name": "CostCodes",
    "attributes": [
        {"name": "costCode", "required": True},
        {"name": "level", "type": "integer"},
        {"name": "remote", "type": "boolean"},
        {"name": "badges", "multiValued": True},
        {"name": "since", "type": "dateTime"},
    ],
}


@pytest.fixture
def gql(client: httpx.AsyncClient, tenant: Tenant) -> GraphQLClient:
    return GraphQLClient(client, tenant)


async def test_a_declared_extension_is_advertised_in_schemas_and_resource_types(scim: ScimClient, gql: GraphQLClient) -> None:
    declared = (await gql(DECLARE, input=DECLARED))["declareSchemaExtension"]
    assert declared["__typename"] == "SchemaExtension" and declared["resourceType"] == "User"
    assert [a["name"] for a in declared["attributes"]] == ["costCode", "level", "remote", "badges", "since"]
    listed = (await scim.get("/Schemas")).json()
    assert CUSTOM in [s["id"] for s in listed["Resources"]]
    one = (await scim.get(f"/Schemas/{CUSTOM}")).json()
    assert one["name"] == "CostCodes"
    assert {a["name"]: (a["type"], a["multiValued"], a["required"]) for a in one["attributes"]} == {
        "costCode": ("string", False, True),
        "level": ("integer", False, False),
        "remote": ("boolean", False, False),
        "badges": ("string", True, False),
        "since": ("dateTime", False, False),
    }
    user_type = (await scim.get("/ResourceTypes/User")).json()
    assert {"schema": CUSTOM, "required": False} in user_type["schemaExtensions"]
    group_type = (await scim.get("/ResourceTypes/Group")).json()
    assert CUSTOM not in [e["schema"] for e in group_type.get("schemaExtensions", [])]
    assert [e["id"] for e in (await gql("{ schemaExtensions { id } }"))["schemaExtensions"]] == [CUSTOM]


async def test_values_of_a_declared_extension_are_type_checked(
    scim: ScimClient, gql: GraphQLClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await gql(DECLARE, input=DECLARED)
    good = {"costCode": "CC-1", "level": 3, "remote": "True", "badges": ["a"], "since": "2026-01-02T03:04:05Z"}
    created = await scim.post("/Users", {"schemas": [CORE_USER, CUSTOM], "userName": "t@x.com", CUSTOM: good})
    assert created.status_code == 201, created.text
    assert created.json()[CUSTOM]["remote"] is True  # Entra's "True", stored as the boolean it declares
    path = f"/Users/{created.json()['id']}"
    for attribute, value in [
        ("level", "high"),
        ("level", True),
        ("remote", "maybe"),
        ("badges", "a"),
        ("costCode", ["a"]),
        ("since", "soon"),
    ]:
        response = await scim.patch(path, [{"op": "replace", "path": f"{CUSTOM}:{attribute}", "value": value}])
        assert response.status_code == 400, (attribute, value, response.text)
        assert response.json()["scimType"] == "invalidValue" and f"{CUSTOM}:{attribute}" in response.json()["detail"]
    async with sessionmaker() as session:
        announced = await session.scalars(select(AuditEvent).where(AuditEvent.action == "extension.discovered"))
        assert list(announced) == []  # a declared extension is known: nothing to announce
    missing = await scim.post("/Users", {"schemas": [CORE_USER, CUSTOM], "userName": "m@x.com", CUSTOM: {"level": 1}})
    assert missing.status_code == 400 and f"{CUSTOM}:costCode is required" in missing.json()["detail"]
    # An attribute the declaration does not name is kept as sent, as for an undeclared extension.
    extra = await scim.patch(path, [{"op": "add", "path": f"{CUSTOM}:region", "value": "EMEA"}])
    assert extra.status_code == 200 and extra.json()[CUSTOM]["region"] == "EMEA"
    assert (await scim.get(path)).json()[CUSTOM]["level"] == 3


async def test_declaring_needs_the_admin_permission_and_a_valid_definition(
    client: httpx.AsyncClient, gql: GraphQLClient, sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    for bad in (
        {**DECLARED, "id": "urn:example:CostCodes"},
        {**DECLARED, "attributes": []},
        {**DECLARED, "attributes": [{"name": "a", "type": "float"}]},
        {**DECLARED, "attributes": [{"name": "a"}, {"name": "A"}]},
        {**DECLARED, "attributes": [{"name": "9lives"}]},
    ):
        result = (await gql(DECLARE, input=bad))["declareSchemaExtension"]
        assert result["__typename"] == "ValidationError", (bad, result)
    reader = await make_tenant(sessionmaker, tenant.identifier, ["users:read", "users:write"])
    refused = (await GraphQLClient(client, reader)(DECLARE, input=DECLARED))["declareSchemaExtension"]
    assert refused["__typename"] == "PermissionDeniedError"
    assert (await gql("{ schemaExtensions { id } }"))["schemaExtensions"] == []
