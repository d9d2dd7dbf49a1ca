"""Custom schema extensions: attributes an identity provider sends beyond the core and enterprise
schemas (Entra's "Edit attribute list", Okta's custom attributes). Their values are stored and
returned as sent; the first time an account receives an attribute, it is recorded with an
`extension.discovered` audit event, so that the admin can see what arrives."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import ExtensionAttribute
from app.db.types import utcnow
from app.services import audit
from app.services.caller import Caller

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
    """Record the attributes of `attributes` ({urn: [names]}) the account has not received before,
    with one `extension.discovered` event each. A concurrent request that records one first wins:
    the event is written once."""
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
