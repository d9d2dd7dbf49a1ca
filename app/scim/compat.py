"""Habits of Microsoft Entra ID and Okta, normalised in one place (see docs/idp-compatibility.md).

Each function is small and has a test named after the quirk it absorbs.
"""

from __future__ import annotations

from typing import Any

from app.errors import InvalidInput, InvalidSyntax

PATCH_OPS = ("add", "remove", "replace")


def op_name(raw: Any) -> str:
    """Entra's default form capitalises ops (`Replace`, `Add`); RFC 7644 §3.5.2 uses lowercase."""
    if not isinstance(raw, str) or raw.lower() not in PATCH_OPS:
        raise InvalidSyntax(f"PATCH op must be add, remove or replace, got {raw!r}", field="op")
    return raw.lower()


def coerce_boolean(value: Any, name: str) -> bool:
    """Entra sends booleans as the strings "True"/"False" (any case) in PATCH values and bodies."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise InvalidInput(f"{name} must be a boolean, got {value!r}", field=name)


def is_empty(value: Any) -> bool:
    """`""` and `null` in a PATCH value clear the attribute (Entra clears this way)."""
    return value is None or value == "" or value == [] or value == {}


def drop_nulls(value: Any) -> Any:
    """`null` means absent (RFC 7643 §2.5): remove it wherever it appears."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value if v is not None]
    return value


def manager_reference(value: Any) -> dict[str, Any] | None:
    """The enterprise `manager` arrives as a plain id, as `{"value": id}` or as `[{"value": id}]`;
    it is stored and returned in the RFC's complex form. Empty means removal."""
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, dict):
        value = value.get("value")
    if is_empty(value):
        return None
    if not isinstance(value, (str, int)):
        raise InvalidInput("manager must be a user id, {\"value\": id} or [{\"value\": id}]", field="manager")
    return {"value": str(value)}


def member_values(value: Any) -> list[str]:
    """Member lists from Entra carry `"$ref": null` and several members per operation; Okta sends
    objects too. Returns the member ids."""
    if is_empty(value):
        return []
    items = value if isinstance(value, list) else [value]
    ids: list[str] = []
    for item in items:
        member = item.get("value") if isinstance(item, dict) else item
        if not isinstance(member, str) or not member:
            raise InvalidInput(f"each member needs a string value, got {item!r}", field="members")
        ids.append(member)
    return ids
