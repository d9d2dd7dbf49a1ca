"""Stored users and groups as SCIM resources (RFC 7643 §4), and as the canonical documents PATCH works on."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from copy import deepcopy
from dataclasses import dataclass
from typing import Any, NamedTuple

from app.scim.mapping import GROUP_COLUMNS, USER_COLUMNS
from app.scim.schema import CORE_GROUP, CORE_USER, ENTERPRISE_USER, USER_MULTI_VALUED


def etag(version: int) -> str:
    return f'W/"{version}"'


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
# The columns a user's document and resource are made of.
_USER_FIELDS = tuple(
    dict.fromkeys([*(c for c, *_ in _USER_LAYOUT), "multi_valued", "extensions", "id", "manager_id", "created_at", "updated_at", "version"])
)


class _Positions(NamedTuple):
    """Where the columns of a user are in a row of some statement: `_USER_LAYOUT` by position, and
    the few columns read by name."""

    layout: tuple[tuple[int, bool, str, str], ...]
    multi_valued: int
    extensions: int
    id: int
    manager_id: int
    created_at: int
    updated_at: int
    version: int


@functools.lru_cache(maxsize=64)
def _positions(fields: tuple[str, ...]) -> _Positions:
    """Worked out once per kind of row (the statements that read users are few)."""
    at = {name: i for i, name in enumerate(fields)}
    layout = tuple((at[column], in_extension, name, sub) for column, in_extension, name, sub in _USER_LAYOUT)
    return _Positions(layout, *(at[name] for name in _Positions._fields[1:]))


def _values(stored: Any) -> tuple[Sequence[Any], _Positions]:
    """The columns of a stored user and where each is. A plain row (a named tuple) is read by
    position: a dict of its fields, or reading them one by one as attributes, costs several times
    more; an entity's columns are read once, in `_USER_FIELDS` order."""
    fields = getattr(stored, "_fields", None)
    if fields is None:
        return tuple(getattr(stored, name) for name in _USER_FIELDS), _positions(_USER_FIELDS)
    return stored, _positions(fields)


def user_document(user: Any, *, copy: bool = True) -> dict[str, Any]:
    """The canonical document of a stored user's writable attributes (what PATCH works on), from
    an entity or a plain row. `copy=False` shares the elements of multi-valued attributes with
    `user`, for a document that is only rendered, never changed."""
    return _user_document(*_values(user), copy)


def _user_document(values: Sequence[Any], at: _Positions, copy: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for i, in_extension, name, sub in at.layout:
        value = values[i]
        if value is None:
            continue
        container = doc.setdefault(ENTERPRISE_USER, {}) if in_extension else doc
        if sub:
            container.setdefault(name, {})[sub] = value
        else:
            container[name] = value
    multi_valued = values[at.multi_valued]
    if multi_valued:
        for name in _USER_MULTI_VALUED_NAMES:
            elements = multi_valued.get(name)
            if elements:
                doc[name] = [dict(e) for e in elements] if copy else elements
    _add_extensions(doc, values[at.extensions], copy)
    return doc


def _add_extensions(doc: dict[str, Any], extensions: dict[str, Any] | None, copy: bool) -> None:
    """The custom schema extensions of a stored resource, each under its URN, as sent."""
    for urn, attributes in (extensions or {}).items():
        if attributes:
            doc[urn] = deepcopy(attributes) if copy else attributes


def _schemas(core: str, doc: dict[str, Any]) -> list[str]:
    """`schemas` of a resource: its core schema and the URN of each extension it carries."""
    return [core, *(key for key in doc if key.startswith("urn:"))]


def group_document(group: Any, *, copy: bool = True) -> dict[str, Any]:
    """The document of a stored group's writable attributes, from an entity or a plain row."""
    doc: dict[str, Any] = {}
    for key, column in GROUP_COLUMNS.items():
        value = getattr(group, column)
        if value is not None:
            doc[key] = value
    _add_extensions(doc, group.extensions, copy)
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
    """A user (an entity or a plain row) as a SCIM resource. Its timestamps stay datetimes (UTC):
    `scim_json` writes them, in C, as RFC 3339 with a `Z` — formatting them here cost a tenth of a
    page of users."""
    values, at = _values(user)
    doc = _user_document(values, at, copy=False)
    enterprise = doc.get(ENTERPRISE_USER)
    if enterprise and "manager" in enterprise:
        manager_id = values[at.manager_id]
        manager = {"value": manager_id, "$ref": links.user(str(manager_id))}
        if manager_display:
            manager["displayName"] = manager_display
        enterprise["manager"] = manager
    user_id = values[at.id]
    out: dict[str, Any] = {"schemas": _schemas(CORE_USER, doc), "id": user_id, **doc}
    if enterprise is not None:
        del out[ENTERPRISE_USER]  # it follows the groups
    if groups:
        out["groups"] = [{"value": gid, "$ref": links.group(gid), "display": name, "type": "direct"} for gid, name in groups]
    if enterprise:
        out[ENTERPRISE_USER] = enterprise
    out["meta"] = {
        "resourceType": "User",
        "created": values[at.created_at],
        "lastModified": values[at.updated_at],
        "location": links.user(user_id),
        "version": etag(values[at.version]),
    }
    return out


def render_group(group: Any, links: Links, *, members: Sequence[tuple[str, str | None]] | None = None) -> dict[str, Any]:
    doc = group_document(group, copy=False)
    out: dict[str, Any] = {"schemas": _schemas(CORE_GROUP, doc), "id": group.id, **doc}
    if members:
        out["members"] = [
            {"value": uid, "$ref": links.user(uid), "type": "User", **({"display": name} if name else {})} for uid, name in members
        ]
    out["meta"] = {
        "resourceType": "Group",
        "created": group.created_at,
        "lastModified": group.updated_at,
        "location": links.group(group.id),
        "version": etag(group.version),
    }
    return out
