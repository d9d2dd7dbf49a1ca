"""Discovery documents (RFC 7644 §4, RFC 7643 §5–7), built from the schema definitions so they
advertise exactly what is implemented."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.scim.schema import (
    ALL_SCHEMAS,
    COMMON,
    RESOURCE_TYPE,
    RESOURCE_TYPES,
    SCHEMA,
    SERVICE_PROVIDER_CONFIG,
    Attribute,
    AttributeType,
    ResourceType,
    Schema,
)
from app.services import extensions

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


def declared_schema(declaration: extensions.Declaration) -> Schema:
    """A declared custom extension as the schema /Schemas describes."""
    attributes = tuple(
        Attribute(
            a.name,
            AttributeType(a.type),
            multi_valued=a.multi_valued,
            description=a.description,
            required=a.required,
            case_exact=a.case_exact,
        )
        for a in declaration.attributes
    )
    return Schema(declaration.urn, declaration.name, declaration.description, attributes)


def resource_type(resource: ResourceType, base: str, declared: Sequence[extensions.Declaration] = ()) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schemas": [RESOURCE_TYPE],
        "id": resource.name,
        "name": resource.name,
        "endpoint": resource.endpoint,
        "description": resource.description,
        "schema": resource.schema.id,
        "meta": {"resourceType": "ResourceType", "location": f"{base}/ResourceTypes/{resource.name}"},
    }
    urns = [s.id for s in resource.extensions] + [d.urn for d in declared if d.resource_type == resource.name]
    if urns:
        doc["schemaExtensions"] = [{"schema": urn, "required": False} for urn in urns]
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


def all_resource_types(base: str, declared: Sequence[extensions.Declaration] = ()) -> list[dict[str, Any]]:
    return [resource_type(r, base, declared) for r in RESOURCE_TYPES]


def all_schemas(declared: Sequence[extensions.Declaration] = ()) -> list[Schema]:
    """The schemas this service defines, then the account's declared extensions."""
    return [*ALL_SCHEMAS, *(declared_schema(d) for d in declared)]
