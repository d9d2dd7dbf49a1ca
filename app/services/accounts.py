"""Accounts and the organization / project scopes inside them."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.db.models import Account, Organization, Project
from app.errors import Conflict, InvalidInput, NotFound
from app.services import audit
from app.services.caller import Caller, Permission
from app.services.common import insert_unique
from app.validation import has_nul

# No dots: the account identifier is a segment of the dotted token format.
IDENTIFIER_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
DEFAULT_ACCOUNT = "default"


def validate_identifier(value: str, *, field: str = "identifier") -> str:
    if not IDENTIFIER_RE.match(value):
        raise InvalidInput(f"{field} must be 1 to 64 letters, digits, '_' or '-', got {value!r}", field=field)
    return value


def _validate_name(name: str) -> None:
    if not name.strip() or has_nul(name):
        raise InvalidInput("name must not be empty", field="name")


async def get_account(session: AsyncSession, identifier: str) -> Account:
    account = await session.scalar(select(Account).where(col(Account.identifier) == identifier))
    if account is None:
        raise NotFound("Account", identifier)
    return account


async def list_accounts(session: AsyncSession) -> list[Account]:
    """Every account, by identifier: for operators' commands that work on all of them."""
    return list(await session.scalars(select(Account).order_by(col(Account.identifier))))


async def any_account(session: AsyncSession) -> bool:
    return (await session.scalar(select(col(Account.id)).limit(1))) is not None


async def create_account(session: AsyncSession, identifier: str, name: str | None = None) -> Account:
    validate_identifier(identifier)
    account = Account(identifier=identifier, name=name or identifier)
    if not await insert_unique(session, account):
        raise Conflict(f"account {identifier!r} already exists", field="identifier")
    return account


async def create_organization(session: AsyncSession, caller: Caller, identifier: str, name: str) -> Organization:
    caller.require(Permission.ADMIN)
    validate_identifier(identifier)
    _validate_name(name)
    org = Organization(account_id=caller.account_id, identifier=identifier, name=name)
    if not await insert_unique(session, org):
        raise Conflict(f"organization {identifier!r} already exists", field="identifier")
    await audit.record(session, caller, action="organization.create", resource_type="Organization", resource_id=identifier)
    return org


async def create_project(session: AsyncSession, caller: Caller, org_identifier: str, identifier: str, name: str) -> Project:
    caller.require(Permission.ADMIN)
    validate_identifier(identifier)
    _validate_name(name)
    await get_organization(session, caller.account_id, org_identifier)
    project = Project(account_id=caller.account_id, org_identifier=org_identifier, identifier=identifier, name=name)
    if not await insert_unique(session, project):
        raise Conflict(f"project {identifier!r} already exists in {org_identifier!r}", field="identifier")
    await audit.record(session, caller, action="project.create", resource_type="Project", resource_id=f"{org_identifier}/{identifier}")
    return project


async def get_organization(session: AsyncSession, account_id: int, identifier: str) -> Organization:
    if not IDENTIFIER_RE.match(identifier):
        raise NotFound("Organization", identifier)
    org = await session.scalar(
        select(Organization).where(col(Organization.account_id) == account_id, col(Organization.identifier) == identifier)
    )
    if org is None:
        raise NotFound("Organization", identifier)
    return org


async def get_project(session: AsyncSession, account_id: int, org_identifier: str, identifier: str) -> Project:
    if not (IDENTIFIER_RE.match(org_identifier) and IDENTIFIER_RE.match(identifier)):
        raise NotFound("Project", f"{org_identifier}/{identifier}")
    project = await session.scalar(
        select(Project).where(
            col(Project.account_id) == account_id, col(Project.org_identifier) == org_identifier, col(Project.identifier) == identifier
        )
    )
    if project is None:
        raise NotFound("Project", f"{org_identifier}/{identifier}")
    return project


async def list_organizations(session: AsyncSession, caller: Caller) -> list[Organization]:
    """The caller's organizations (the scopes groups live in: reading them needs groups:read)."""
    caller.require(Permission.GROUPS_READ)
    rows = await session.scalars(
        select(Organization).where(col(Organization.account_id) == caller.account_id).order_by(col(Organization.identifier))
    )
    return list(rows)


async def list_projects(session: AsyncSession, caller: Caller, org_identifier: str | None) -> list[Project]:
    """The caller's projects, of one organization or all (groups:read, as organizations)."""
    caller.require(Permission.GROUPS_READ)
    query = select(Project).where(col(Project.account_id) == caller.account_id)
    if has_nul(org_identifier):
        return []
    if org_identifier is not None:
        query = query.where(col(Project.org_identifier) == org_identifier)
    rows = await session.scalars(query.order_by(col(Project.org_identifier), col(Project.identifier)))
    return list(rows)


MAX_RETENTION_DAYS = 3650


async def deprovision_retention_days(session: AsyncSession, caller: Caller) -> int:
    """How many days the caller's account keeps a user the identity provider deleted (0: none)."""
    caller.require(Permission.ADMIN)
    return (await get_account(session, caller.account_identifier)).deprovision_retention_days


async def set_deprovision_retention_days(session: AsyncSession, caller: Caller, days: int) -> int:
    """Set how long the account keeps deprovisioned users as tombstones; 0 deletes them at once.
    Tombstones kept already follow the new period (`python -m app purge`)."""
    return await _set_days(session, caller, "deprovision_retention_days", "deprovisionRetentionDays", days, least=0)


async def activity_retention_days(session: AsyncSession, caller: Caller) -> int:
    """How many days the caller's account keeps the activity log's records of SCIM requests."""
    caller.require(Permission.ADMIN)
    return (await get_account(session, caller.account_identifier)).activity_retention_days


async def set_activity_retention_days(session: AsyncSession, caller: Caller, days: int) -> int:
    """Set how long the account keeps its records of SCIM requests (`python -m app purge`)."""
    return await _set_days(session, caller, "activity_retention_days", "activityRetentionDays", days, least=1)


async def _set_days(session: AsyncSession, caller: Caller, column: str, name: str, days: int, *, least: int) -> int:
    caller.require(Permission.ADMIN)
    if isinstance(days, bool) or not isinstance(days, int) or not least <= days <= MAX_RETENTION_DAYS:
        raise InvalidInput(f"{name} must be a whole number of days from {least} to {MAX_RETENTION_DAYS}", field=name)
    account = await get_account(session, caller.account_identifier)
    before = getattr(account, column)
    setattr(account, column, days)
    await session.flush()
    await audit.record(
        session,
        caller,
        action="account.settings",
        resource_type="Account",
        resource_id=account.identifier,
        detail={name: {"before": before, "after": days}},
    )
    return days
