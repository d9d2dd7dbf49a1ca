"""Habits of Microsoft Entra ID and Okta, normalised in one place (see docs/idp-compatibility.md).

Each function is small and has a test named after the quirk it absorbs.
"""

from __future__ import annotations

from typing import Any

from app.errors import InvalidInput, InvalidSyntax
from app.validation import has_nul

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
    return value is None or value == ""


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
        if len(value) > 1 or not all(isinstance(v, dict) for v in value):
            raise InvalidInput('a list of managers holds one {"value": id} object', field="manager")
        value = value[0] if value else None
    if isinstance(value, dict):
        ref = value.get("$ref")
        if ref is not None and not isinstance(ref, str):
            raise InvalidInput("manager.$ref must be a string", field="manager")
        value = value.get("value")
    if is_empty(value):
        return None
    if not isinstance(value, str) or has_nul(value):
        raise InvalidInput('manager must be a user id, {"value": id} or [{"value": id}]', field="manager")
    return {"value": value}


def member_values(value: Any) -> list[str]:
    """Member lists from Entra carry `"$ref": null` and several members per operation; Okta sends
    objects too. Microsoft's SCIM test collection sends a member as the bare id (`"value": "<id>"`),
    and a single member object without a list: both are read as a list of one. Returns the member ids."""
    if is_empty(value) or value == []:
        return []
    if isinstance(value, (str, dict)):
        value = [value]
    if not isinstance(value, list):
        raise InvalidInput('members takes a list of {"value": id} objects', field="members")
    ids: list[str] = []
    for item in value:
        if item is None:
            continue  # null means absent
        member = item.get("value") if isinstance(item, dict) else item
        if not isinstance(member, str) or not member or has_nul(member):
            raise InvalidInput(f'each member must be an object with the user id as "value", got {item!r}', field="members")
        ids.append(member)
    return ids


def check_schemas_list(body: dict[str, Any]) -> None:
    """`schemas` may carry URNs we do not know (Entra sends some), but it must be a list of strings."""
    schemas = next((v for k, v in body.items() if isinstance(k, str) and k.lower() == "schemas"), None)
    if schemas is not None and (not isinstance(schemas, list) or not all(isinstance(u, str) for u in schemas)):
        raise InvalidSyntax("schemas must be a list of URN strings", field="schemas")


def open_value(value: Any, where: str) -> Any:
    """The value of an attribute of an extension this service does not define, kept as sent: a
    string, number, boolean or null, or a list of them. No string may hold a NUL character (no
    database stores one)."""
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, dict | list):
            raise InvalidInput(f"{where} must be a string, number or boolean, or a list of them", field=where)
        if isinstance(item, str) and has_nul(item):
            raise InvalidInput(f"{where} must not contain the NUL character", field=where)
    return value
