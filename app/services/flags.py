"""Per-account feature flags. Only known flags can be set; each has a default."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.db.models import FeatureFlag
from app.errors import InvalidInput
from app.services import audit
from app.services.caller import Caller, Permission

UPDATE_EMAILS_VIA_SCIM = "UPDATE_EMAILS_VIA_SCIM"

# name -> (default, what it does)
KNOWN_FLAGS: dict[str, tuple[bool, str]] = {
    UPDATE_EMAILS_VIA_SCIM: (False, "Apply email address changes sent by the identity provider over SCIM.")
}


def validate_flag_name(name: str) -> str:
    if name not in KNOWN_FLAGS:
        raise InvalidInput(f"unknown feature flag {name!r}; known flags: {', '.join(sorted(KNOWN_FLAGS))}", field="name")
    return name


async def is_enabled(session: AsyncSession, account_id: int, name: str) -> bool:
    enabled = await session.scalar(
        select(col(FeatureFlag.enabled)).where(col(FeatureFlag.account_id) == account_id, col(FeatureFlag.name) == name)
    )
    return KNOWN_FLAGS[name][0] if enabled is None else bool(enabled)


async def set_flag(session: AsyncSession, caller: Caller, name: str, enabled: bool) -> None:
    caller.require(Permission.ADMIN)
    validate_flag_name(name)
    flag = await session.get(FeatureFlag, (caller.account_id, name))
    if flag is None:
        session.add(FeatureFlag(account_id=caller.account_id, name=name, enabled=enabled))
    else:
        flag.enabled = enabled
    await session.flush()
    await audit.record(session, caller, action="flag.set", resource_type="FeatureFlag", resource_id=name, detail={"enabled": enabled})


async def list_flags(session: AsyncSession, account_id: int) -> dict[str, bool]:
    rows = await session.execute(select(col(FeatureFlag.name), col(FeatureFlag.enabled)).where(col(FeatureFlag.account_id) == account_id))
    stored = {name: bool(enabled) for name, enabled in rows}
    return {name: stored.get(name, default) for name, (default, _) in sorted(KNOWN_FLAGS.items())}
