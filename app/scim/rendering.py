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


class _Section(NamedTuple):
    """The attributes of a user kept in columns that land in one object of its document: the core
    schema's (`container` ""), or the enterprise extension's (`container` its URN). `simple` holds
    (column, attribute); `complex` holds (attribute, ((column, sub-attribute), …)), each complex
    attribute after the simple ones, as the schema lists them."""

    container: str
    simple: tuple[tuple[Any, str], ...]
    complex: tuple[tuple[str, tuple[tuple[Any, str], ...]], ...]

    def at(self, position: dict[str, int]) -> _Section:
        """The same section with each column replaced by its position in a row."""
        return _Section(
            self.container,
            tuple((position[column], name) for column, name in self.simple),
            tuple((name, tuple((position[column], sub) for column, sub in subs)) for name, subs in self.complex),
        )


def _user_sections() -> tuple[_Section, ...]:
    """Where each column of a user lands in its document — worked out once from USER_COLUMNS, not per user."""
    sections: dict[str, tuple[list[tuple[str, str]], dict[str, list[tuple[str, str]]]]] = {"": ([], {}), ENTERPRISE_USER: ([], {})}
    for key, column in USER_COLUMNS.items():
        container = ENTERPRISE_USER if key.startswith(ENTERPRISE_USER + ":") else ""
        name, _, sub = key.removeprefix(ENTERPRISE_USER + ":").partition(".")
        simple, complex_ = sections[container]
        if sub:
            complex_.setdefault(name, []).append((column, sub))
        else:
            simple.append((column, name))
    return tuple(
        _Section(container, tuple(simple), tuple((name, tuple(subs)) for name, subs in complex_.items()))
        for container, (simple, complex_) in sections.items()
    )


_USER_SECTIONS = _user_sections()
_USER_MULTI_VALUED_NAMES = tuple(attribute.name for attribute in USER_MULTI_VALUED)
# The columns a user's document and resource are made of: a list of users reads these alone.
_USER_FIELDS = tuple(
    dict.fromkeys([*USER_COLUMNS.values(), "multi_valued", "extensions", "id", "manager_id", "created_at", "updated_at", "version"])
)
USER_RESOURCE_COLUMNS = frozenset(_USER_FIELDS)


class _Positions(NamedTuple):
    """Where the columns of a user are in a row of some statement: the sections by position, and
    the few columns read by name."""

    sections: tuple[_Section, ...]
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
    return _Positions(tuple(section.at(at) for section in _USER_SECTIONS), *(at[name] for name in _Positions._fields[1:]))


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
    return _user_document(*_values(user), copy, {})


def _user_document(values: Sequence[Any], at: _Positions, copy: bool, doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` with the attributes of the user whose columns are `values` added to it."""
    for section in at.sections:
        part: dict[str, Any] = {} if section.container else doc
        for i, name in section.simple:
            value = values[i]
            if value is not None:
                part[name] = value
        for name, subs in section.complex:
            complex_value = {}
            for i, sub in subs:
                value = values[i]
                if value is not None:
                    complex_value[sub] = value
            if complex_value:
                part[name] = complex_value
        if part and section.container:
            doc[section.container] = part
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


def _schemas(core: str, extensions: dict[str, Any] | None, *, enterprise: bool = False) -> list[str]:
    """`schemas` of a resource: its core schema, the enterprise extension's URN when it carries
    that extension, and the URN of each custom extension it carries (`_add_extensions`)."""
    schemas = [core, ENTERPRISE_USER] if enterprise else [core]
    if extensions:
        schemas.extend(urn for urn, attributes in extensions.items() if attributes)
    return schemas


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
    user_id = values[at.id]
    # The attributes follow "schemas" and "id", whose value is known once they are in.
    out = _user_document(values, at, False, {"schemas": None, "id": user_id})
    enterprise = out.pop(ENTERPRISE_USER, None)  # it follows the groups
    out["schemas"] = _schemas(CORE_USER, values[at.extensions], enterprise=enterprise is not None)
    if enterprise and "manager" in enterprise:
        manager_id = values[at.manager_id]
        manager = {"value": manager_id, "$ref": links.user(str(manager_id))}
        if manager_display:
            manager["displayName"] = manager_display
        enterprise["manager"] = manager
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
    out: dict[str, Any] = {"schemas": _schemas(CORE_GROUP, group.extensions), "id": group.id, **doc}
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
