"""The OpenAPI 3.1 description of the SCIM surface, generated from the attribute definitions in
`app.scim.schema` — the same ones discovery, filters and PATCH use — so it cannot drift.

Request schemas describe what the server accepts, leniency included: `null` for any optional
attribute (RFC 7643 §2.5), booleans as "True"/"False" strings and `manager` as a plain id (Entra).
"""

from __future__ import annotations

from typing import Any

from app.scim.discovery import MAX_RESULTS
from app.scim.query import filterable_text_attributes, sortable_attributes
from app.scim.schema import (
    CORE_GROUP,
    CORE_USER,
    ENTERPRISE_USER,
    ERROR,
    GROUP,
    LIST_RESPONSE,
    PATCH_OP,
    SEARCH_REQUEST,
    USER,
    Attribute,
    AttributeType,
    ResourceType,
)
from app.services.extensions import CUSTOM_NAME, CUSTOM_URN_BODY
from app.validation import MAX_INDEXED

SCIM_JSON = "application/scim+json"
BOOLEAN_LIKE = {"$ref": "#/components/schemas/BooleanLike"}
_TRUE = {"anyOf": [{"const": True}, {"type": "string", "pattern": "^[Tt][Rr][Uu][Ee]$"}]}
# No NUL characters: PostgreSQL text cannot store them, so the server refuses them with 400.
TEXT = {"type": "string", "pattern": "^[^\\u0000]*$"}
# userName and displayName: required, indexed (at most 256), and not blank.
NAME = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_INDEXED,
    "pattern": "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$",
}  # \\s as in compat.BLANK
INDEXED = {"type": "string", "maxLength": MAX_INDEXED, "pattern": "^[^\\u0000]*$"}
OPS = {"add": "^[Aa][Dd][Dd]$", "remove": "^[Rr][Ee][Mm][Oo][Vv][Ee]$", "replace": "^[Rr][Ee][Pp][Ll][Aa][Cc][Ee]$"}


def _scalar(attribute: Attribute, *, request: bool) -> dict[str, Any]:
    if attribute.type == AttributeType.BOOLEAN:
        return dict(BOOLEAN_LIKE) if request else {"type": "boolean"}
    if attribute.type == AttributeType.DATE_TIME:
        return {"type": "string", "format": "date-time"}
    if attribute.type in ("integer", "decimal"):
        return {"type": "integer" if attribute.type == AttributeType.INTEGER else "number"}
    return dict(TEXT) if request else {"type": "string"}


MEMBER = {
    "type": "object",
    "required": ["value"],
    # Only the id counts; $ref, display and type are accepted and ignored.
    "properties": {"value": {**TEXT, "minLength": 1}, "$ref": {}, "display": {}, "type": {}},
}


def _attribute(attribute: Attribute, *, request: bool) -> dict[str, Any]:
    if request and attribute.name == "members":
        # A list of member objects; also, as Microsoft's SCIM test collection sends them, a bare id,
        # one object without a list, and bare ids in the list (app/scim/compat.py). A bare "" is no
        # member at all, as "" is for any attribute.
        listed = {"type": "array", "items": {"anyOf": [MEMBER, {**TEXT, "minLength": 1}, {"type": "null"}]}}
        return {"anyOf": [listed, MEMBER, dict(TEXT)], "description": attribute.description}
    if request and attribute.name == "$ref":
        return {"type": ["string", "null"], "description": "Accepted and ignored: the server builds references itself"}
    if attribute.type == AttributeType.COMPLEX:
        subs = [s for s in attribute.sub_attributes if not (request and s.read_only)]
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {s.name: _nullable(_attribute(s, request=request), request) for s in subs},
        }
        if attribute.name == "manager" and request:
            # at most one manager object; nulls are dropped like anywhere else
            one = {"type": "array", "items": _nullable(schema, True), "contains": {"type": "object"}, "minContains": 0, "maxContains": 1}
            schema = {"anyOf": [dict(TEXT), schema, one]}
    else:
        schema = _scalar(attribute, request=request)
    if attribute.multi_valued:
        # null elements are dropped, like null anywhere else (RFC 7643 §2.5)
        schema = {"type": "array", "items": _nullable(schema, request)}
    if attribute.description:
        schema["description"] = attribute.description
    if attribute.read_only and not request:
        schema["readOnly"] = True
    return schema


def _nullable(schema: dict[str, Any], request: bool) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]} if request else schema


def _resource_schema(resource: ResourceType, *, request: bool) -> dict[str, Any]:
    attributes = [a for a in resource.schema.attributes if not (request and a.read_only)]
    properties: dict[str, Any] = {
        "schemas": _nullable({"type": "array", "items": {"type": "string"}}, request),
        "externalId": _nullable(dict(INDEXED) if request else {"type": "string"}, request),
    }
    required = [a.name for a in attributes if a.required]
    for attribute in attributes:
        schema = _attribute(attribute, request=request)
        if request and attribute.required:
            schema = {**NAME, "description": attribute.description}
        if request and attribute.multi_valued and attribute.sub("primary"):
            # RFC 7643 §2.4: at most one element may be primary.
            schema = {
                **schema,
                "contains": {"type": "object", "required": ["primary"], "properties": {"primary": _TRUE}},
                "minContains": 0,
                "maxContains": 1,
            }
        properties[attribute.name] = schema if attribute.required else _nullable(schema, request)
    for extension in resource.extensions:
        ext_props = {a.name: _nullable(_attribute(a, request=request), request) for a in extension.attributes}
        properties[extension.id] = _nullable({"type": "object", "properties": ext_props}, request)
    if not request:
        properties["id"] = {"type": "string", "readOnly": True}
        properties["meta"] = {"$ref": "#/components/schemas/Meta"}
        required = ["schemas", "id"]
    return {"type": "object", "required": required, "properties": properties, "patternProperties": _custom_extensions(resource)}


def _custom_extensions(resource: ResourceType) -> dict[str, Any]:
    """Schema extensions this service does not define (Entra's and Okta's custom attributes): an
    object of attributes, kept and returned as sent."""
    extension = {"type": "object", "propertyNames": {"pattern": f"^{CUSTOM_NAME}$"}, "additionalProperties": CUSTOM_VALUE}
    return {
        f"^{CUSTOM_URN_BODY}:{resource.name}$": {
            "description": "A custom schema extension: its attributes are stored and returned as sent",
            "anyOf": [extension, {"type": "null"}],
        }
    }


# The value of a custom extension attribute: a string, number, boolean or null, or a list of them.
# No string may hold a NUL character: no database stores one.
_CUSTOM_SCALAR = {"anyOf": [TEXT, {"type": ["number", "boolean", "null"]}]}
CUSTOM_VALUE = {"anyOf": [_CUSTOM_SCALAR, {"type": "array", "items": _CUSTOM_SCALAR}]}


def _custom_extension_path(resource: ResourceType) -> str:
    """A path (or path-less key) naming one attribute of a custom schema extension."""
    return f"^{CUSTOM_URN_BODY}:{resource.name}:{CUSTOM_NAME}$"


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {SCIM_JSON: {"schema": {"$ref": "#/components/schemas/Error"}}}}


ERRORS = {
    "400": "Malformed request: invalidSyntax, invalidValue, invalidFilter, invalidPath, mutability, noTarget",
    "401": "Missing, malformed, unknown, revoked or expired token, or a token of another account",
    "403": "The token lacks the permission named in the detail",
    "404": "No such resource in this account",
    "409": "A uniqueness rule would be broken (scimType uniqueness)",
    "412": "If-Match does not match the current version",
    "408": "The request body did not arrive within the configured read timeout",
    "413": "The body is over its limit: MAX_GROUP_BODY_BYTES for POST /Groups and PUT /Groups/{id}, else MAX_BODY_BYTES",
    "415": "The body is not application/scim+json or application/json in UTF-8",
    "429": "Too many requests of the token, or failed authentications of the address or account; retry after Retry-After seconds",
    "503": "The database is unavailable or too busy right now; retry after the Retry-After seconds",
}
# Every operation that takes a body can meet these.
BODY_ERRORS = ("408", "413", "415")


def _errors(*codes: str) -> dict[str, Any]:
    """The named error responses, and those any operation may meet: 429 (a rate limit) and 503 (a
    database outage)."""
    return {code: _error_response(ERRORS[code]) for code in (*codes, "429", "503")}


def _body(ref: str) -> dict[str, Any]:
    schema = {"$ref": f"#/components/schemas/{ref}"}
    return {"required": True, "content": {SCIM_JSON: {"schema": schema}, "application/json": {"schema": schema}}}


def _ok(ref: str, description: str, *, etag: bool = False, location: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {SCIM_JSON: {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}
    headers = {}
    if etag:
        headers["ETag"] = {"schema": {"type": "string"}, "description": "The weak ETag of the resource (meta.version)"}
    if location:
        headers["Location"] = {"schema": {"type": "string"}, "description": "The URL of the new resource"}
    if headers:
        response["headers"] = headers
    return response


FILTER_DESCRIPTION = (
    "An RFC 7644 §3.4.2.2 filter: eq ne co sw ew gt ge lt le pr, and/or/not, parentheses, value paths "
    '(emails[type eq "work"]), sub-attributes and URN-qualified names. The pattern describes the simplest '
    "form, one comparison of a text attribute; everything the RFC grammar allows is accepted."
)


def _filter_schema(resources: tuple[ResourceType, ...]) -> dict[str, Any]:
    names = sorted({n for r in resources for n in filterable_text_attributes(r)})
    attribute = "(" + "|".join(n.replace(".", "\\.") for n in names) + ")"
    value = '"[^"\\\\\\u0000-\\u001f]*"'
    return {"type": "string", "pattern": f"^{attribute} (pr|(eq|ne|co|sw|ew|gt|ge|lt|le) {value})$", "description": FILTER_DESCRIPTION}


def _sort_schema(resources: tuple[ResourceType, ...]) -> dict[str, Any]:
    names = set.intersection(*(set(sortable_attributes(r)) for r in resources))
    return {"type": "string", "enum": sorted(names), "description": "Attribute to sort by (any letter case)"}


def _list_parameters(resource: ResourceType) -> list[dict[str, Any]]:
    return [
        {"name": "filter", "in": "query", "schema": _filter_schema((resource,))},
        {"name": "startIndex", "in": "query", "schema": {"type": "integer"}, "description": "1-based; values below 1 mean 1"},
        {
            "name": "count",
            "in": "query",
            "schema": {"type": "integer"},
            "description": f"page size; negative means 0, capped at {MAX_RESULTS}",
        },
        {"name": "sortBy", "in": "query", "schema": _sort_schema((resource,))},
        {"name": "sortOrder", "in": "query", "schema": {"type": "string", "enum": ["ascending", "descending"]}},
    ]


PROJECTION_PARAMETERS = [
    {
        "name": "attributes",
        "in": "query",
        "schema": {"type": "string"},
        "description": (
            'comma-separated attribute names to return; a name may carry a value filter, emails[type eq "work"], '
            "to return only the matching elements"
        ),
    },
    {
        "name": "excludedAttributes",
        "in": "query",
        "schema": {"type": "string"},
        "description": "comma-separated attribute names to leave out",
    },
]
ID_PARAMETER = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
ENTITY_TAGS = {"type": "string", "description": '"*" or entity tags such as W/"3"; a tag that is not current does not match'}
IF_MATCH = {"name": "If-Match", "in": "header", "schema": ENTITY_TAGS, "description": "Only act if the resource has one of these ETags"}
IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "schema": ENTITY_TAGS,
    "description": "304 if the resource still has one of these ETags",
}


def _resource_paths(resource: ResourceType) -> dict[str, Any]:
    name = resource.name
    plural = resource.endpoint
    links = {
        f"Get{name}": {"operationId": f"get{name}", "parameters": {"id": "$response.body#/id"}},
        f"Replace{name}": {"operationId": f"replace{name}", "parameters": {"id": "$response.body#/id"}},
        f"Patch{name}": {"operationId": f"patch{name}", "parameters": {"id": "$response.body#/id"}},
        f"Delete{name}": {"operationId": f"delete{name}", "parameters": {"id": "$response.body#/id"}},
    }
    created = _ok(name, f"The {name} was created", etag=True, location=True)
    created["links"] = links
    patch_ok: dict[str, Any] = {"200": _ok(name, f"The patched {name}", etag=True)}
    if resource is GROUP:
        patch_ok["204"] = {"description": "Patched; the group is returned only when attributes or excludedAttributes is given"}
    return {
        plural: {
            "get": {
                "operationId": f"list{name}s",
                "summary": f"List or filter {name}s",
                "parameters": _list_parameters(resource) + PROJECTION_PARAMETERS,
                "responses": {"200": _ok("ListResponse", "Matching resources"), **_errors("400", "401", "403")},
            },
            "post": {
                "operationId": f"create{name}",
                "summary": f"Create a {name}",
                "parameters": PROJECTION_PARAMETERS,
                "requestBody": _body(f"{name}Request"),
                "responses": {"201": created, **_errors("400", "401", "403", "409", *BODY_ERRORS)},
            },
        },
        f"{plural}/{{id}}": {
            "parameters": [ID_PARAMETER],
            "get": {
                "operationId": f"get{name}",
                "parameters": [*PROJECTION_PARAMETERS, IF_NONE_MATCH],
                "responses": {
                    "200": _ok(name, f"The {name}", etag=True),
                    "304": {"description": "Not modified"},
                    **_errors("400", "401", "403", "404"),
                },
            },
            "put": {
                "operationId": f"replace{name}",
                "parameters": [*PROJECTION_PARAMETERS, IF_MATCH],
                "requestBody": _body(f"{name}Request"),
                "responses": {
                    "200": _ok(name, f"The replaced {name}", etag=True),
                    **_errors("400", "401", "403", "404", "409", "412", *BODY_ERRORS),
                },
            },
            "patch": {
                "operationId": f"patch{name}",
                "parameters": [*PROJECTION_PARAMETERS, IF_MATCH],
                "requestBody": _body(f"{name}PatchOp"),
                "responses": {**patch_ok, **_errors("400", "401", "403", "404", "409", "412", *BODY_ERRORS)},
            },
            "delete": {
                "operationId": f"delete{name}",
                "parameters": [IF_MATCH],
                "responses": {"204": {"description": "Deleted"}, **_errors("400", "401", "403", "404", "412")},
            },
        },
        f"{plural}/.search": {
            "post": {
                "operationId": f"search{name}s",
                "requestBody": _body(f"{name}SearchRequest"),
                "responses": {"200": _ok("ListResponse", "Matching resources"), **_errors("400", "401", "403", *BODY_ERRORS)},
            }
        },
    }


def _discovery(path: str, operation_id: str, schema: str, *, by_id: str | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "responses": {"200": _ok(schema, "The discovery document"), **_errors("400", "401")},
    }
    if by_id:
        operation["parameters"] = [{"name": by_id, "in": "path", "required": True, "schema": {"type": "string"}}]
        operation["responses"].update(_errors("404"))
    return {path: {"get": operation}}


def _search_request(resources: tuple[ResourceType, ...]) -> dict[str, Any]:
    string_list = {"type": "array", "items": {"type": "string"}}

    def nullable(schema: dict[str, Any]) -> dict[str, Any]:
        return {"anyOf": [schema, {"type": "null"}]}

    return {
        "type": "object",
        "properties": {
            "schemas": nullable(string_list),
            "filter": nullable(_filter_schema(resources)),
            "startIndex": nullable({"type": "integer"}),
            "count": nullable({"type": "integer"}),
            "sortBy": nullable(_sort_schema(resources)),
            "sortOrder": nullable({"type": "string", "enum": ["ascending", "descending"]}),
            "attributes": nullable({"anyOf": [string_list, {"type": "string"}]}),
            "excludedAttributes": nullable({"anyOf": [string_list, {"type": "string"}]}),
        },
    }


def _op(names: tuple[str, ...]) -> dict[str, Any]:
    return {"type": "string", "pattern": "|".join(OPS[n] for n in names)}


def _path_alternatives(path: str, value: dict[str, Any], *, removable: bool) -> list[dict[str, Any]]:
    """`add`/`replace` carry a value; `remove` needs none (RFC 7644 §3.5.2)."""
    out = [
        {
            "type": "object",
            "required": ["op", "path", "value"],
            "properties": {"op": _op(("add", "replace")), "path": {"const": path}, "value": value},
        }
    ]
    if removable:
        out.append({"type": "object", "required": ["op", "path"], "properties": {"op": _op(("remove",)), "path": {"const": path}}})
    return out


def _patch_op(resource: ResourceType) -> dict[str, Any]:
    """One alternative per attribute path, with the value that path takes (RFC 7644 §3.5.2), plus
    the path-less form whose value is a partial resource."""
    request = _resource_schema(resource, request=True)
    # Path-less values are keyed by paths: attributes, dotted sub-attributes, URN-qualified names.
    keys: dict[str, Any] = {"schemas": {}, "meta": {}, "id": {}}
    for schema in resource.schemas:
        for attribute in schema.attributes:
            if attribute.read_only:
                continue
            path = attribute.name if schema is resource.schema else f"{schema.id}:{attribute.name}"
            # null in a path-less value means "absent", for required attributes too
            keys[path] = (
                _nullable(request["properties"][attribute.name], True)
                if schema is resource.schema
                else _nullable(_attribute(attribute, request=True), True)
            )
            if attribute.type == AttributeType.COMPLEX and not attribute.multi_valued:
                for sub in attribute.sub_attributes:
                    if not sub.read_only:
                        keys[f"{path}.{sub.name}"] = _nullable(_attribute(sub, request=True), True)
        if schema is not resource.schema:
            keys[schema.id] = request["properties"][schema.id]
    keys["externalId"] = request["properties"]["externalId"]
    alternatives: list[dict[str, Any]] = [
        {
            "type": "object",
            "required": ["op", "value"],
            "properties": {
                "op": _op(("add", "replace")),
                "path": {"type": "null"},
                "value": {
                    "type": "object",
                    "properties": keys,
                    "patternProperties": {**_custom_extensions(resource), _custom_extension_path(resource): CUSTOM_VALUE},
                    "additionalProperties": False,
                },
            },
        }
    ]
    custom = {"type": "string", "pattern": _custom_extension_path(resource)}
    alternatives += [
        {
            "type": "object",
            "required": ["op", "path", "value"],
            "properties": {"op": _op(("add", "replace")), "path": custom, "value": CUSTOM_VALUE},
        },
        {"type": "object", "required": ["op", "path"], "properties": {"op": _op(("remove",)), "path": custom}},
    ]
    for schema in resource.schemas:
        for attribute in schema.attributes:
            if attribute.read_only:
                continue
            path = attribute.name if schema is resource.schema else f"{schema.id}:{attribute.name}"
            value = (
                request["properties"][attribute.name] if schema is resource.schema else _nullable(_attribute(attribute, request=True), True)
            )
            alternatives += _path_alternatives(path, value, removable=not attribute.required)
            if attribute.type == AttributeType.COMPLEX and not attribute.multi_valued:
                for sub in attribute.sub_attributes:
                    if not sub.read_only:
                        alternatives += _path_alternatives(
                            f"{path}.{sub.name}", _nullable(_attribute(sub, request=True), True), removable=True
                        )
    return {
        "type": "object",
        "required": ["Operations"],
        "properties": {
            "schemas": {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]},
            "Operations": {"type": "array", "minItems": 1, "items": {"anyOf": alternatives}},
        },
    }


def _components() -> dict[str, Any]:
    return {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "sat.<account>.<tokenId>.<secret>"}},
        "schemas": {
            "BooleanLike": {
                "description": "A boolean; Entra also sends the strings True and False in any letter case; an empty string means absent",
                "anyOf": [{"type": "boolean"}, {"type": "string", "pattern": "^([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])?$"}],
            },
            "Meta": {
                "type": "object",
                "readOnly": True,
                "properties": {
                    "resourceType": {"type": "string"},
                    "created": {"type": "string", "format": "date-time"},
                    "lastModified": {"type": "string", "format": "date-time"},
                    "location": {"type": "string"},
                    "version": {"type": "string"},
                },
            },
            "User": _resource_schema(USER, request=False),
            "UserRequest": _resource_schema(USER, request=True),
            "Group": _resource_schema(GROUP, request=False),
            "GroupRequest": _resource_schema(GROUP, request=True),
            "UserPatchOp": _patch_op(USER),
            "GroupPatchOp": _patch_op(GROUP),
            "UserSearchRequest": _search_request((USER,)),
            "GroupSearchRequest": _search_request((GROUP,)),
            "SearchRequest": _search_request((USER, GROUP)),
            "ListResponse": {
                "type": "object",
                "required": ["schemas", "totalResults", "Resources", "startIndex", "itemsPerPage"],
                "properties": {
                    "schemas": {"type": "array", "items": {"const": LIST_RESPONSE}},
                    "totalResults": {"type": "integer", "minimum": 0},
                    "itemsPerPage": {"type": "integer", "minimum": 0},
                    "startIndex": {"type": "integer", "minimum": 1},
                    "Resources": {"type": "array", "items": {"type": "object", "required": ["schemas"]}},
                },
            },
            "ServiceProviderConfig": {"type": "object", "required": ["schemas", "patch", "bulk", "filter"]},
            "Discovered": {"type": "object", "required": ["schemas", "id"]},
            "Error": {
                "type": "object",
                "required": ["schemas", "status"],
                "properties": {
                    "schemas": {"type": "array", "items": {"const": ERROR}},
                    "status": {"type": "string", "pattern": "^[1-5][0-9][0-9]$"},
                    "scimType": {"type": "string"},
                    "detail": {"type": "string"},
                },
            },
        },
    }


def openapi_document(public_url: str) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    paths.update(_resource_paths(USER))
    paths.update(_resource_paths(GROUP))
    paths["/.search"] = {
        "post": {
            "operationId": "searchAll",
            "summary": "Search users and groups together (RFC 7644 §3.4.3)",
            "requestBody": _body("SearchRequest"),
            "responses": {"200": _ok("ListResponse", "Matching users, then groups"), **_errors("400", "401", "403", *BODY_ERRORS)},
        }
    }
    paths.update(_discovery("/ServiceProviderConfig", "getServiceProviderConfig", "ServiceProviderConfig"))
    paths.update(_discovery("/ResourceTypes", "listResourceTypes", "ListResponse"))
    paths.update(_discovery("/ResourceTypes/{name}", "getResourceType", "Discovered", by_id="name"))
    paths.update(_discovery("/Schemas", "listSchemas", "ListResponse"))
    paths.update(_discovery("/Schemas/{urn}", "getSchema", "Discovered", by_id="urn"))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Scimgraph SCIM 2.0",
            "version": "2.0",
            "description": "SCIM 2.0 (RFC 7643, RFC 7644) for Microsoft Entra ID and Okta. Schemas: "
            f"{CORE_USER}, {ENTERPRISE_USER}, {CORE_GROUP}; messages {PATCH_OP}, {SEARCH_REQUEST}.",
        },
        "servers": [
            {
                "url": f"{public_url}/gateway/ng/api/scim/account/{{accountIdentifier}}",
                "description": "The Tenant URL",
                "variables": {"accountIdentifier": {"default": "default"}},
            }
        ],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": _components(),
    }
