"""Custom schema extensions: attributes an identity provider sends beyond the core and enterprise
schemas (Entra's "Edit attribute list", Okta's custom attributes). Their values are stored and
returned as sent; the first time an account receives an attribute, it is recorded with an
`extension.discovered` audit event, so that the admin can see what arrives. An admin may declare an
extension (`declare`): it is then advertised in /Schemas, and its attributes' values are checked
against their declared types (`check_declared`) on every write."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import ExtensionAttribute, ExtensionSchema
from app.db.statements import Prepared
from app.db.types import utcnow
from app.errors import InvalidInput
from app.services import audit
from app.services.caller import Caller, Permission
from app.services.common import Reader, connection_of
from app.validation import has_nul

EXTENSION_PREFIX = "urn:ietf:params:scim:schemas:extension:"
# What a custom extension is named by (and described as in /openapi.json): the URN, of at most five
# segments after the prefix, ending with the resource type (RFC 7643 §3.3), and an attribute name.
CUSTOM_URN_BODY = r"urn:ietf:params:scim:schemas:extension:(?!enterprise:)[A-Za-z0-9._-]{1,64}(?::[A-Za-z0-9._-]{1,32}){0,4}"
CUSTOM_NAME = r"[A-Za-z][A-Za-z0-9_$-]{0,63}"
CUSTOM_NAME_RE = re.compile(CUSTOM_NAME)
# By resource type: group 1 the URN, group 2 the attribute name when the path names one.
CUSTOM_EXTENSIONS = {kind: re.compile(rf"({CUSTOM_URN_BODY}:{kind})(?::({CUSTOM_NAME}))?", re.IGNORECASE) for kind in ("User", "Group")}

TABLE = ExtensionAttribute.__table__  # type: ignore[attr-defined]
KEY = ("account_id", "resource_type", "key_ci")
Extensions = Mapping[str, Mapping[str, Any]]  # {urn: {attribute name: value}}


def key_of(urn: str, name: str) -> str:
    """How an extension attribute is named for matching: "urn:name", lower-cased (SCIM names are
    case-insensitive, RFC 7643 §2.1)."""
    return f"{urn}:{name}".lower()


def added(before: Extensions | None, after: Extensions | None) -> dict[str, list[str]]:
    """The attributes in `after` that `before` does not have, by URN."""
    old = {key_of(urn, name) for urn, attributes in (before or {}).items() for name in attributes}
    out: dict[str, list[str]] = {}
    for urn, attributes in (after or {}).items():
        new = [name for name in attributes if key_of(urn, name) not in old]
        if new:
            out[urn] = new
    return out


async def discover(session: AsyncSession, caller: Caller, resource_type: str, attributes: Mapping[str, list[str]]) -> None:
    """Record the attributes of `attributes` ({urn: [names]}) of undeclared extensions that the
    account has not received before, with one `extension.discovered` event each (a declared one is
    known already). A concurrent request that records one first wins: the event is written once."""
    if attributes:
        known = {d.urn.lower() for d in await declared(session, caller.account_id)}
        attributes = {urn: names for urn, names in attributes.items() if urn.lower() not in known}
    if not attributes:
        return
    now = utcnow()
    rows = [
        {
            "account_id": caller.account_id,
            "resource_type": resource_type,
            "key_ci": key_of(urn, name),
            "urn": urn,
            "name": name,
            "discovered_at": now,
        }
        for urn, names in attributes.items()
        for name in names
    ]
    connection = await session.connection()
    build = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    statement = build(TABLE).on_conflict_do_nothing(index_elements=list(KEY)).returning(TABLE.c.urn, TABLE.c.name)
    for row in rows:
        for urn, name in await connection.execute(statement, row):
            await audit.record(
                session,
                caller,
                action="extension.discovered",
                resource_type="SchemaExtension",
                resource_id=f"{urn}:{name}",
                detail={"resourceType": resource_type, "schema": urn, "attribute": name},
            )


# --- declared extensions ---------------------------------------------------------------------------

TYPES = ("string", "boolean", "integer", "decimal", "dateTime", "reference", "binary")
SCHEMAS = ExtensionSchema.__table__  # type: ignore[attr-defined]
MAX_DECLARED_ATTRIBUTES = 100


@dataclass(frozen=True)
class DeclaredAttribute:
    name: str
    type: str = "string"
    multi_valued: bool = False
    required: bool = False
    case_exact: bool = False
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "multiValued": self.multi_valued,
            "required": self.required,
            "caseExact": self.case_exact,
            "description": self.description,
        }


@dataclass(frozen=True)
class Declaration:
    urn: str
    resource_type: str
    name: str
    description: str
    attributes: tuple[DeclaredAttribute, ...]

    def attribute(self, name: str) -> DeclaredAttribute | None:
        lowered = name.lower()
        return next((a for a in self.attributes if a.name.lower() == lowered), None)


def _text(value: Any, where: str, *, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()) or has_nul(value):
        raise InvalidInput(f"{where} must be {'a non-empty' if required else 'a'} string", field=where)
    return value


def _flag(value: Any, where: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidInput(f"{where} must be true or false", field=where)
    return value


def parse_declaration(document: Any) -> Declaration:
    """A declaration as RFC 7643 §7 describes a schema: `id` (the extension's URN, ending in `:User`
    or `:Group`), `name`, `description`, and `attributes`, each with `name`, `type` (string, boolean,
    integer, decimal, dateTime, reference, binary), `multiValued`, `required`, `caseExact`."""
    if not isinstance(document, dict):
        raise InvalidInput("the declaration must be a JSON object", field="declaration")
    urn = _text(document.get("id"), "id")
    kind = next((k for k, pattern in CUSTOM_EXTENSIONS.items() if (found := pattern.fullmatch(urn)) and found.group(2) is None), None)
    if kind is None:
        raise InvalidInput(
            f"id must be an extension URN ending in :User or :Group, such as {EXTENSION_PREFIX}CustomExtensionName:2.0:User", field="id"
        )
    raw_attributes = document.get("attributes")
    if not isinstance(raw_attributes, list) or not raw_attributes or len(raw_attributes) > MAX_DECLARED_ATTRIBUTES:
        raise InvalidInput(f"attributes must be a list of 1 to {MAX_DECLARED_ATTRIBUTES} attribute definitions", field="attributes")
    attributes: list[DeclaredAttribute] = []
    for position, raw in enumerate(raw_attributes):
        where = f"attributes[{position}]"
        if not isinstance(raw, dict):
            raise InvalidInput(f"{where} must be an object", field=where)
        name = _text(raw.get("name"), f"{where}.name")
        if not CUSTOM_NAME_RE.fullmatch(name) or any(a.name.lower() == name.lower() for a in attributes):
            raise InvalidInput(f"{where}.name must be a new attribute name (a letter, then letters, digits, _, $ or -)", field=where)
        kind_of_value = raw.get("type", "string")
        if kind_of_value not in TYPES:
            raise InvalidInput(f"{where}.type must be one of {', '.join(TYPES)}", field=where)
        attributes.append(
            DeclaredAttribute(
                name,
                kind_of_value,
                _flag(raw.get("multiValued"), f"{where}.multiValued"),
                _flag(raw.get("required"), f"{where}.required"),
                _flag(raw.get("caseExact"), f"{where}.caseExact"),
                _text(raw.get("description"), f"{where}.description", required=False),
            )
        )
    name = _text(document.get("name", urn[len(EXTENSION_PREFIX) :].split(":")[0]), "name")  # by default "CustomExtensionName"
    return Declaration(urn, kind, name, _text(document.get("description"), "description", required=False), tuple(attributes))


async def declare(session: AsyncSession, caller: Caller, document: Any) -> Declaration:
    """Declare (or declare again, replacing) a custom extension of the caller's account. Admins only."""
    caller.require(Permission.ADMIN)
    declaration = parse_declaration(document)
    connection = await session.connection()
    key = {"account_id": caller.account_id, "urn_ci": declaration.urn.lower()}
    await connection.execute(delete(SCHEMAS).where(SCHEMAS.c.account_id == key["account_id"], SCHEMAS.c.urn_ci == key["urn_ci"]))
    row = {
        **key,
        "urn": declaration.urn,
        "resource_type": declaration.resource_type,
        "name": declaration.name,
        "description": declaration.description,
        "attributes": [a.to_json() for a in declaration.attributes],
        "declared_at": utcnow(),
    }
    await connection.execute(insert(SCHEMAS), row)
    await audit.record(
        session,
        caller,
        action="extension.declared",
        resource_type="SchemaExtension",
        resource_id=declaration.urn,
        detail={"resourceType": declaration.resource_type, "attributes": [a.name for a in declaration.attributes]},
    )
    return declaration


def _declaration(row: Any) -> Declaration:
    attributes = tuple(
        DeclaredAttribute(a["name"], a["type"], a["multiValued"], a["required"], a["caseExact"], a.get("description", ""))
        for a in row.attributes
    )
    return Declaration(row.urn, row.resource_type, row.name, row.description, attributes)


_DECLARED = Prepared(select(SCHEMAS).where(SCHEMAS.c.account_id == bindparam("account_id")).order_by(SCHEMAS.c.urn_ci))


async def declared(reader: Reader, account_id: int) -> list[Declaration]:
    """The account's declared extensions, by URN."""
    return [_declaration(row) for row in await _DECLARED.all(await connection_of(reader), {"account_id": account_id})]


async def check_declared(reader: Reader, account_id: int, values: Extensions) -> dict[str, dict[str, Any]]:
    """`values` checked against the account's declarations of their extensions: each declared
    attribute's type (booleans also as "true"/"false", as Entra sends them, stored as booleans),
    single or multiple values, and the required ones present. Attributes and extensions not
    declared pass as sent. The values to store."""
    if not values:
        return {}
    by_urn = {d.urn.lower(): d for d in await declared(reader, account_id)}
    checked: dict[str, dict[str, Any]] = {}
    for urn, attributes in values.items():
        declaration = by_urn.get(urn.lower())
        checked[urn] = dict(attributes) if declaration is None else _checked(declaration, urn, attributes)
    return checked


def _checked(declaration: Declaration, urn: str, attributes: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(attributes)
    for name, value in attributes.items():
        attribute = declaration.attribute(name)
        if attribute is None or value is None:
            continue
        where = f"{urn}:{attribute.name}"
        if attribute.multi_valued != isinstance(value, list):
            raise InvalidInput(f"{where} takes {'a list of values' if attribute.multi_valued else 'one value, not a list'}", field=where)
        items = [_typed(item, attribute, where) for item in (value if isinstance(value, list) else [value])]
        out[name] = items if attribute.multi_valued else items[0]
    present = {name.lower() for name, value in attributes.items() if value not in (None, [], "")}
    for attribute in declaration.attributes:
        if attribute.required and attribute.name.lower() not in present:
            raise InvalidInput(f"{urn}:{attribute.name} is required", field=f"{urn}:{attribute.name}")
    return out


def _typed(value: Any, attribute: DeclaredAttribute, where: str) -> Any:
    kind = attribute.type
    if kind == "boolean":
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        if isinstance(value, bool):
            return value
    elif kind == "integer":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind == "decimal":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
    elif kind == "dateTime":
        if isinstance(value, str) and _is_datetime(value):
            return value
    elif isinstance(value, str):  # string, reference, binary
        return value
    raise InvalidInput(f"{where} must be a{'n' if kind[0] in 'aeiou' else ''} {kind}, got {value!r}", field=where)


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True
