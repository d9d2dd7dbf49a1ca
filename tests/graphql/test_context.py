"""The request context hands its one session to one task at a time, and never makes a task wait for
itself: a mutation's work (which holds the session) may call services through `Context.call`."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from app.db.models import Channel
from app.graphql.context import Context
from app.services.caller import system_caller


def _context() -> Context:
    session = cast(AsyncSession, object())  # never used as a session here: only handed over
    return Context(request=cast(Request, None), session=session, caller=system_caller(1, "acme", Channel.GRAPHQL))


async def _echo(session: Any) -> Any:
    await asyncio.sleep(0)
    return session


async def test_a_service_call_inside_a_mutations_work_does_not_wait_for_itself() -> None:
    context = _context()
    async with context.exclusive() as session, asyncio.timeout(2):  # in this task, as run_mutation runs its work
        assert await context.call(_echo) is session


async def test_other_tasks_wait_until_the_session_is_handed_back() -> None:
    context = _context()
    order: list[str] = []

    async def other() -> None:
        await context.call(_echo)
        order.append("other")

    async with context.exclusive():
        waiting = asyncio.create_task(other())
        await asyncio.sleep(0.05)
        assert order == [] and not waiting.done()
        order.append("holder")
    await asyncio.wait_for(waiting, timeout=2)
    assert order == ["holder", "other"]
