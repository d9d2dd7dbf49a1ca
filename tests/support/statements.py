"""Counting the statements a request sends: those SQLAlchemy runs and those run on asyncpg directly
(`app.db.statements`), for the tests that bound how many a request makes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import statements


class StatementCounter:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.statements: list[str] = []
        self._stop: Callable[[], None] | None = None

    def __enter__(self) -> StatementCounter:
        event.listen(self.engine.sync_engine, "before_cursor_execute", self._count)
        self._stop = statements.observe(self._count_direct)
        return self

    def __exit__(self, *_: Any) -> None:
        event.remove(self.engine.sync_engine, "before_cursor_execute", self._count)
        if self._stop is not None:
            self._stop()

    def _count(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self.statements.append(statement)

    def _count_direct(self, engine: Any, statement: str) -> None:
        if engine.pool is self.engine.sync_engine.pool:  # this engine or one of its option engines
            self.statements.append(statement)
