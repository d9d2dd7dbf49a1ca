"""The typed per-request context: one session (one transaction), the caller, and DataLoaders."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from strawberry.types import Info as _Info

from app.graphql.loaders import Loaders
from app.services.caller import Caller

T = TypeVar("T")


@dataclass
class Context:
    request: Request
    session: AsyncSession
    caller: Caller
    # GraphQL resolves sibling fields concurrently, but one session runs one statement at a time.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    loaders: Loaders = field(init=False)  # this request's, made with the context
    # The first database failure a resolver met; the endpoint retries or answers 503 instead of committing.
    database_error: BaseException | None = None

    def __post_init__(self) -> None:
        self.loaders = Loaders(self)

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Run a service call with the session, one at a time."""
        async with self.lock:
            return await fn(self.session, *args, **kwargs)


Info = _Info[Context, None]
