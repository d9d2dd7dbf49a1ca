from __future__ import annotations

import httpx
from openapi_spec_validator import validate

from app.scim.openapi import openapi_document
from app.scim.schema import USER


async def test_openapi_is_served_and_valid_openapi_3_1(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.1.0"
    validate(document)  # raises on any violation of the OpenAPI 3.1 meta-schema
    assert document == openapi_document("https://scim.example.test")


def test_openapi_is_generated_from_the_attribute_definitions() -> None:
    document = openapi_document("http://x")
    user = document["components"]["schemas"]["User"]["properties"]
    for attribute in USER.schema.attributes:
        assert attribute.name in user
    assert "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User" in user
    created = document["paths"]["/Users"]["post"]["responses"]["201"]
    assert set(created["links"]) == {"GetUser", "ReplaceUser", "PatchUser", "DeleteUser"}
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
