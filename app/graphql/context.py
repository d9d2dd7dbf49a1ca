"""The typed per-request context: one session (one transaction), the caller, and DataLoaders."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from strawberry.types import Info as _Info

from app.db.types import utcnow
from app.graphql.loaders import Loaders
from app.services.caller import Caller
from app.services.common import Columns

T = TypeVar("T")


@dataclass
class Context:
    request: Request
    session: AsyncSession
    caller: Caller
    loaders: Loaders = field(init=False)  # this request's, made with the context
    now: datetime = field(init=False, default_factory=utcnow)  # the request's moment, for what depends on the time
    # The first database failure a resolver met; the endpoint retries or answers 503 instead of committing.
    database_error: BaseException | None = None
    # The columns each list of users or groups in the operation reads, by its field nodes (app/graphql/projection.py).
    projections: dict[Any, Columns] = field(default_factory=dict, init=False, repr=False)

    # GraphQL resolves sibling fields concurrently, but one session runs one statement at a time:
    # the session belongs to one task at a time (see `exclusive`).
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)
    _holder: asyncio.Task[Any] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.loaders = Loaders(self)

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[AsyncSession]:
        """The session, for this task alone until the block ends. A task that holds it already (a
        mutation's work calling a service through `call`) simply goes on: it cannot wait for itself."""
        task = asyncio.current_task()
        if task is not None and self._holder is task:
            yield self.session
            return
        async with self._lock:
            self._holder = task
            try:
                yield self.session
            finally:
                self._holder = None

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Run a service call with the session, one at a time."""
        async with self.exclusive() as session:
            return await fn(session, *args, **kwargs)


Info = _Info[Context, None]
