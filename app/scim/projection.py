"""Which attributes a response carries: `attributes` and `excludedAttributes` (RFC 7644 §3.4.2.5)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.errors import InvalidInput
from app.scim.schema import ResourceType, resolve

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
