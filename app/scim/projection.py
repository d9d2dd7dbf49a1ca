"""Which attributes a response carries: `attributes` and `excludedAttributes` (RFC 7644 §3.4.2.5).

Besides attribute names, a name may carry a value filter, `emails[type eq "work"]` (optionally
followed by `.sub`), as Microsoft's SCIM test collection sends: in `attributes` it keeps only the
matching elements of that attribute, in `excludedAttributes` it removes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.errors import InvalidFilter, InvalidInput
from app.scim.filter import And, Expr, Not, Or, ValuePath, parse_filter
from app.scim.patch import element_matches
from app.scim.schema import Attribute, ResourceType, resolve

ALWAYS = frozenset({"schemas", "id"})


@dataclass(frozen=True)
class Selection:
    """One name of `attributes`/`excludedAttributes`: a top-level key of the document, optionally a
    sub-attribute inside it, and optionally the value filter that picks elements of a multi-valued one."""

    key: str
    sub: str | None = None
    where: Expr | None = None
    attribute: Attribute | None = None  # set with `where`, to evaluate it

    def picks(self, element: Any) -> bool:
        if self.where is None:
            return True
        assert self.attribute is not None
        return isinstance(element, dict) and element_matches(element, self.where, self.attribute)


@dataclass(frozen=True)
class Projection:
    attributes: tuple[Selection, ...] | None = None
    excluded: tuple[Selection, ...] = ()

    @classmethod
    def parse(cls, attributes: Any, excluded: Any, resource: ResourceType) -> Projection:
        return cls(
            _selections(attributes, resource, "attributes") if attributes not in (None, "", []) else None,
            _selections(excluded, resource, "excludedAttributes") or (),
        )

    def wants(self, top_key: str) -> bool:
        """Whether a top-level attribute will be in the response (so whether to load it)."""
        if top_key in ALWAYS:
            return True
        if self.attributes is not None:
            return any(s.key == top_key for s in self.attributes)
        return not any(s.key == top_key and s.sub is None and s.where is None for s in self.excluded)

    def apply(self, doc: dict[str, Any]) -> dict[str, Any]:
        if self.attributes is None and not self.excluded:
            return doc
        if self.attributes is not None:
            out: dict[str, Any] = {}
            for key, value in doc.items():
                if key in ALWAYS:
                    out[key] = value
                    continue
                chosen = [s for s in self.attributes if s.key == key]
                if chosen:
                    out[key] = _keep(value, chosen)
            return {k: v for k, v in out.items() if v not in (None, [], {})}
        out = dict(doc)
        for selection in self.excluded:
            if selection.key in ALWAYS or selection.key not in out:
                continue
            out[selection.key] = _drop(out[selection.key], selection)
            if out[selection.key] in (None, [], {}):
                out.pop(selection.key)
        return out


def _keep(value: Any, chosen: list[Selection]) -> Any:
    """`value` narrowed to what any of `chosen` selects (their union)."""
    if not isinstance(value, list):
        if any(s.sub is None for s in chosen):
            return value
        return _narrowed(value, {s.sub for s in chosen})
    kept = []
    for element in value:
        picked = [s for s in chosen if s.picks(element)]
        if not picked:
            continue
        if any(s.sub is None for s in picked):
            kept.append(element)
        elif narrowed := _narrowed(element, {s.sub for s in picked}):
            kept.append(narrowed)
    return kept


def _drop(value: Any, selection: Selection) -> Any:
    if selection.sub is None and selection.where is None:
        return None
    if not isinstance(value, list):
        return _without(value, selection.sub)
    kept = []
    for element in value:
        if not selection.picks(element):
            kept.append(element)
        elif selection.sub is not None and (rest := _without(element, selection.sub)):
            kept.append(rest)
    return kept


def _narrowed(value: Any, subs: set[str | None]) -> Any:
    return {k: v for k, v in value.items() if k in subs} if isinstance(value, dict) else value


def _without(value: Any, sub: str | None) -> Any:
    return {k: v for k, v in value.items() if k != sub} if isinstance(value, dict) else value


def _selections(raw: Any, resource: ResourceType, name: str) -> tuple[Selection, ...]:
    if raw in (None, ""):
        return ()
    if isinstance(raw, str):
        items = _split(raw)
    elif isinstance(raw, list) and all(isinstance(p, str) for p in raw):
        items = [p.strip() for p in raw]
    else:
        raise InvalidInput(f"{name} must be a comma-separated string or a list of strings", field=name)
    out: list[Selection] = []
    for item in items:
        selection = _selection(item, resource, name) if item else None
        if selection is not None:
            out.append(selection)
    return tuple(out)


def _split(raw: str) -> list[str]:
    """Split on commas outside brackets and quotes: a value filter may contain either."""
    items, start, depth, quoted, escaped = [], 0, 0, False, False
    for at, char in enumerate(raw):
        if quoted:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char == "[":
            depth += 1
        elif char == "]":
            depth = max(depth - 1, 0)
        elif char == "," and depth == 0:
            items.append(raw[start:at].strip())
            start = at + 1
    items.append(raw[start:].strip())
    return items


def _selection(item: str, resource: ResourceType, name: str) -> Selection | None:
    if "[" not in item:
        target = resolve(item, resource)
        if target is None:
            return None  # unknown names select nothing
        if target.attribute is None:
            return Selection(target.schema)
        if target.is_extension:
            # Project inside the extension object: keep the extension, narrowed to the attribute.
            return Selection(target.schema, target.attribute.name)
        return Selection(target.attribute.name, target.sub.name if target.sub else None)
    open_at, close_at = item.index("["), item.rfind("]")
    target = resolve(item[:open_at], resource)
    if target is None:
        return None  # as any unknown name
    if close_at < open_at:
        raise InvalidFilter(f"unbalanced brackets in {name} '{item}'")
    attribute = target.attribute
    if attribute is None or target.is_extension or target.sub or not attribute.multi_valued or not attribute.sub_attributes:
        raise InvalidFilter(f"'{item[:open_at]}' in {name} is not a multi-valued attribute with sub-attributes")
    where = parse_filter(item[open_at + 1 : close_at])
    _check_element_filter(where, attribute, name)
    rest = item[close_at + 1 :]
    sub = None
    if rest:
        found = attribute.sub(rest[1:]) if rest.startswith(".") else None
        if found is None:
            raise InvalidFilter(f"unknown sub-attribute '{rest.lstrip('.')}' of {attribute.name} in {name}")
        sub = found.name
    return Selection(attribute.name, sub, where, attribute)


def _check_element_filter(expr: Expr, attribute: Attribute, name: str) -> None:
    """Refuse up front what `element_matches` could not evaluate, so applying never fails."""
    if isinstance(expr, And | Or):
        _check_element_filter(expr.left, attribute, name)
        _check_element_filter(expr.right, attribute, name)
    elif isinstance(expr, Not):
        _check_element_filter(expr.expr, attribute, name)
    elif isinstance(expr, ValuePath):
        raise InvalidFilter(f"value filters cannot be nested (in {name})")
    elif attribute.sub(expr.attr.path.split(".")[-1]) is None:
        raise InvalidFilter(f"unknown sub-attribute '{expr.attr.path}' of {attribute.name} in {name}")
