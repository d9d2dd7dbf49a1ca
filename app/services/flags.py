"""Per-account feature flags. Only known flags can be set; each has a default."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.db.models import FeatureFlag
from app.errors import InvalidInput
from app.services import audit
from app.services.caller import Caller, Permission


@dataclass(frozen=True)
class Flag:
    """A feature flag: its name (as the CLI and GraphQL take it), its value in an account that never
    set it, and what it does (shown in the admin UI)."""

    name: str
    default: bool
    description: str


UPDATE_EMAILS_VIA_SCIM = Flag("UPDATE_EMAILS_VIA_SCIM", False, "Apply email address changes sent by the identity provider over SCIM.")
ADOPT_EXISTING_USERS = Flag(
    "ADOPT_EXISTING_USERS",
    True,
    "A user created in the admin UI becomes the identity provider's when SCIM first creates (same userName) or "
    "changes them; off: such a SCIM create answers 409 and the user stays the admin UI's.",
)
KNOWN_FLAGS: dict[str, Flag] = {flag.name: flag for flag in (UPDATE_EMAILS_VIA_SCIM, ADOPT_EXISTING_USERS)}


def known(name: str) -> Flag:
    """The flag called `name`, or InvalidInput naming the known ones."""
    flag = KNOWN_FLAGS.get(name)
    if flag is None:
        raise InvalidInput(f"unknown feature flag {name!r}; known flags: {', '.join(sorted(KNOWN_FLAGS))}", field="name")
    return flag


async def is_enabled(session: AsyncSession, account_id: int, flag: Flag) -> bool:
    enabled = await session.scalar(
        select(col(FeatureFlag.enabled)).where(col(FeatureFlag.account_id) == account_id, col(FeatureFlag.name) == flag.name)
    )
    return flag.default if enabled is None else bool(enabled)


async def set_flag(session: AsyncSession, caller: Caller, name: str, enabled: bool) -> Flag:
    """Turn the flag called `name` on or off in the caller's account; the flag set."""
    caller.require(Permission.ADMIN)
    known(name)
    flag = await session.get(FeatureFlag, (caller.account_id, name))
    if flag is None:
        session.add(FeatureFlag(account_id=caller.account_id, name=name, enabled=enabled))
    else:
        flag.enabled = enabled
    await session.flush()
    await audit.record(session, caller, action="flag.set", resource_type="FeatureFlag", resource_id=name, detail={"enabled": enabled})
    return KNOWN_FLAGS[name]


async def list_flags(session: AsyncSession, caller: Caller) -> list[tuple[Flag, bool]]:
    """Every known flag, by name, and whether it is on in the caller's account. Admins only."""
    caller.require(Permission.ADMIN)
    rows = await session.execute(
        select(col(FeatureFlag.name), col(FeatureFlag.enabled)).where(col(FeatureFlag.account_id) == caller.account_id)
    )
    stored = {name: bool(enabled) for name, enabled in rows}
    return [(flag, stored.get(name, flag.default)) for name, flag in sorted(KNOWN_FLAGS.items())]
