"""Rate limits: the requests of each token, and failed authentication.

- **Per token** (RATE_LIMIT_PER_TOKEN, default 100 a second and 3,000 a minute): keyed by the token's
  account and id, never by client address — Entra calls from addresses Microsoft's whole cloud
  shares. Microsoft asks a SCIM endpoint to sustain at least 25 requests a second per tenant, and
  quarantines a provisioning job whose requests keep failing, so the defaults sit well above what
  an identity provider sends in normal operation: a limit is there to stop a runaway script, not to
  shape a sync. Counted in fixed windows (this second, this minute), the cheapest of `limits`'
  strategies, as every request pays for it: across a window's edge a client can briefly send up to
  twice a limit, which a limit this far above normal traffic can afford.
- **Failed authentication** (RATE_LIMIT_FAILED_AUTH_PER_ADDRESS, default 30 a minute;
  RATE_LIMIT_FAILED_AUTH_PER_ACCOUNT, default 300 a minute): each failure counts against the
  client's address and the account it named. Once either is used up, a request with a token this
  instance has not verified in the last IN_USE_FOR seconds is refused before any database work;
  tokens that are in use keep working, so a flood of bad tokens — at one account, or from the
  addresses Microsoft's clouds share — does not lock an identity provider out. Counted in sliding
  windows: a guesser gains nothing by timing its tries to a window's edge.

A refused request is answered 429 with Retry-After (SCIM with an error body, GraphQL with an
`errors` member). The counters are per instance, in memory: behind a load balancer spreading
requests over N instances, the effective limits are up to N times these. "off" turns a limit off.
"""

from __future__ import annotations

import functools
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter, RateLimiter, SlidingWindowCounterRateLimiter

from app.errors import RateLimited
from app.settings import Settings

OFF = "off"
IN_USE_FOR = 900.0  # seconds a verified token counts as in use (Entra syncs every 40 minutes, in bursts)
MAX_IN_USE = 10_000  # tokens remembered as in use; the least recently verified go first


def parse_limits(text: str, name: str) -> tuple[RateLimitItem, ...]:
    """A setting's limits ("100/second;3000/minute"), none for "off"; ValueError naming the setting."""
    if text.strip().lower() == OFF:
        return ()
    try:
        return tuple(parse_many(text))
    except ValueError:
        raise ValueError(f'{name} must be limits such as "100/second;3000/minute", or off; got {text!r}') from None


SWEEP_EVERY = 60.0  # seconds between two sweeps of expired counters


class _QuietMemoryStorage(MemoryStorage):
    """`limits`' in-memory storage without its sweeper: MemoryStorage starts a thread every 10 ms
    while it holds counters, to drop expired ones, and that churn of threads took 17 % of a GET by
    id's throughput here (measured against the same server with the limit off). Expired counters
    are ignored when read anyway (MemoryStorage.get); `sweep` drops them, which RateLimits does at
    most once every SWEEP_EVERY seconds."""

    def __init__(self) -> None:
        super().__init__()
        self.timer.cancel()

    def _MemoryStorage__schedule_expiry(self) -> None:  # replaces the thread MemoryStorage would start
        return None

    def sweep(self) -> None:
        self._MemoryStorage__expire_events()  # type: ignore[attr-defined]


class RateLimits:
    def __init__(
        self,
        per_token: Sequence[RateLimitItem],
        failed_auth_per_address: Sequence[RateLimitItem],
        failed_auth_per_account: Sequence[RateLimitItem],
    ) -> None:
        self.per_token = tuple(per_token)
        self.per_address = tuple(failed_auth_per_address)
        self.per_account = tuple(failed_auth_per_account)
        self.storage = _QuietMemoryStorage()
        self.token_limiter = FixedWindowRateLimiter(self.storage)
        self.limiter = SlidingWindowCounterRateLimiter(self.storage)
        self.clock: Callable[[], float] = time.monotonic
        self._swept_at = self.clock()
        self._in_use: OrderedDict[tuple[str, str], float] = OrderedDict()  # token -> when last verified
        # Each token's counters — storage key, expiry, limit — built once per token, not per request.
        self._counters = functools.lru_cache(maxsize=MAX_IN_USE)(self._token_counters)

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimits:
        return cls(
            parse_limits(settings.rate_limit_per_token, "RATE_LIMIT_PER_TOKEN"),
            parse_limits(settings.rate_limit_failed_auth_per_address, "RATE_LIMIT_FAILED_AUTH_PER_ADDRESS"),
            parse_limits(settings.rate_limit_failed_auth_per_account, "RATE_LIMIT_FAILED_AUTH_PER_ACCOUNT"),
        )

    def token(self, account_identifier: str, token_id: str) -> None:
        """Count one request of a verified token (now in use); RateLimited when it is over one of
        its limits."""
        key, now = (account_identifier, token_id), self.clock()
        if now - self._swept_at >= SWEEP_EVERY:
            self._swept_at = now
            self.storage.sweep()
        last = self._in_use.get(key)
        if last is None or now - last >= 60:  # noted again at most once a minute: requests are many
            self._in_use[key] = now
            self._in_use.move_to_end(key)
            while len(self._in_use) > MAX_IN_USE:
                self._in_use.popitem(last=False)
        # FixedWindowRateLimiter.hit, with the counters' storage keys built once per token.
        for counter, expiry, item in self._counters(account_identifier, token_id):
            if self.storage.incr(counter, expiry) > item.amount:
                raise RateLimited(_retry_after(self.token_limiter, item, "token", account_identifier, token_id))

    def _token_counters(self, account_identifier: str, token_id: str) -> tuple[tuple[str, int, RateLimitItem], ...]:
        return tuple((item.key_for("token", account_identifier, token_id), item.get_expiry(), item) for item in self.per_token)

    def in_use(self, account_identifier: str, token_id: str) -> bool:
        """The token was verified here in the last IN_USE_FOR seconds."""
        last = self._in_use.get((account_identifier, token_id))
        return last is not None and self.clock() - last < IN_USE_FOR

    def check_failures(self, address: str, account_identifier: str) -> None:
        """RateLimited when the address or the account has used up its failed authentications."""
        for items, keys in ((self.per_address, ("address", address)), (self.per_account, ("account", account_identifier))):
            for item in items:
                if not self.limiter.test(item, *keys):
                    raise RateLimited(_retry_after(self.limiter, item, *keys))

    def failed(self, address: str, account_identifier: str) -> None:
        """Count one failed authentication against the address and the account."""
        for item in self.per_address:
            self.limiter.hit(item, "address", address)
        for item in self.per_account:
            self.limiter.hit(item, "account", account_identifier)


def _retry_after(limiter: RateLimiter, item: RateLimitItem, *keys: str) -> int:
    reset = limiter.get_window_stats(item, *keys).reset_time
    return max(1, math.ceil(reset - time.time()))
