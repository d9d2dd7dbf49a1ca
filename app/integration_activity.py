"""The health of app integrations, as their tokens' SCIM requests show it.

Each SCIM request made with a token bound to an integration is noted here, in memory: its hour,
whether it failed (4xx, 5xx) and, for the last failure, its status, scimType and detail — never the
body. An instance writes what it noted at most once every `interval` seconds, after a response and
in a transaction of its own (services.integrations.record_activity), adding its counts to what
other instances wrote; so an identity provider syncing at hundreds of requests a second costs one
small write a second, not one per request. What an instance noted but had not written when it
stopped abruptly (at most one interval's worth) is lost; a clean shutdown writes it. While no
request comes in, a task of the app's lifespan writes what is left (`run`).

A token presented with its right secret but revoked or expired is noted as a failure of its
integration, with the reason: "the token has expired" is what an admin whose provisioning stopped
needs to read. Requests with unknown tokens or wrong secrets are attributed to nobody.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from app import activity
from app.batching import Batched
from app.db.types import utcnow
from app.services import integrations

logger = logging.getLogger("scimgraph.integrations")

Key = tuple[int, str]  # (account id, integration id)


class IntegrationActivity(Batched):
    def __init__(self, interval: float = Batched.INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(interval, clock)
        self._pending: dict[Key, integrations.Tally] = {}

    def note(self, account_id: int, integration_id: str, response: Response, reason: str | None = None) -> None:
        """One request's outcome; `reason` replaces the response's detail in the health (the client
        was told less)."""
        at = utcnow()
        failure = None
        if response.status_code >= 400:
            # What the detail quotes came from the request (a userName, a filter's text): personal data,
            # which the health, kept as long as the integration and printed by `integrations list`, must not hold.
            scim_type, detail = activity.error_of(response)
            failure = integrations.Failure(at, response.status_code, scim_type, reason or activity.without_quoted_values(detail))
        tally = self._pending.get((account_id, integration_id))
        if tally is None:  # (not setdefault: it would build a Tally for every request)
            tally = self._pending[(account_id, integration_id)] = integrations.Tally()
        tally.note(at, response.status_code, failure)

    def _waiting(self) -> bool:
        return bool(self._pending)

    def _take(self) -> dict[Key, integrations.Tally]:
        taken, self._pending = self._pending, {}
        return taken

    async def _store(self, session: AsyncSession, taken: dict[Key, integrations.Tally]) -> None:
        await integrations.record_activity(session, taken)

    def _failed(self, taken: dict[Key, integrations.Tally], error: Exception) -> None:
        """Best effort: the counts are merged back for the next write."""
        logger.info("integration activity not recorded yet: %s", type(error).__name__)
        for key, tally in taken.items():
            self._pending.setdefault(key, integrations.Tally()).merge(tally)
