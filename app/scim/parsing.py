"""Incoming SCIM documents (RFC 7643 §4): their canonical form, checked, and the service values they set."""

from __future__ import annotations

from typing import Any

from app.errors import InvalidInput, InvalidSyntax
from app.scim import compat
from app.scim.mapping import USER_COLUMNS
from app.scim.schema import ENTERPRISE_USER, USER_MULTI_VALUED, Attribute, AttributeType, ResourceType, resolve
from app.services import groups, users
from app.services.extensions import EXTENSION_PREFIX
from app.services.groups import GroupValues
from app.services.users import UserValues
from app.validation import has_nul


def _canonical_element(attribute: Attribute, value: Any) -> dict[str, Any]:
    """One element of a complex attribute with schema names; known sub-attributes are type-checked
    before anything empty is dropped, so a bad value is reported rather than silently lost."""
    if not isinstance(value, dict):
        raise InvalidInput(f"each element of {attribute.name} must be an object", field=attribute.name)
    out: dict[str, Any] = {}
    for key, item in value.items():
        sub = attribute.sub(key)
        if sub is None or item is None or item == "":
            continue
        name = f"{attribute.name}.{sub.name}"
        if sub.type == AttributeType.BOOLEAN:
            out[sub.name] = compat.coerce_boolean(item, name)
        elif sub.name == "$ref" or sub.read_only:
            continue  # server-built or server-owned: accepted and ignored
        else:
            out[sub.name] = _string(item, name)
    return out


def canonical_elements(attribute: Attribute, value: Any) -> list[dict[str, Any]]:
    """The elements of a multi-valued complex attribute, checked (the PATCH engine uses this too)."""
    if not isinstance(value, list):
        raise InvalidInput(f"{attribute.name} takes a list of objects", field=attribute.name)
    return [e for e in (_canonical_element(attribute, v) for v in value if v is not None) if e]


def _canonical_value(attribute: Attribute, value: Any) -> Any:
    if attribute.open:
        return compat.open_value(value, attribute.name)
    if attribute.name == "manager":
        return compat.manager_reference(value)
    if attribute.name == "members":
        return value  # read and checked by compat.member_values, which knows the forms clients send
    if attribute.multi_valued:
        if not isinstance(value, list):
            raise InvalidInput(f"{attribute.name} must be a list", field=attribute.name)
        if attribute.type != AttributeType.COMPLEX:
            return value
        return [e for e in (_canonical_element(attribute, v) for v in value) if e]
    if attribute.type == AttributeType.COMPLEX:
        element = _canonical_element(attribute, value)
        return element or None
    return value


def normalize_document(body: Any, resource: ResourceType) -> dict[str, Any]:
    """A request body as a canonical document: schema names, extension under its URN, nulls and
    unknown or read-only attributes dropped (RFC 7643 §2.5, RFC 7644 §3.3)."""
    if not isinstance(body, dict):
        raise InvalidSyntax("the request body must be a JSON object")
    compat.check_schemas_list(body)
    doc: dict[str, Any] = {}
    for key, value in compat.drop_nulls(body).items():
        target = resolve(key, resource) if isinstance(key, str) else None
        if target is None:
            continue
        if target.attribute is None:  # the whole extension object
            if not isinstance(value, dict):
                raise InvalidInput(f"{key} must be an object", field=key)
            custom = all(schema.id != target.schema for schema in resource.schemas)
            for sub_key, sub_value in value.items():
                inner = resolve(f"{target.schema}:{sub_key}", resource)
                if inner is None and custom:
                    # Each key of a custom extension names an attribute, so one that cannot be a name is
                    # refused (the enterprise extension's object, whose attributes are known, ignores others).
                    raise InvalidInput(f"'{sub_key}' is not an attribute name (in {target.schema})", field=target.schema)
                if inner is not None and inner.attribute is not None and not inner.attribute.read_only:
                    _set(doc, inner.schema if inner.is_extension else None, inner.attribute, inner.sub, sub_value)
            continue
        attribute = target.attribute
        if attribute.read_only or attribute.name in ("id", "meta"):
            continue
        _set(doc, target.schema if target.is_extension else None, attribute, target.sub, value)
    return doc


def _set(doc: dict[str, Any], urn: str | None, attribute: Attribute, sub: Attribute | None, value: Any) -> None:
    container = doc.setdefault(urn, {}) if urn else doc
    if sub is not None:  # a dotted key such as "name.givenName"
        if sub.read_only or compat.is_empty(value):
            return
        container.setdefault(attribute.name, {})[sub.name] = value
        return
    canonical = _canonical_value(attribute, value)
    if canonical is None or (attribute.multi_valued and canonical == []):
        container.pop(attribute.name, None)
    else:
        container[attribute.name] = canonical


def _string(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string, got {type(value).__name__}", field=name)
    if has_nul(value):  # PostgreSQL text cannot hold it
        raise InvalidInput(f"{name} must not contain the NUL character", field=name)
    return value


def user_values(doc: dict[str, Any]) -> UserValues:
    """What a SCIM document sets on a user (every writable attribute: an absent one is cleared),
    from its canonical document. Validates types."""
    values: dict[str, Any] = {}
    for key, column in USER_COLUMNS.items():
        value = _lookup(doc, key)
        if value is None or value == "":
            values[column] = None
        elif column == "active":
            values[column] = compat.coerce_boolean(value, "active")
        else:
            values[column] = _string(value, key.rsplit(":", 1)[-1])
    users.check_values(values)
    manager = _lookup(doc, f"{ENTERPRISE_USER}:manager")
    if isinstance(manager, dict) and manager.get("$ref") is not None:
        _string(manager["$ref"], "manager.$ref")
    multi: dict[str, list[dict[str, Any]]] = {}
    for attribute in USER_MULTI_VALUED:
        elements = doc.get(attribute.name)
        if not elements:
            continue
        if not isinstance(elements, list):
            raise InvalidInput(f"{attribute.name} must be a list", field=attribute.name)
        cleaned = []
        for element in elements:
            element = _canonical_element(attribute, element)
            for sub_name, sub_value in list(element.items()):
                if sub_name == "primary":
                    element[sub_name] = compat.coerce_boolean(sub_value, f"{attribute.name}.primary")
                else:
                    element[sub_name] = _string(sub_value, f"{attribute.name}.{sub_name}")
            if element:
                cleaned.append(element)
        if sum(1 for e in cleaned if e.get("primary")) > 1:
            raise InvalidInput(f"at most one of {attribute.name} may be primary", field=attribute.name)
        if cleaned:
            multi[attribute.name] = cleaned
    values["multi_valued"] = multi
    values["extensions"] = extension_values(doc)
    return UserValues(**values)


def extension_values(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The attributes of the document's custom schema extensions (not the enterprise one), by URN."""
    return {key: dict(value) for key, value in doc.items() if value and key != ENTERPRISE_USER and key.lower().startswith(EXTENSION_PREFIX)}


def _lookup(doc: dict[str, Any], key: str) -> Any:
    container: Any = doc
    if key.startswith(ENTERPRISE_USER + ":"):
        container = doc.get(ENTERPRISE_USER) or {}
        key = key[len(ENTERPRISE_USER) + 1 :]
    name, _, sub = key.partition(".")
    value = container.get(name)
    if sub:
        return value.get(sub) if isinstance(value, dict) else None
    return value


def group_values(doc: dict[str, Any]) -> GroupValues:
    """What a SCIM document sets on a group's attributes (the description is not SCIM's: it stays)."""
    display_name, external_id = doc.get("displayName"), doc.get("externalId")
    values = GroupValues(
        display_name=display_name if not isinstance(display_name, str) else _string(display_name, "displayName"),
        external_id=None if external_id in (None, "") else _string(external_id, "externalId"),
        extensions=extension_values(doc),
    )
    groups.check_values(values, creating=True)  # a SCIM document names the group every time
    return values
