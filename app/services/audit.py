"""The provisioning activity log: every write, refusal and ignored change, without secrets."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Required, TypedDict, Unpack

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.db.models import AuditEvent, Outcome
from app.db.statements import Prepared
from app.db.types import utcnow
from app.errors import ManagedByIdentityProvider, PermissionDenied
from app.services.caller import Caller, Permission
from app.validation import has_nul

# The action of the activity log's record of one SCIM request (app/activity.py).
ACTIVITY_ACTION = "scim.request"
# Long member lists are summarised so one event stays small.
MAX_IDS_IN_DETAIL = 100
_RESOURCE_ID_LENGTH: int = AuditEvent.__table__.c.resource_id.type.length  # type: ignore[attr-defined]
TABLE = AuditEvent.__table__  # type: ignore[attr-defined]
_INSERT = Prepared(TABLE.insert())


class Event(TypedDict, total=False):
    """What an event says, beside who caused it (the caller) and when."""

    action: Required[str]  # e.g. user.update
    resource_type: Required[str]
    resource_id: Required[str | None]
    outcome: Outcome  # APPLIED unless said
    detail: dict[str, Any] | None


async def record(session: AsyncSession, caller: Caller, **event: Unpack[Event]) -> None:
    """Write one event now, in the caller's transaction (or savepoint): it is undone with the change
    it describes. A plain insert, not an ORM object: it is on every write's path."""
    await _INSERT.execute(await session.connection(), row(caller, **event))


def row(caller: Caller, **event: Unpack[Event]) -> dict[str, Any]:
    """The row of one event, for a caller that stores it together with the change it describes
    (`common.insert_new(…, with_rows=…)`); `record` stores it on its own."""
    return {
        "account_id": caller.account_id,
        "occurred_at": utcnow(),
        "caller": caller.principal,
        "channel": caller.channel.value,
        "action": event["action"],
        "resource_type": event["resource_type"],
        "resource_id": _storable_id(event["resource_id"]),
        "outcome": event.get("outcome", Outcome.APPLIED).value,
        "detail": event.get("detail") or {},
        "requests": 1,
    }


Refusal = PermissionDenied | ManagedByIdentityProvider
REFUSALS = (PermissionDenied, ManagedByIdentityProvider)  # what `record_refusal` takes, for isinstance


async def record_refusal(
    session: AsyncSession, caller: Caller, refusal: Refusal, *, action: str, resource_type: str, resource_id: str | None
) -> None:
    """A DENIED event for a request the rules refused, whichever channel it came through: the token
    lacked a permission, or the identity provider owns what it tried to change (the event then names
    the resource the refusal is about, which may not be the one asked for, and the operation).
    The refused change itself was undone; the caller records this in a transaction that commits."""
    detail: dict[str, Any] = {"reason": refusal.message}
    if isinstance(refusal, ManagedByIdentityProvider):
        detail["operation"] = refusal.operation.value
        resource_type, resource_id = refusal.resource_type, refusal.resource_id
    await record(
        session, caller, action=action, resource_type=resource_type, resource_id=resource_id, outcome=Outcome.DENIED, detail=detail
    )


def _storable_id(resource_id: str | None) -> str | None:
    """A refusal records the id the caller named, which can be anything: cut to the column's width,
    with NUL (which PostgreSQL text cannot hold) shown as U+FFFD, so the refusal is still logged."""
    if resource_id is None:
        return None
    return resource_id.replace("\x00", "\ufffd")[:_RESOURCE_ID_LENGTH]


# What an event's detail may hold of a person: the values before and after a change, a user's or a
# group's name, a request's whole error detail. Shown to admins only.
PERSONAL_DETAIL = frozenset({"values", "userName", "displayName", "detail"})


@dataclass(frozen=True)
class Shown:
    """What of an event a caller may see: its detail and its request's error detail."""

    detail: dict[str, Any]
    error_detail: str | None


def shown_to(caller: Caller, event: AuditEvent) -> Shown:
    """An event as `caller` may read it: whole for admins; for auditors (`audit:read`) without
    personal data — the error detail of a request's record with its quoted values blanked, as stored
    in `error_detail`, and none of PERSONAL_DETAIL."""
    detail = dict(event.detail or {})
    if caller.has(Permission.ADMIN):
        whole = detail.get("detail") if event.action == ACTIVITY_ACTION else None
        return Shown(detail, whole if isinstance(whole, str) else event.error_detail)
    return Shown({key: value for key, value in detail.items() if key not in PERSONAL_DETAIL}, event.error_detail)


def values_changed(before: dict[str, Any], after: dict[str, Any], changed: Sequence[str]) -> dict[str, Any]:
    """{attribute: {"before", "after"}} of what a change changed, for its event. Names and emails are
    personal data: GraphQL shows these values to admins only (app/graphql/types.AuditEvent)."""
    return {name: {"before": before.get(name), "after": after.get(name)} for name in changed}


def id_list(ids: list[str] | set[str]) -> dict[str, Any]:
    """A compact representation of member ids: the first ones and the count."""
    ordered = sorted(ids)
    out: dict[str, Any] = {"count": len(ordered), "ids": ordered[:MAX_IDS_IN_DETAIL]}
    return out


class StatusClass(enum.StrEnum):
    SUCCESS = "SUCCESS"  # 2xx, 3xx
    CLIENT_ERROR = "CLIENT_ERROR"  # 4xx
    SERVER_ERROR = "SERVER_ERROR"  # 5xx


STATUS_CLASSES = {StatusClass.SUCCESS: (200, 400), StatusClass.CLIENT_ERROR: (400, 500), StatusClass.SERVER_ERROR: (500, 600)}


@dataclass(frozen=True)
class EventFilter:
    """Which events a list shows; None: any."""

    channel: str | None = None
    outcome: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    status_class: str | None = None  # a key of STATUS_CLASSES: SCIM requests answered so
    caller: str | None = None  # a token id ("-": requests that authenticated nobody)
    action: str | None = None
    # The records of SCIM requests are many: shown when asked for (this, an action or a status class).
    requests: bool = False

    def conditions(self, account_id: int) -> list[Any] | None:
        """The filter's conditions, or None when nothing can match (a NUL in a value)."""
        if has_nul(self.resource_type, self.resource_id, self.caller, self.action):
            return None
        conditions: list[Any] = [col(AuditEvent.account_id) == account_id]
        for column, value in (
            (AuditEvent.channel, self.channel),
            (AuditEvent.outcome, self.outcome),
            (AuditEvent.resource_type, self.resource_type),
            (AuditEvent.resource_id, self.resource_id),
            (AuditEvent.caller, self.caller),
            (AuditEvent.action, self.action),
        ):
            if value is not None:
                conditions.append(col(column) == value)
        if self.since is not None:
            conditions.append(col(AuditEvent.occurred_at) >= self.since)
        if self.until is not None:
            conditions.append(col(AuditEvent.occurred_at) < self.until)
        if self.status_class is not None:
            low, high = STATUS_CLASSES[StatusClass(self.status_class)]
            conditions += [col(AuditEvent.status) >= low, col(AuditEvent.status) < high]
        elif self.action is None and not self.requests:
            conditions.append(col(AuditEvent.action) != ACTIVITY_ACTION)
        return conditions


def _readable(caller: Caller) -> None:
    caller.require_any(Permission.AUDIT_READ, Permission.ADMIN)


async def list_events(
    session: AsyncSession, caller: Caller, where: EventFilter, *, before_id: int | None = None, limit: int = 50
) -> tuple[int, list[AuditEvent]]:
    """Newest first; `before_id` continues a previous page (keyset, stable while events arrive).
    For admins and auditors (`audit:read`)."""
    _readable(caller)
    conditions = where.conditions(caller.account_id)
    if conditions is None:
        return 0, []
    total = int(await session.scalar(select(func.count()).select_from(AuditEvent).where(*conditions)) or 0)
    if before_id is not None:
        conditions.append(col(AuditEvent.id) < before_id)
    rows: Sequence[AuditEvent] = []
    if limit > 0:
        rows = (await session.scalars(select(AuditEvent).where(*conditions).order_by(col(AuditEvent.id).desc()).limit(limit))).all()
    return total, list(rows)


SUMMARY_WINDOW = timedelta(days=31)  # the longest a summary looks back: it groups every event of the window


@dataclass(frozen=True)
class Summary:
    since: datetime  # the moment asked for, or SUMMARY_WINDOW ago if that is later
    total: int
    outcomes: list[tuple[str, int]]  # (outcome, events), most first
    failures: list[tuple[int, str | None, str, int]]  # (status, scimType, detail, requests), most first


async def summarize(session: AsyncSession, caller: Caller, since: datetime, *, top: int = 5) -> Summary:
    """The activity since a moment: events per outcome (each request a summary of reads stands for
    counted), and the SCIM failures most often met — by status, scimType and detail — to answer
    "what is the identity provider getting wrong?"."""
    _readable(caller)
    since = max(since if since.tzinfo is not None else since.replace(tzinfo=UTC), utcnow() - SUMMARY_WINDOW)
    recent = [col(AuditEvent.account_id) == caller.account_id, col(AuditEvent.occurred_at) >= since]
    # A summary of successful reads counts as the requests it stands for.
    events = func.sum(col(AuditEvent.requests))
    outcomes = [
        (str(outcome), int(n))
        for outcome, n in await session.execute(
            select(col(AuditEvent.outcome), events).where(*recent).group_by(col(AuditEvent.outcome)).order_by(events.desc())
        )
    ]
    failed = [*recent, col(AuditEvent.action) == ACTIVITY_ACTION, col(AuditEvent.status) >= 400]
    key = (col(AuditEvent.status), col(AuditEvent.scim_type), col(AuditEvent.error_detail))
    failures = [
        (int(status or 0), scim_type, detail or "", int(n))
        for status, scim_type, detail, n in await session.execute(
            select(*key, func.count()).where(*failed).group_by(*key).order_by(func.count().desc(), col(AuditEvent.status)).limit(top)
        )
    ]
    return Summary(since, sum(n for _, n in outcomes), outcomes, failures)


async def purge_requests(session: AsyncSession, caller: Caller, now: datetime, retention_days: int) -> int:
    """Delete the caller's account's records of SCIM requests older than its activity retention
    (`python -m app purge`); the events of changes stay."""
    caller.require(Permission.ADMIN)
    result = await session.execute(
        delete(AuditEvent).where(
            col(AuditEvent.account_id) == caller.account_id,
            col(AuditEvent.action) == ACTIVITY_ACTION,
            col(AuditEvent.occurred_at) < now - timedelta(days=retention_days),
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
