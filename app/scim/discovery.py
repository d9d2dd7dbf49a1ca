"""Discovery documents (RFC 7644 §4, RFC 7643 §5–7), built from the schema definitions so they
advertise exactly what is implemented."""

from __future__ import annotations

from typing import Any

from app.scim.schema import ALL_SCHEMAS, COMMON, RESOURCE_TYPE, RESOURCE_TYPES, SCHEMA, SERVICE_PROVIDER_CONFIG, ResourceType, Schema

MAX_RESULTS = 1000
DEFAULT_COUNT = 100
DOCS_URL = "https://datatracker.ietf.org/doc/html/rfc7644"


def service_provider_config(base: str) -> dict[str, Any]:
    return {
        "schemas": [SERVICE_PROVIDER_CONFIG],
        "documentationUri": DOCS_URL,
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": False},
        "sort": {"supported": True},
        "etag": {"supported": True},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "Bearer token",
                "description": "An API token of this account: Authorization: Bearer sat.<account>.<tokenId>.<secret>",
                "primary": True,
            }
        ],
        "meta": {"resourceType": "ServiceProviderConfig", "location": f"{base}/ServiceProviderConfig"},
    }


def resource_type(resource: ResourceType, base: str) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schemas": [RESOURCE_TYPE],
        "id": resource.name,
        "name": resource.name,
        "endpoint": resource.endpoint,
        "description": resource.description,
        "schema": resource.schema.id,
        "meta": {"resourceType": "ResourceType", "location": f"{base}/ResourceTypes/{resource.name}"},
    }
    if resource.extensions:
        doc["schemaExtensions"] = [{"schema": s.id, "required": False} for s in resource.extensions]
    return doc


def schema_document(schema: Schema, base: str) -> dict[str, Any]:
    # The common attributes (id, externalId, meta) are described once per resource schema too, so a
    # client that reads only /Schemas learns every attribute it can filter or patch.
    is_resource = any(r.schema is schema for r in RESOURCE_TYPES)
    attributes = [*(a for a in COMMON if a.name != "meta"), *schema.attributes] if is_resource else list(schema.attributes)
    return {
        "schemas": [SCHEMA],
        "id": schema.id,
        "name": schema.name,
        "description": schema.description,
        "attributes": [a.to_scim() for a in attributes],
        "meta": {"resourceType": "Schema", "location": f"{base}/Schemas/{schema.id}"},
    }


def all_resource_types(base: str) -> list[dict[str, Any]]:
    return [resource_type(r, base) for r in RESOURCE_TYPES]


def all_schemas(base: str) -> list[dict[str, Any]]:
    return [schema_document(s, base) for s in ALL_SCHEMAS]
