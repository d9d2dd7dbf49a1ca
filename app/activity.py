"""The activity log's record of every SCIM request: what the identity provider sent, and what it was
answered.

Each request to one of an account's SCIM endpoints is in a `scim.request` event of `audit_events`: when,
the request id, the token (and its app integration), the method and route template (never the
query string, which carries filters and with them user names), the status, the scimType and
detail of an error, the resource it named, and its outcome — READ or APPLIED when it succeeded,
DENIED when a rule refused it, FAILED otherwise. What a request changed is in the events the
services write with the change (`user.update` and the like, with before and after values).

Successful reads (GET, and POST .search, answered below 400 — 2xx, or 304 Not Modified — to a
token) are the many requests that tell least: they are summarized, one record per token,
integration, method, route, status and resource type for each batch, which counts them in `requests`
and keeps the first's time and request id, the last's request id (`detail.lastRequestId`) and the
resource they named while they all named one. A row per successful GET cost more of a GET's
throughput than the operations issue allows (bench/README.md): PostgreSQL's work to store and index
one row exceeds a GET's own lookup.

Records are noted in memory and written in batches, at most every `interval` seconds (after a
response, and by a task of the app's lifespan while no request comes in): a GET by id costs a
counter, not a write. What an instance had not written when it stopped abruptly (at most
one interval's worth) is lost; a clean shutdown writes it. At most MAX_PENDING records (a summary of
reads is one) wait; past that, new requests go unrecorded, and how many is logged.

Requests that authenticate nobody (a missing, malformed or unknown token; a body refused before
it was read) are recorded at most once a minute per account and reason, so that no one can fill
the table: the metrics count every one of them.
"""

from __future__ import annotations

import json
import logging
import operator
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from starlette.responses import Response

from app.batching import Batched
from app.db.models import Account, Channel, Outcome
from app.db.statements import on_driver
from app.db.types import utcnow
from app.errors import Unavailable
from app.services import audit
from app.services.accounts import IDENTIFIER_RE
from app.services.common import chunks

logger = logging.getLogger("scimgraph.activity")

ACTION = audit.ACTIVITY_ACTION
MAX_DETAIL = 1000
ANONYMOUS = "-"  # the caller of a request that authenticated nobody
# From a detail's first quote to its last of the same kind: a quoted value may hold the quote itself
# (O'Brien), and blanking too much is the safe way to be wrong.
_QUOTED = re.compile(r"'.*'|\".*\"", re.DOTALL)


def error_of(response: Response) -> tuple[str | None, str]:
    """The scimType and detail of a SCIM error response (empty for any other response)."""
    if response.status_code < 400:
        return None, ""
    try:
        body: Any = json.loads(bytes(response.body))
    except (ValueError, TypeError, AttributeError):
        return None, ""
    if not isinstance(body, dict):
        return None, ""
    scim_type = body.get("scimType")
    return (scim_type if isinstance(scim_type, str) else None), str(body.get("detail") or "")


def without_quoted_values(detail: str) -> str:
    """An error's detail with what it quotes from the request (a userName, a filter) blanked: for
    readers who may not see personal data, and for the health of an integration."""
    return _QUOTED.sub("'…'", detail)


def outcome_of(status: int, *, read_only: bool) -> Outcome:
    if status < 400:
        return Outcome.READ if read_only else Outcome.APPLIED
    return Outcome.DENIED if status == 403 else Outcome.FAILED


# What the successful reads summarized in one record share: account id, token, integration, method,
# route template, status, resource type.
ReadKey = tuple[int, str, str | None, str, str, int, str]


class _Reads:
    """Successful reads of one ReadKey since the log's last write: how many, the first's time and
    request id, the last's request id, and the resource they named while they all named one."""

    __slots__ = ("count", "first_at", "first_request_id", "last_request_id", "resource_id")

    def __init__(self, at: datetime, request_id: str, resource_id: str | None) -> None:
        self.count = 1
        self.first_at = at
        self.first_request_id = self.last_request_id = request_id
        self.resource_id = resource_id

    def add(self, resource_id: str | None, request_id: str) -> None:
        self.count += 1
        self.last_request_id = request_id
        if resource_id != self.resource_id:
            self.resource_id = None

    def record(self, key: ReadKey) -> dict[str, Any]:
        account_id, caller, integration_id, method, route, status, resource_type = key
        row = record(
            account_id=account_id,
            caller=caller,
            integration_id=integration_id,
            request_id=self.first_request_id,
            method=method,
            route=route,
            status=status,
            read_only=True,
            resource_type=resource_type,
            resource_id=self.resource_id,
        )
        row["occurred_at"], row["requests"] = self.first_at, self.count
        if self.count > 1:
            row["detail"] = {"lastRequestId": self.last_request_id}
        return row


class ActivityLog(Batched):
    MAX_PENDING = 50_000
    ANONYMOUS_EVERY = 60.0  # seconds between two records of one account's unauthenticated failures of one reason

    def __init__(self, interval: float = Batched.INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(interval, clock)
        self._pending: list[dict[str, Any]] = []
        self._reads: dict[ReadKey, _Reads] = {}
        self._anonymous: dict[tuple[str, str], float] = {}
        self.dropped = 0

    def __len__(self) -> int:
        """Records waiting to be written (a summary of reads is one)."""
        return len(self._pending) + len(self._reads)

    def _full(self) -> bool:
        """Whether the records waiting have reached MAX_PENDING; if so, one more is counted dropped."""
        if len(self) < self.MAX_PENDING:
            return False
        self.dropped += 1
        return True

    def note(self, record: dict[str, Any]) -> None:
        """One request's record: the `audit_events` row, with `account_identifier` in place of
        `account_id` when the account is known only by its identifier."""
        if not self._full():
            self._pending.append(record)

    def note_read(self, key: ReadKey, resource_id: str | None, request_id: str) -> None:
        """A successful read by an authenticated token: counted into the summary of its token, route,
        method, status and resource type until the next write."""
        reads = self._reads.get(key)
        if reads is None:
            if not self._full():
                self._reads[key] = _Reads(utcnow(), request_id, resource_id)
        else:
            reads.add(resource_id, request_id)

    def note_anonymous(self, account_identifier: str, reason: str, record: dict[str, Any]) -> None:
        """A request that authenticated nobody: recorded unless the account had one for the same
        reason in the last ANONYMOUS_EVERY seconds."""
        if not IDENTIFIER_RE.match(account_identifier):  # no account can have this name: nothing to record it under
            return
        now, key = self.clock(), (account_identifier, reason)
        last = self._anonymous.get(key)
        if last is not None and now - last < self.ANONYMOUS_EVERY:
            return
        if len(self._anonymous) > self.MAX_PENDING:  # made-up account names must not fill memory
            self._anonymous.clear()
        self._anonymous[key] = now
        self.note({**record, "account_identifier": account_identifier, "caller": ANONYMOUS})

    def _waiting(self) -> bool:
        return bool(self._pending) or bool(self._reads)

    def _take(self) -> list[dict[str, Any]]:
        taken, self._pending = self._pending, []
        reads, self._reads = self._reads, {}
        if reads:
            # Ids count up in time order: a summary takes its place by its first read.
            taken.extend(summary.record(key) for key, summary in reads.items())
            taken.sort(key=_OCCURRED_AT)
        return taken

    async def _store(self, session: AsyncSession, taken: list[dict[str, Any]]) -> None:
        await _store(session, taken)

    def _failed(self, taken: list[dict[str, Any]], error: Exception) -> None:
        if isinstance(error, Unavailable):  # the database cannot take it now: kept for the next write
            logger.info("activity not recorded yet: the database is unavailable")
            room = max(0, self.MAX_PENDING - len(self))
            self.dropped += sum(row["requests"] for row in taken[room:])
            self._pending[:0] = taken[:room]
        else:  # not the database's state: retrying the same rows would fail forever
            logger.error("activity records dropped, %d of them: %s", len(taken), type(error).__name__)
        if self.dropped:
            logger.warning("requests not recorded in the activity log: %d (more waited than the log keeps)", self.dropped)
            self.dropped = 0


async def _store(session: AsyncSession, records: list[dict[str, Any]]) -> None:
    named = sorted({r["account_identifier"] for r in records if "account_identifier" in r})
    ids: dict[str, int] = {}
    for part in chunks(named):
        rows = await session.execute(select(col(Account.id), col(Account.identifier)).where(col(Account.identifier).in_(part)))
        ids |= {str(identifier): account_id for account_id, identifier in rows if account_id is not None}
    rows_to_store = []
    for record in records:  # new rows: a batch kept for a retry must stay as it was noted
        identifier = record.get("account_identifier")
        if identifier is None:
            rows_to_store.append(record)
        elif identifier in ids:  # otherwise no such account: nothing to record it under
            rows_to_store.append({k: v for k, v in record.items() if k != "account_identifier"} | {"account_id": ids[identifier]})
    if not rows_to_store:
        return
    connection = await session.connection()
    if connection.dialect.name != "postgresql":
        await session.execute(audit.TABLE.insert(), rows_to_store)
        return
    # COPY: a second's records in one stream, at a fraction of an INSERT's cost per row.
    copied = [(*_COPIED_BUT_DETAIL(row), orjson.dumps(row["detail"]).decode() if row["detail"] else "{}") for row in rows_to_store]
    await on_driver(
        connection, "COPY audit_events", lambda driver: driver.copy_records_to_table("audit_events", records=copied, columns=_COPIED)
    )


# Every column but the id, which the database counts up; the JSON detail last, as text.
_COPIED = [c.key for c in audit.TABLE.c if c.key not in ("id", "detail")] + ["detail"]
_COPIED_BUT_DETAIL = operator.itemgetter(*_COPIED[:-1])
_OCCURRED_AT = operator.itemgetter("occurred_at")


def record(
    *,
    account_id: int | None,
    caller: str,
    integration_id: str | None,
    request_id: str,
    method: str,
    route: str,
    status: int,
    read_only: bool,
    resource_type: str,
    resource_id: str | None,
    scim_type: str | None = None,
    detail: str = "",
) -> dict[str, Any]:
    """The `audit_events` row of one SCIM request. What the client chose (the method, the id in the
    path, what an error's detail quotes) is cut to its column and made storable: a record that the
    database refused would never be written. The detail is kept whole for admins, in `detail`, and
    with its quoted values blanked in `error_detail`, which anyone who reads the log may see and
    which failures are counted by (activitySummary)."""
    detail = _storable(detail, MAX_DETAIL) if detail else ""
    return {
        "account_id": account_id,
        "occurred_at": utcnow(),
        "caller": caller,
        "channel": Channel.SCIM.value,
        "action": ACTION,
        "resource_type": resource_type,
        "resource_id": None if resource_id is None else _storable(resource_id, 256),
        "outcome": outcome_of(status, read_only=read_only).value,
        "detail": {"detail": detail} if detail else {},
        "error_detail": without_quoted_values(detail) if detail else None,
        "request_id": request_id,
        "method": _storable(method, 8),
        "route": route,
        "status": status,
        "scim_type": None if scim_type is None else _storable(scim_type, 32),
        "integration_id": integration_id,
        "requests": 1,
    }


def _storable(text: str, width: int) -> str:
    """`text` as both databases store it: no NUL (PostgreSQL text cannot hold one), no lone
    surrogate (not UTF-8), at most `width` characters."""
    if text.isascii() and "\x00" not in text:  # ids, methods: nothing to replace
        return text[:width]
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")[:width]
