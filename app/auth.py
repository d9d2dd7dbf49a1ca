"""Bearer credentials of an HTTP request, checked in a short read-only transaction of their own.

Authentication never shares the request's transaction: it takes no lock (on SQLite, not the write
lock; on PostgreSQL, not the token's row), so requests with one token never wait for each other.
The token's last_used_at moves on after the response, in a transaction of its own.
"""

from __future__ import annotations

import logging

from starlette.requests import Request

from app.db.models import Channel
from app.db.transactions import run_transaction
from app.services import tokens

logger = logging.getLogger("scimgraph.auth")


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (scheme in any case), or None."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


async def authenticate(request: Request, *, channel: Channel, account_identifier: str | None = None) -> tokens.Verified:
    """The request's caller, or Unauthenticated / Unavailable."""
    raw = bearer_token(request)
    return await run_transaction(
        request.app.state.read_sessionmaker,
        lambda session: tokens.verify(session, raw, channel=channel, account_identifier=account_identifier),
    )


async def record_use(request: Request, verified: tokens.Verified) -> None:
    """Best effort, after the response: a failure here must not fail a request that succeeded."""
    if not verified.record_use_due:
        return
    try:
        async with request.app.state.no_wait_sessionmaker() as session, session.begin():
            await tokens.record_use(session, verified.caller.principal)
    except Exception as exc:  # the database may be busy or down; the next request will try again
        logger.info("token last-used time not recorded: %s", type(exc).__name__)
