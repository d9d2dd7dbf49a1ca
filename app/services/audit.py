"""The provisioning activity log: every write, refusal and ignored change, without secrets."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import AuditEvent, Outcome
from app.services.caller import Caller

# Long member lists are summarised so one event stays small.
MAX_IDS_IN_DETAIL = 100


def record(
    session: AsyncSession,
    caller: Caller,
    *,
    action: str,
    resource_type: str,
    resource_id: str | None,
    outcome: Outcome = Outcome.APPLIED,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    event = AuditEvent(
        account_id=caller.account_id,
        caller=caller.principal,
        channel=caller.channel.value,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        outcome=outcome.value,
        detail=detail or {},
    )
    session.add(event)
    return event


def id_list(ids: list[str] | set[str]) -> dict[str, Any]:
    """A compact representation of member ids: the first ones and the count."""
    ordered = sorted(ids)
    out: dict[str, Any] = {"count": len(ordered), "ids": ordered[:MAX_IDS_IN_DETAIL]}
    return out
