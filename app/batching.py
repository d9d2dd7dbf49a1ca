"""What the request path notes in memory and writes in batches (an app integration's health, the
activity log's records of requests): at most every `interval` seconds, after a response when one
comes (`due`), and from a task of the app's lifespan while none does (`run`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.transactions import run_transaction


class Batched:
    INTERVAL = 1.0

    def __init__(self, interval: float = INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._written_at = clock()
        self._writing = False

    def _waiting(self) -> bool:
        raise NotImplementedError

    def _take(self) -> Any:
        """What waits, handed over to a write (and no longer waiting)."""
        raise NotImplementedError

    async def _store(self, session: AsyncSession, taken: Any) -> None:
        raise NotImplementedError

    def _failed(self, taken: Any, error: Exception) -> None:
        """A write of `taken` failed: keep it for the next, or let it go."""
        raise NotImplementedError

    def due(self) -> bool:
        """Whether a write should follow this response: something waits, no write is under way,
        and the last was at least `interval` ago. True once per interval: the write is then the
        caller's to schedule."""
        now = self.clock()
        if not self._waiting() or self._writing or now - self._written_at < self.interval:
            return False
        self._written_at = now
        return True

    async def run(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        """Write every `interval` seconds, also while no request comes in (the last burst of a sync
        must not wait for the next one), until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            await self.write(sessionmaker)

    async def write(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        """Write what waits, in one transaction of its own."""
        if not self._waiting() or self._writing:
            return
        taken = self._take()
        self._writing = True
        try:
            await run_transaction(sessionmaker, lambda session: self._store(session, taken))
        except Exception as exc:
            self._failed(taken, exc)
        finally:
            self._writing = False
            self._written_at = self.clock()
