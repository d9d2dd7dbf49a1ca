"""What an execution answered, in a form two executions can be compared by: the data, and each error's
message, path and locations (in a stable order)."""

from __future__ import annotations

from typing import Any


def answer(result: Any) -> dict[str, Any]:
    errors = [(e.message, e.path, [(loc.line, loc.column) for loc in e.locations or []]) for e in result.errors or []]
    return {"data": result.data, "errors": sorted(errors, key=repr)}
