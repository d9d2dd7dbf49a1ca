"""SCIM documents <-> service values, and rendering of User and Group resources (RFC 7643 §4)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from app.errors import InvalidInput, InvalidSyntax
from app.scim import compat
from app.scim.mapping import GROUP_COLUMNS, USER_COLUMNS
from app.scim.schema import CORE_GROUP, CORE_USER, ENTERPRISE_USER, USER_MULTI_VALUED, Attribute, ResourceType, resolve
from app.services.groups import GroupValues
from app.services.users import UserValues
from app.validation import MAX_INDEXED, has_nul, is_blank


def _timestamp(value: datetime) -> str:
    return value.isoformat(timespec="microseconds").replace("+00:00", "Z")


def etag(version: int) -> str:
    return f'W/"{version}"'


# --- incoming documents ---------------------------------------------------------------------------


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
        if sub.type == "boolean":
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
    if attribute.name == "manager":
        return compat.manager_reference(value)
    if attribute.multi_valued:
        if not isinstance(value, list):
            raise InvalidInput(f"{attribute.name} must be a list", field=attribute.name)
        if attribute.name == "members":
            return value  # checked element by element where member ids are read
        if attribute.type != "complex":
            return value
        return [e for e in (_canonical_element(attribute, v) for v in value) if e]
    if attribute.type == "complex":
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
            for sub_key, sub_value in value.items():
                inner = resolve(f"{target.schema}:{sub_key}", resource)
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
    user_name = doc.get("userName")
    if not isinstance(user_name, str) or is_blank(user_name):
        raise InvalidInput("userName is required and must be a non-empty string", field="userName")
    _string(user_name, "userName")
    values: dict[str, Any] = {}
    for key, column in USER_COLUMNS.items():
        value = _lookup(doc, key)
        if value is None or value == "":
            values[column] = None
        elif column == "active":
            values[column] = compat.coerce_boolean(value, "active")
        else:
            values[column] = _string(value, key.rsplit(":", 1)[-1])
    for column, name in (("user_name", "userName"), ("external_id", "externalId"), ("manager_id", "manager")):
        if values[column] is not None and len(values[column]) > MAX_INDEXED:
            raise InvalidInput(f"{name} is longer than {MAX_INDEXED} characters", field=name)
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
    return UserValues(**values)


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
    display_name = doc.get("displayName")
    if not isinstance(display_name, str) or is_blank(display_name):
        raise InvalidInput("displayName is required and must be a non-empty string", field="displayName")
    external_id = doc.get("externalId")
    values = {
        "display_name": _string(display_name, "displayName"),
        "external_id": None if external_id in (None, "") else _string(external_id, "externalId"),
    }
    for column, name in (("display_name", "displayName"), ("external_id", "externalId")):
        value = values[column]
        if value is not None and len(value) > MAX_INDEXED:
            raise InvalidInput(f"{name} is longer than {MAX_INDEXED} characters", field=name)
    return GroupValues(**values)


# --- stored resources as documents ------------------------------------------------------------------


def _user_layout() -> tuple[tuple[str, bool, str, str], ...]:
    """Where each column of a user lands in its document: (column, in the enterprise extension,
    attribute, sub-attribute or ""), in USER_COLUMNS order — worked out once, not per user."""
    layout = []
    for key, column in USER_COLUMNS.items():
        in_extension = key.startswith(ENTERPRISE_USER + ":")
        name, _, sub = (key[len(ENTERPRISE_USER) + 1 :] if in_extension else key).partition(".")
        layout.append((column, in_extension, name, sub))
    return tuple(layout)


_USER_LAYOUT = _user_layout()
_USER_MULTI_VALUED_NAMES = tuple(attribute.name for attribute in USER_MULTI_VALUED)


class _Attributes:
    """An entity's columns by name, read through its attributes."""

    __slots__ = ("_entity",)

    def __init__(self, entity: Any) -> None:
        self._entity = entity

    def __getitem__(self, column: str) -> Any:
        return getattr(self._entity, column)


class _Columns(Protocol):
    """The columns of a stored resource, by name."""

    def __getitem__(self, column: str, /) -> Any: ...


def _columns(stored: Any) -> _Columns:
    """The columns of a stored resource by name. A plain row (a named tuple) is read all at once:
    reading its fields one by one as attributes costs several times more."""
    fields = getattr(stored, "_fields", None)
    return _Attributes(stored) if fields is None else dict(zip(fields, stored, strict=True))


def user_document(user: Any, *, copy: bool = True) -> dict[str, Any]:
    """The canonical document of a stored user's writable attributes (what PATCH works on), from
    an entity or a plain row. `copy=False` shares the elements of multi-valued attributes with
    `user`, for a document that is only rendered, never changed."""
    return _user_document(_columns(user), copy)


def _user_document(columns: _Columns, copy: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for column, in_extension, name, sub in _USER_LAYOUT:
        value = columns[column]
        if value is None:
            continue
        container = doc.setdefault(ENTERPRISE_USER, {}) if in_extension else doc
        if sub:
            container.setdefault(name, {})[sub] = value
        else:
            container[name] = value
    multi_valued = columns["multi_valued"]
    if multi_valued:
        for name in _USER_MULTI_VALUED_NAMES:
            elements = multi_valued.get(name)
            if elements:
                doc[name] = [dict(e) for e in elements] if copy else elements
    return doc


def group_document(group: Any) -> dict[str, Any]:
    """The document of a stored group's writable attributes, from an entity or a plain row."""
    doc: dict[str, Any] = {}
    for key, column in GROUP_COLUMNS.items():
        value = getattr(group, column)
        if value is not None:
            doc[key] = value
    return doc


@dataclass(frozen=True)
class Links:
    """Builds absolute resource URLs (`meta.location`, `$ref`)."""

    base: str  # <PUBLIC_URL>/gateway/ng/api/scim/account/<account>

    def user(self, user_id: str) -> str:
        return f"{self.base}/Users/{user_id}"

    def group(self, group_id: str) -> str:
        return f"{self.base}/Groups/{group_id}"


def render_user(
    user: Any, links: Links, *, groups: list[tuple[str, str]] | None = None, manager_display: str | None = None
) -> dict[str, Any]:
    """A user (an entity or a plain row) as a SCIM resource."""
    columns = _columns(user)
    doc = _user_document(columns, copy=False)
    enterprise = doc.get(ENTERPRISE_USER)
    if enterprise and "manager" in enterprise:
        manager_id = columns["manager_id"]
        manager = {"value": manager_id, "$ref": links.user(str(manager_id))}
        if manager_display:
            manager["displayName"] = manager_display
        enterprise["manager"] = manager
    user_id = columns["id"]
    out: dict[str, Any] = {
        "schemas": [CORE_USER, ENTERPRISE_USER] if enterprise else [CORE_USER],
        "id": user_id,
        **{k: v for k, v in doc.items() if k != ENTERPRISE_USER},
    }
    if groups:
        out["groups"] = [{"value": gid, "$ref": links.group(gid), "display": name, "type": "direct"} for gid, name in groups]
    if enterprise:
        out[ENTERPRISE_USER] = enterprise
    out["meta"] = {
        "resourceType": "User",
        "created": _timestamp(columns["created_at"]),
        "lastModified": _timestamp(columns["updated_at"]),
        "location": links.user(user_id),
        "version": etag(columns["version"]),
    }
    return out


def render_group(group: Any, links: Links, *, members: list[tuple[str, str | None]] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"schemas": [CORE_GROUP], "id": group.id, **group_document(group)}
    if members:
        out["members"] = [
            {"value": uid, "$ref": links.user(uid), "type": "User", **({"display": name} if name else {})} for uid, name in members
        ]
    out["meta"] = {
        "resourceType": "Group",
        "created": _timestamp(group.created_at),
        "lastModified": _timestamp(group.updated_at),
        "location": links.group(group.id),
        "version": etag(group.version),
    }
    return out


# --- attribute projection (RFC 7644 §3.9) ------------------------------------------------------------

ALWAYS = frozenset({"schemas", "id"})


@dataclass(frozen=True)
class Projection:
    attributes: tuple[tuple[str, str | None], ...] | None = None  # (top key, sub name)
    excluded: tuple[tuple[str, str | None], ...] = ()

    @classmethod
    def parse(cls, attributes: Any, excluded: Any, resource: ResourceType) -> Projection:
        return cls(
            _paths(attributes, resource, "attributes") if attributes not in (None, "", []) else None,
            _paths(excluded, resource, "excludedAttributes") or (),
        )

    def wants(self, top_key: str) -> bool:
        """Whether a top-level attribute will be in the response (so whether to load it)."""
        if top_key in ALWAYS:
            return True
        if self.attributes is not None:
            return any(key == top_key for key, _ in self.attributes)
        return not any(key == top_key and sub is None for key, sub in self.excluded)

    def apply(self, doc: dict[str, Any]) -> dict[str, Any]:
        if self.attributes is None and not self.excluded:
            return doc
        if self.attributes is not None:
            out: dict[str, Any] = {}
            for key, value in doc.items():
                if key in ALWAYS:
                    out[key] = value
                    continue
                subs = [sub for k, sub in self.attributes if k == key]
                if not subs:
                    continue
                out[key] = value if None in subs else _only_subs(value, set(subs))
            return {k: v for k, v in out.items() if v not in (None, [], {})}
        out = dict(doc)
        for key, sub in self.excluded:
            if key in ALWAYS or key not in out:
                continue
            if sub is None:
                out.pop(key)
            else:
                out[key] = _drop_subs(out[key], {sub})
                if out[key] in ([], {}):
                    out.pop(key)
        return out


def _paths(raw: Any, resource: ResourceType, name: str) -> tuple[tuple[str, str | None], ...]:
    if raw in (None, ""):
        return ()
    if isinstance(raw, str):
        items = [p.strip() for p in raw.split(",")]
    elif isinstance(raw, list) and all(isinstance(p, str) for p in raw):
        items = [p.strip() for p in raw]
    else:
        raise InvalidInput(f"{name} must be a comma-separated string or a list of strings", field=name)
    out: list[tuple[str, str | None]] = []
    for item in items:
        if not item:
            continue
        target = resolve(item, resource)
        if target is None:
            continue  # unknown names select nothing
        if target.attribute is None:
            out.append((target.schema, None))
        elif target.is_extension:
            # Project inside the extension object: keep the extension, narrowed to the attribute.
            out.append((target.schema, target.attribute.name))
        else:
            out.append((target.attribute.name, target.sub.name if target.sub else None))
    return tuple(out)


def _only_subs(value: Any, subs: set[str | None]) -> Any:
    if isinstance(value, list):
        return [e for e in (_only_subs(v, subs) for v in value) if e]
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k in subs}
    return value


def _drop_subs(value: Any, subs: set[str]) -> Any:
    if isinstance(value, list):
        return [e for e in (_drop_subs(v, subs) for v in value) if e]
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k not in subs}
    return value
