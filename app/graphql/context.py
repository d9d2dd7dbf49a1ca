"""The typed per-request context: one session (one transaction), the caller, and DataLoaders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from strawberry.types import Info as _Info

from app.services.caller import Caller


@dataclass
class Context:
    request: Request
    session: AsyncSession
    caller: Caller
    loaders: Any = field(default=None)


Info = _Info[Context, None]
