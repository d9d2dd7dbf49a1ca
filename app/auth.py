"""Bearer credentials of an HTTP request, checked against the stored token.

The stored token is read in a short read-only transaction of its own, never in the request's: it
takes no lock (on SQLite, not the write lock; on PostgreSQL, not the token's row), so requests with
one token never wait for each other. What was read is kept for at most `TokenCache.TTL` seconds, so
an identity provider syncing at hundreds of requests a second costs one lookup a second — and a
revoked or expired token stops working on every instance within that second. The rules of a valid
token stay in `services.tokens.check`, applied on every request, cached or not.

The token's last_used_at moves on after the response, in a transaction of its own.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace

from starlette.requests import Request

from app.db.models import Channel
from app.db.transactions import run_transaction
from app.db.types import utcnow
from app.errors import RateLimited, Unauthenticated
from app.metrics import Metrics
from app.ratelimit import RateLimits
from app.services import tokens

logger = logging.getLogger("scimgraph.auth")


TokenKey = tuple[str, str]  # (account identifier, token id): a token's name, as presented


class TokenCache:
    """Stored-token records by their account and token id, each for at most TTL seconds after it was
    read; the least recently used go first beyond MAX_ENTRIES. Unknown tokens are not kept: made-up
    ones must not fill memory."""

    TTL = 1.0
    MAX_ENTRIES = 10_000

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._entries: OrderedDict[TokenKey, tuple[float, tokens.TokenRecord]] = OrderedDict()

    def get(self, key: TokenKey) -> tokens.TokenRecord | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        read_at, record = entry
        if self.clock() - read_at >= self.TTL:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return record

    def put(self, record: tokens.TokenRecord, read_at: float) -> None:
        key = (record.account_identifier, record.token_id)
        self._entries[key] = (read_at, record)
        self._entries.move_to_end(key)
        while len(self._entries) > self.MAX_ENTRIES:
            self._entries.popitem(last=False)

    def forget(self, key: TokenKey) -> None:
        self._entries.pop(key, None)

    def note_use(self, key: TokenKey) -> None:
        """last_used_at is being recorded: later requests within the TTL need not record it again."""
        entry = self._entries.get(key)
        if entry is not None:
            self._entries[key] = (entry[0], replace(entry[1], last_used_at=utcnow()))


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (scheme in any case), or None."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


async def authenticate(request: Request, *, channel: Channel, account_identifier: str | None = None) -> tokens.Verified:
    """The request's caller, or Unauthenticated / Unavailable / RateLimited (see app.ratelimit): a
    failure counts against the client's address and the account named, and once those are used up
    only tokens in use (verified lately) are looked at; a verified token's request counts against
    its own limits."""
    limits: RateLimits = request.app.state.rate_limits
    metrics: Metrics = request.app.state.metrics
    address = request.client.host if request.client else "unknown"
    named = account_identifier or ""
    try:
        try:
            presented = tokens.parse(bearer_token(request))
        except Unauthenticated:
            _check_failures(limits, metrics, address, named)
            raise
        named = account_identifier or presented.account_identifier
        cache: TokenCache = request.app.state.token_cache
        record = cache.get((presented.account_identifier, presented.token_id))
        # Past the failure budget: a cached record tells a wrong secret without the database; a token
        # not cached is looked up only if it is in use.
        if record is not None:
            if not tokens.secret_matches(record, presented):
                _check_failures(limits, metrics, address, named)
        elif not limits.in_use(presented.account_identifier, presented.token_id):
            _check_failures(limits, metrics, address, named)
        if record is None:
            read_at = cache.clock()
            record = await run_transaction(request.app.state.token_sessionmaker, lambda session: tokens.load(session, presented))
            if record is not None:
                cache.put(record, read_at)
        verified = tokens.check(record, presented, channel=channel, account_identifier=account_identifier)
    except Unauthenticated:
        metrics.auth_failures.labels(channel.value).inc()
        limits.failed(address, named)
        raise
    try:
        limits.token(verified.caller.account_identifier, verified.caller.principal)
    except RateLimited:
        metrics.rate_limited.labels("token").inc()
        raise
    return verified


def _check_failures(limits: RateLimits, metrics: Metrics, address: str, account: str) -> None:
    try:
        limits.check_failures(address, account)
    except RateLimited:
        metrics.rate_limited.labels("failed_authentication").inc()
        raise


async def record_use(request: Request, verified: tokens.Verified) -> None:
    """Best effort, after the response: a failure here must not fail a request that succeeded."""
    if not verified.record_use_due:
        return
    try:
        async with request.app.state.no_wait_sessionmaker() as session, session.begin():
            recorded = await tokens.record_use(session, verified.caller)
    except Exception as exc:  # the database may be busy or down; a later request will try again
        logger.info("token last-used time not recorded: %s", type(exc).__name__)
        return
    if recorded:
        request.app.state.token_cache.note_use((verified.caller.account_identifier, verified.caller.principal))
