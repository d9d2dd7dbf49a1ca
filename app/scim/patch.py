"""PATCH (RFC 7644 §3.5.2): parse paths and apply operations to a resource document.

The engine works on the canonical document of a resource (attribute names as in the schema, the
enterprise extension under its URN). Operations on a group's `members` are not applied to a
document — a group may have 100,000 members — but returned as `MemberChange`s for the service to run
as set operations in SQL. All operations of one request apply in order or not at all: the caller
applies the result only if every operation succeeded.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from app.errors import InvalidFilter, InvalidInput, InvalidPath, InvalidSyntax, Mutability, NoTarget
from app.scim import compat
from app.scim.filter import And, Compare, Expr, Not, Or, Present, ValuePath, parse_filter
from app.scim.parsing import canonical_elements
from app.scim.schema import Attribute, AttributeType, ResolvedPath, ResourceType, resolve
from app.services.groups import MemberChange
from app.validation import has_nul

IGNORED_PATHLESS_KEYS = frozenset({"schemas", "meta", "id"})


@dataclass(frozen=True)
class PatchPath:
    raw: str
    target: ResolvedPath  # the attribute (and sub-attribute when written `attr.sub`)
    filter: Expr | None = None
    filter_sub: Attribute | None = None  # the `.sub` after `attr[filter]`

    @property
    def attribute(self) -> Attribute:
        assert self.target.attribute is not None
        return self.target.attribute

    @property
    def sub(self) -> Attribute | None:
        return self.filter_sub or self.target.sub


@dataclass
class PatchResult:
    document: dict[str, Any]
    member_changes: list[MemberChange] = field(default_factory=list)


def _sub_name(attribute: Attribute, key: str) -> str:
    """The schema's name of a sub-attribute `key` names in any letter case; `key` when it is unknown."""
    sub = attribute.sub(key)
    return key if sub is None else sub.name


def parse_path(raw: str, resource: ResourceType) -> PatchPath:
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidPath("path must be a non-empty string")
    raw = raw.strip()
    if "[" in raw:
        open_at, close_at = raw.index("["), raw.rfind("]")
        if close_at < open_at:
            raise InvalidPath(f"unbalanced brackets in path '{raw}'")
        target = resolve(raw[:open_at], resource)
        if target is None or target.attribute is None or not target.attribute.multi_valued or target.sub:
            raise InvalidPath(f"'{raw[:open_at]}' is not a multi-valued attribute of {resource.name}")
        try:
            expr = parse_filter(raw[open_at + 1 : close_at])
        except InvalidFilter as exc:
            raise InvalidPath(f"invalid filter in path '{raw}': {exc.message}") from None
        rest = raw[close_at + 1 :]
        sub = None
        if rest:
            if not rest.startswith(".") or target.attribute.sub(rest[1:]) is None:
                raise InvalidPath(f"unknown sub-attribute '{rest.lstrip('.')}' in path '{raw}'")
            sub = target.attribute.sub(rest[1:])
        return PatchPath(raw, target, expr, sub)
    target = resolve(raw, resource)
    if target is None:
        raise InvalidPath(f"unknown attribute '{raw}' for {resource.name}")
    return PatchPath(raw, target)


def _get(mapping: dict[str, Any], name: str) -> Any:
    lowered = name.lower()
    return next((v for k, v in mapping.items() if k.lower() == lowered), None)


def element_matches(element: dict[str, Any], expr: Expr, attribute: Attribute) -> bool:
    """Evaluate a value filter against one element of a multi-valued attribute (one resource's
    own values; table filtering happens in SQL)."""
    if isinstance(expr, And):
        return element_matches(element, expr.left, attribute) and element_matches(element, expr.right, attribute)
    if isinstance(expr, Or):
        return element_matches(element, expr.left, attribute) or element_matches(element, expr.right, attribute)
    if isinstance(expr, Not):
        return not element_matches(element, expr.expr, attribute)
    if isinstance(expr, ValuePath):
        raise InvalidPath("value filters cannot be nested")
    name = expr.attr.path.split(".")[-1]
    sub = attribute.sub(name)
    if sub is None:
        raise InvalidPath(f"unknown sub-attribute '{expr.attr.path}' of {attribute.name}")
    actual = _get(element, sub.name)
    if isinstance(expr, Present):
        return actual not in (None, "")
    expected = expr.value
    if sub.type == AttributeType.BOOLEAN:
        try:
            actual_b = compat.coerce_boolean(actual, sub.name) if actual is not None else None
            expected_b = compat.coerce_boolean(expected, sub.name) if expected is not None else None
        except Exception:
            return False
        return (actual_b == expected_b) if expr.op == "eq" else (actual_b != expected_b) if expr.op == "ne" else False
    if actual is None or expected is None:
        return (expr.op == "eq" and actual is expected) or (expr.op == "ne" and actual is not expected)
    a, e = str(actual), str(expected)
    if not sub.case_exact:
        a, e = a.lower(), e.lower()
    return {
        "eq": a == e,
        "ne": a != e,
        "co": e in a,
        "sw": a.startswith(e),
        "ew": a.endswith(e),
        "gt": a > e,
        "ge": a >= e,
        "lt": a < e,
        "le": a <= e,
    }[expr.op]


def _equalities(expr: Expr) -> dict[str, Any] | None:
    """The sub-attribute values an `eq`-only filter pins down, to create a missing element."""
    if isinstance(expr, Compare) and expr.op == "eq":
        return {expr.attr.path.split(".")[-1]: expr.value}
    if isinstance(expr, And):
        left, right = _equalities(expr.left), _equalities(expr.right)
        if left is not None and right is not None:
            return {**left, **right}
    return None


class _Engine:
    def __init__(self, document: dict[str, Any], resource: ResourceType, collect: str | None) -> None:
        self.doc = copy.deepcopy(document)
        self.resource = resource
        self.collect = collect
        self.result = PatchResult(self.doc)

    def container(self, path: ResolvedPath) -> dict[str, Any]:
        if path.is_extension:
            return self.doc.setdefault(path.schema, {})
        return self.doc

    def apply(self, op: str, path: PatchPath | None, value: Any) -> None:
        if path is None:
            if op == "remove":
                raise NoTarget("remove needs a path (RFC 7644 §3.5.2.2)")
            if not isinstance(value, dict):
                raise InvalidSyntax(f"{op} without a path needs an object value", field="value")
            self.apply_pathless(op, value)
            return
        self.apply_path(op, path, value)

    def apply_pathless(self, op: str, value: dict[str, Any], prefix: str = "") -> None:
        for key, item in value.items():
            if key.lower() == "schemas" or (key.lower() in IGNORED_PATHLESS_KEYS and not prefix):
                continue  # clients echo these back, extension objects included
            full = f"{prefix}:{key}" if prefix else key
            target = resolve(full, self.resource)
            if target is None:
                # A key of a path-less value is a path (RFC 7644 §3.5.2.1): one naming nothing is an error.
                raise InvalidPath(f"unknown attribute '{full}' for {self.resource.name}")
            if target.attribute is None:  # a whole extension: {"urn:…:User": {...}}
                if not isinstance(item, dict):
                    raise InvalidSyntax(f"{key} must be an object", field=key)
                self.apply_pathless(op, item, target.schema)
                continue
            self.apply_path(op, PatchPath(full, target), item)

    def apply_path(self, op: str, path: PatchPath, value: Any) -> None:
        if path.target.attribute is None:  # the whole extension, e.g. "urn:…:enterprise:2.0:User"
            if op == "remove" or compat.is_empty(value):
                self.doc.pop(path.target.schema, None)
                return
            if not isinstance(value, dict):
                raise InvalidSyntax(f"{path.raw} needs an object value", field=path.raw)
            if op == "replace":
                self.doc.pop(path.target.schema, None)
            self.apply_pathless("add" if op == "replace" else op, value, path.target.schema)
            return
        attribute = path.attribute
        if attribute.read_only or (path.sub is not None and path.sub.read_only):
            raise Mutability(f"'{path.raw}' is read-only and cannot be modified")
        if self.collect is not None and attribute.name == self.collect:
            self.member_change(op, path, value)
            return
        container = self.container(path.target)
        name = attribute.name
        if attribute.multi_valued:
            self.multi_valued(op, path, container, value)
        elif attribute.type == AttributeType.COMPLEX:
            self.complex(op, path, container, value)
        elif op == "remove" or compat.is_empty(value):
            container.pop(name, None)
        else:
            container[name] = _checked_leaf(value, attribute, path.raw)

    def complex(self, op: str, path: PatchPath, container: dict[str, Any], value: Any) -> None:
        name = path.attribute.name
        if name == "manager" and path.sub is None:
            value = compat.manager_reference(value) if op != "remove" else None
        current = container.get(name) or {}
        if path.sub is not None:
            if op == "remove" or compat.is_empty(value):
                current.pop(path.sub.name, None)
            else:
                current[path.sub.name] = _checked_leaf(value, path.sub, path.raw)
        elif op == "remove" or compat.is_empty(value) or value == {}:
            current = {} if op != "add" else current
        else:
            if not isinstance(value, dict):
                raise InvalidSyntax(f"{name} needs an object value", field=name)
            # RFC 7644 §3.5.2.3: sub-attributes not named in the value are left unchanged.
            checked = {}
            for key, item in value.items():
                sub = path.attribute.sub(key)
                if sub is not None and not sub.read_only and not compat.is_empty(item):
                    checked[sub.name] = _checked_leaf(item, sub, f"{name}.{sub.name}")
                elif sub is not None and compat.is_empty(item):
                    checked[sub.name] = None
            current = {**current, **checked}
            current = {k: v for k, v in current.items() if not compat.is_empty(v)}
        if current:
            container[name] = current
        else:
            container.pop(name, None)

    def multi_valued(self, op: str, path: PatchPath, container: dict[str, Any], value: Any) -> None:
        """An operation on a multi-valued attribute: on the whole list (`emails`), on one
        sub-attribute of every element (`emails.value`), or on the elements a filter selects
        (`emails[type eq "work"]`, `emails[type eq "work"].value`)."""
        name = path.attribute.name
        elements: list[dict[str, Any]] = list(container.get(name) or [])
        if path.filter is None and path.sub is None:
            elements = _on_list(op, path.attribute, elements, value)
        elif path.filter is None:
            assert path.sub is not None
            elements = _on_every_element(op, path.sub, elements, value)
        else:
            elements = _on_selected(op, path, elements, value)
        elements = [e for e in elements if _meaningful(e, path.attribute)]
        if elements:
            container[name] = elements
        else:
            container.pop(name, None)

    def member_change(self, op: str, path: PatchPath, value: Any) -> None:
        changes = self.result.member_changes
        if path.sub is not None:
            raise InvalidPath(f"'{path.raw}' cannot be modified; add or remove whole members")
        if path.filter is not None:
            if op != "remove":
                raise InvalidPath("members with a filter can only be removed")
            ids = _member_ids_in_filter(path.filter)
            changes.append(MemberChange("remove", tuple(ids)))
            return
        ids = compat.member_values(value)
        if op == "remove":
            changes.append(MemberChange("remove", tuple(ids)) if ids else MemberChange("clear"))
        elif op == "replace":
            changes.append(MemberChange("replace", tuple(ids)))
        elif ids:
            changes.append(MemberChange("add", tuple(ids)))


def _checked_leaf(value: Any, attribute: Attribute, where: str) -> Any:
    """A value is checked when it is applied, before a later operation can overwrite it."""
    if attribute.open:
        return compat.open_value(value, where)
    if attribute.type == AttributeType.BOOLEAN:
        return compat.coerce_boolean(value, where)
    if not isinstance(value, str) or has_nul(value):
        raise InvalidInput(f"{where} must be a string without NUL characters, got {type(value).__name__}", field=where)
    return value


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _is_primary(element: Any) -> bool:
    if not isinstance(element, dict):
        return False
    flag = element.get("primary")
    try:
        return flag is not None and compat.coerce_boolean(flag, "primary")
    except Exception:
        return False


def _without(element: dict[str, Any], sub: str) -> dict[str, Any]:
    return {k: v for k, v in element.items() if k != sub}


def _meaningful(element: dict[str, Any], attribute: Attribute) -> bool:
    """An element left with only its type/primary/display labels says nothing; drop it."""
    labels = {"type", "primary", "display"}
    return any(k not in labels and not compat.is_empty(v) and v != [] for k, v in element.items())


def _member_ids_in_filter(expr: Expr) -> list[str]:
    """`members[value eq "a"]`, or several joined with `or` (the aadOptscim062020 form)."""
    if isinstance(expr, Compare) and expr.op == "eq" and expr.attr.path.lower() in ("value", "members.value"):
        if not isinstance(expr.value, str):
            raise InvalidPath("member ids are strings")
        return [expr.value]
    if isinstance(expr, Or):
        return _member_ids_in_filter(expr.left) + _member_ids_in_filter(expr.right)
    raise InvalidPath('members can be selected only by value, e.g. members[value eq "<id>"]')


def apply_patch(document: dict[str, Any], body: Any, resource: ResourceType, *, collect: str | None = None) -> PatchResult:
    """Apply a PatchOp body to a copy of `document`. `collect` names the attribute whose changes
    are returned as MemberChanges instead of being applied."""
    if not isinstance(body, dict):
        raise InvalidSyntax("a PATCH body must be a JSON object")
    compat.check_schemas_list(body)
    operations = _get(body, "Operations")
    if not isinstance(operations, list) or not operations:
        raise InvalidSyntax("a PATCH body needs a non-empty 'Operations' list", field="Operations")
    engine = _Engine(document, resource, collect)
    for operation in operations:
        if not isinstance(operation, dict):
            raise InvalidSyntax("each operation must be a JSON object", field="Operations")
        op = compat.op_name(_get(operation, "op"))
        raw_path = _get(operation, "path")
        value = compat.drop_nulls(_get(operation, "value"))
        path = parse_path(raw_path, resource) if raw_path not in (None, "") else None
        if op != "remove" and not any(isinstance(k, str) and k.lower() == "value" for k in operation):
            raise InvalidSyntax(f"{op} needs a value (RFC 7644 §3.5.2)", field="value")
        engine.apply(op, path, value)
    return engine.result


def _on_list(op: str, attribute: Attribute, elements: list[dict[str, Any]], value: Any) -> list[dict[str, Any]]:
    """`op` on the whole list: remove the listed values (never "clear all" unless no value is
    given), replace it, or add to it (a new primary element takes primary from the others)."""
    if op == "remove":
        if compat.is_empty(value):
            return []
        drop = {str(v.get("value") if isinstance(v, dict) else v).lower() for v in _as_list(value)}
        return [e for e in elements if str(e.get("value")).lower() not in drop]
    if compat.is_empty(value) or value == []:
        return [] if op == "replace" else elements
    new = canonical_elements(attribute, value)
    if op == "replace":
        return new
    if any(_is_primary(v) for v in new):
        elements = [{**e, "primary": False} if _is_primary(e) else e for e in elements]
    return elements + [v for v in new if v not in elements]


def _on_every_element(op: str, sub: Attribute, elements: list[dict[str, Any]], value: Any) -> list[dict[str, Any]]:
    """`op` on one sub-attribute of every element (`emails.value`); on an empty list, a new element."""
    if op == "remove" or compat.is_empty(value):
        return [_without(e, sub.name) for e in elements]
    if elements:
        return [{**e, sub.name: value} for e in elements]
    return [{sub.name: value}]


def _on_selected(op: str, path: PatchPath, elements: list[dict[str, Any]], value: Any) -> list[dict[str, Any]]:
    """`op` on the elements the path's filter selects, or on one of their sub-attributes."""
    assert path.filter is not None
    sub = path.sub
    if sub is not None and op != "remove" and not compat.is_empty(value):
        value = _checked_leaf(value, sub, path.raw)
    matched = [i for i, e in enumerate(elements) if element_matches(e, path.filter, path.attribute)]
    if op == "remove" or (sub is not None and compat.is_empty(value)):
        if sub is None:
            return [e for i, e in enumerate(elements) if i not in matched]
        # remove a sub-attribute — even when the request carries a value
        return [_without(e, sub.name) if i in matched else e for i, e in enumerate(elements)]
    if not matched:
        return [*elements, _created_by_filter(path, value)]
    changed = list(elements)
    for i in matched:
        if sub is not None:
            changed[i] = {**changed[i], sub.name: value}
        elif compat.is_empty(value):
            changed[i] = {}
        elif isinstance(value, dict):
            changed[i] = {**changed[i], **value}
        else:
            raise InvalidSyntax(f"{path.raw} needs an object value", field=path.attribute.name)
    return changed


def _created_by_filter(path: PatchPath, value: Any) -> dict[str, Any]:
    """Entra's quirk: Add or Replace on `emails[type eq "work"].value` when no work email exists yet
    expects one created, from the equalities of the filter and the value (RFC 7644 would answer
    noTarget). A filter that is not a conjunction of equalities cannot say what to create."""
    assert path.filter is not None
    seed = _equalities(path.filter)
    if seed is None:
        raise NoTarget(f"no element matches '{path.raw}' and it does not say how to create one")
    element = {_sub_name(path.attribute, k): v for k, v in seed.items()}
    if path.sub is not None:
        element[path.sub.name] = value
    elif isinstance(value, dict):
        element.update(value)
    elif not compat.is_empty(value):
        raise InvalidSyntax(f"{path.raw} needs an object value", field=path.attribute.name)
    return element
