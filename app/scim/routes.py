from __future__ import annotations

from starlette.routing import BaseRoute


def scim_routes() -> list[BaseRoute]:
    return []
