"""The provisioning activity log: every write, refusal and ignored change, without secrets."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Required, TypedDict, Unpack

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.db.models import AuditEvent, Outcome
from app.db.statements import Prepared
from app.db.types import utcnow
from app.errors import ManagedByIdentityProvider, PermissionDenied
from app.services.caller import Caller, Permission
from app.validation import has_nul

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


def id_list(ids: list[str] | set[str]) -> dict[str, Any]:
    """A compact representation of member ids: the first ones and the count."""
    ordered = sorted(ids)
    out: dict[str, Any] = {"count": len(ordered), "ids": ordered[:MAX_IDS_IN_DETAIL]}
    return out


async def list_events(
    session: AsyncSession,
    caller: Caller,
    *,
    channel: str | None = None,
    outcome: str | None = None,
    resource_type: str | None = None,
    resource_id: str | None = None,
    since: datetime | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> tuple[int, list[AuditEvent]]:
    """Newest first; `before_id` continues a previous page (keyset, stable while events arrive).
    For admins and auditors (`audit:read`)."""
    caller.require_any(Permission.AUDIT_READ, Permission.ADMIN)
    if has_nul(resource_type, resource_id):
        return 0, []
    conditions = [col(AuditEvent.account_id) == caller.account_id]
    if channel is not None:
        conditions.append(col(AuditEvent.channel) == channel)
    if outcome is not None:
        conditions.append(col(AuditEvent.outcome) == outcome)
    if resource_type is not None:
        conditions.append(col(AuditEvent.resource_type) == resource_type)
    if resource_id is not None:
        conditions.append(col(AuditEvent.resource_id) == resource_id)
    if since is not None:
        conditions.append(col(AuditEvent.occurred_at) >= since)
    total = int(await session.scalar(select(func.count()).select_from(AuditEvent).where(*conditions)) or 0)
    if before_id is not None:
        conditions.append(col(AuditEvent.id) < before_id)
    rows: Sequence[AuditEvent] = []
    if limit > 0:
        rows = (await session.scalars(select(AuditEvent).where(*conditions).order_by(col(AuditEvent.id).desc()).limit(limit))).all()
    return total, list(rows)
