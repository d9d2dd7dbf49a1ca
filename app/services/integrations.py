"""App integrations: which identity-provider app provisioned what, how healthy each is, and who the
account's SSO will let in.

An account may connect several apps of its identity provider — Harness's page "Provision Users and
Groups using Azure AD (SCIM)" ends with the FirstGen and NextGen app integrations of one account;
an account moving from Okta to Entra has two for a while. A token bound to an integration (see
`tokens.issue`) provisions for it:

- the users and groups it creates record it as their provenance (`app_integration_id`);
- every user it creates, changes or adopts is **assigned** by it (`user_assignments`); its SCIM
  DELETE ends that assignment, and deprovisions the user only when no active integration still
  assigns them (`end_assignment`);
- the groups it creates are its own: its tokens see those and the groups no integration owns, never
  another integration's (`groups.visible_to`).

**SSO** (`preflight`, `risks`), exactly as the page states it: when an account has both a FirstGen
and a NextGen app integration, every SSO login is authenticated through the FirstGen one, so a
user provisioned only through the NextGen one exists and cannot log in. The authenticating
integration is the oldest active FIRSTGEN one, else the oldest active NEXTGEN one; a user logs in
only if active and assigned by it.

**Disconnecting** (`disconnect`) revokes the integration's tokens; with `release` its groups become
native and its users that no other active integration assigns become editable in the admin UI.
Integrations are never deleted: users and groups keep naming them.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, case, delete, exists, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.db.models import (
    ApiToken,
    AppIntegration,
    AppIntegrationActivity,
    IntegrationGeneration,
    IntegrationStatus,
    ManagedBy,
    ProvisionedBy,
    User,
    UserAssignment,
    UserGroup,
)
from app.db.statements import Prepared
from app.db.types import utcnow
from app.errors import Conflict, InvalidInput, NotFound
from app.services import audit
from app.services.caller import Caller, Permission
from app.services.common import UNSET, Reader, chunks, connection_of, insert_unique, lock_ids, unique_changes
from app.validation import MAX_INDEXED, has_nul, is_blank

ASSIGNMENTS = UserAssignment.__table__  # type: ignore[attr-defined]
INTEGRATIONS = AppIntegration.__table__  # type: ignore[attr-defined]
ACTIVITY = AppIntegrationActivity.__table__  # type: ignore[attr-defined]
USERS = User.__table__  # type: ignore[attr-defined]
MAX_PROVIDER = 256
# How far ahead of a token's expiry its integration's health warns (`token_expires_soon`).
TOKEN_EXPIRY_WARNING = timedelta(days=14)
# The health's request counts cover the last 24 hours, by the hour (see app.integration_activity).
HEALTH_WINDOW = timedelta(hours=24)
# Activity older than this is deleted by `python -m app purge`: the health reads one day of it.
ACTIVITY_RETENTION = timedelta(days=7)


class LoginRefusal(enum.StrEnum):
    """Why an SSO login would be refused."""

    NOT_ASSIGNED_TO_AUTHENTICATING_INTEGRATION = "NOT_ASSIGNED_TO_AUTHENTICATING_INTEGRATION"
    USER_INACTIVE = "USER_INACTIVE"
    USER_UNKNOWN = "USER_UNKNOWN"
    NO_INTEGRATION = "NO_INTEGRATION"


# --- the integrations themselves ------------------------------------------------------------------


def _name(value: Any) -> str:
    if not isinstance(value, str) or is_blank(value) or has_nul(value):
        raise InvalidInput("the integration's name must be a non-empty string", field="name")
    if len(value) > MAX_INDEXED:
        raise InvalidInput(f"the integration's name is longer than {MAX_INDEXED} characters", field="name")
    return value.strip()


def _generation(value: Any) -> str:
    text = str(getattr(value, "value", value)).upper()
    if text not in IntegrationGeneration.__members__:
        raise InvalidInput("generation must be FIRSTGEN or NEXTGEN", field="generation")
    return text


def _provider(value: Any) -> str:
    if not isinstance(value, str) or is_blank(value) or has_nul(value) or len(value) > MAX_PROVIDER:
        raise InvalidInput(
            f'provider must name the identity provider ("Azure AD", "Okta", …) in at most {MAX_PROVIDER} characters', field="provider"
        )
    return value.strip()


def _name_taken(name: str) -> Conflict:
    return Conflict(f"an app integration named '{name}' already exists", field="name")


async def create_integration(session: AsyncSession, caller: Caller, *, name: str, generation: Any, provider: str) -> AppIntegration:
    """A new, active integration of the caller's account; its name is unique in the account (any case)."""
    caller.require(Permission.ADMIN)
    name = _name(name)
    integration = AppIntegration(
        account_id=caller.account_id,
        id=str(uuid.uuid4()),
        name=name,
        name_ci=name.lower(),
        generation=_generation(generation),
        provider=_provider(provider),
        status=IntegrationStatus.ACTIVE.value,
    )
    if not await insert_unique(session, integration):
        raise _name_taken(name)
    await audit.record(
        session,
        caller,
        action="integration.create",
        resource_type="AppIntegration",
        resource_id=integration.id,
        detail={"name": name, "generation": integration.generation, "provider": integration.provider},
    )
    return integration


async def get_integration(session: AsyncSession, caller: Caller, integration_id: str, *, for_update: bool = False) -> AppIntegration:
    caller.require(Permission.ADMIN)
    query = select(AppIntegration).where(col(AppIntegration.account_id) == caller.account_id, col(AppIntegration.id) == integration_id)
    # FOR NO KEY UPDATE: the integration's own writes in flight (an assignment's foreign key takes
    # KEY SHARE on it) go on while it is changed; a token being bound to it (FOR SHARE) waits.
    found = None if has_nul(integration_id) else await session.scalar(query.with_for_update(key_share=True) if for_update else query)
    if found is None:
        raise NotFound("AppIntegration", integration_id)
    return found


async def get_integration_by_name(session: AsyncSession, caller: Caller, name: str) -> AppIntegration:
    """The integration with this name (any case): how the CLI names one."""
    caller.require(Permission.ADMIN)
    query = select(AppIntegration).where(col(AppIntegration.account_id) == caller.account_id, col(AppIntegration.name_ci) == name.lower())
    found = None if has_nul(name) else await session.scalar(query)
    if found is None:
        raise NotFound("AppIntegration", name)
    return found


async def list_integrations(session: AsyncSession, caller: Caller) -> list[AppIntegration]:
    """The account's integrations, oldest first."""
    caller.require(Permission.ADMIN)
    query = (
        select(AppIntegration)
        .where(col(AppIntegration.account_id) == caller.account_id)
        .order_by(col(AppIntegration.created_at), col(AppIntegration.id))
    )
    return list(await session.scalars(query))


async def integrations_by_id(reader: Reader, account_id: int, ids: Sequence[str]) -> dict[str, Any]:
    """Integrations (plain rows) by id: what a user's or group's provenance names. No permission of
    its own: a name and a generation are part of the user or group that was read."""
    found: dict[str, Any] = {}
    connection = await connection_of(reader)
    for part in chunks(sorted(set(ids))):
        rows = await connection.execute(select(INTEGRATIONS).where(INTEGRATIONS.c.account_id == account_id, INTEGRATIONS.c.id.in_(part)))
        found.update({row.id: row for row in rows})
    return found


async def update_integration(
    session: AsyncSession,
    caller: Caller,
    integration_id: str,
    *,
    name: Any = UNSET,
    generation: Any = UNSET,
    provider: Any = UNSET,
    status: Any = UNSET,
) -> AppIntegration:
    """Rename it, correct its generation or provider, or reconnect it (status ACTIVE) after a
    disconnection; disconnecting is `disconnect`, which revokes its tokens."""
    integration = await get_integration(session, caller, integration_id, for_update=True)
    changed: dict[str, Any] = {}
    if name is not UNSET:
        changed["name"] = _name(name)
    if generation is not UNSET:
        changed["generation"] = _generation(generation)
    if provider is not UNSET:
        changed["provider"] = _provider(provider)
    if status is not UNSET:
        text = str(getattr(status, "value", status)).upper()
        if text != IntegrationStatus.ACTIVE.value:
            raise InvalidInput(
                "status can only be set to ACTIVE here (reconnecting); disconnect with disconnectAppIntegration", field="status"
            )
        changed["status"] = text
    changed = {key: value for key, value in changed.items() if getattr(integration, key) != value}
    if not changed:
        return integration
    name = changed.get("name", integration.name)
    async with unique_changes(session, lambda: _name_taken(name)):  # the name is unique in the account
        for key, value in changed.items():
            setattr(integration, key, value)
        integration.name_ci = integration.name.lower()
        if changed.get("status") == IntegrationStatus.ACTIVE.value:
            integration.disconnected_at = None
    await audit.record(
        session,
        caller,
        action="integration.update",
        resource_type="AppIntegration",
        resource_id=integration.id,
        detail={"changed": changed},
    )
    return integration


@dataclass
class Disconnected:
    integration: AppIntegration
    revoked_tokens: list[str] = field(default_factory=list)
    released_groups: list[str] = field(default_factory=list)
    released_users: list[str] = field(default_factory=list)


async def disconnect(session: AsyncSession, caller: Caller, integration_id: str, *, release: bool) -> Disconnected:
    """Disconnect an integration: its tokens are revoked, and it no longer authenticates SSO logins
    nor counts as assigning anyone. With `release`, what it provisioned goes back to the admin: its
    groups become native (managedBy MANAGER) and its users that no other active integration
    assigns become editable (provisionedBy MANAGER) — one audit event per resource. Without, all of
    it stays locked, as it is while the admin reconnects it. Disconnecting again with `release`
    releases what an earlier disconnection kept."""
    integration = await get_integration(session, caller, integration_id, for_update=True)
    now = utcnow()
    done = Disconnected(integration)
    revoked = await session.execute(
        update(ApiToken)
        .where(
            col(ApiToken.account_id) == caller.account_id,
            col(ApiToken.app_integration_id) == integration.id,
            col(ApiToken.revoked_at).is_(None),
        )
        .values(revoked_at=now)
        .returning(col(ApiToken.token_id))
    )
    done.revoked_tokens = sorted(revoked.scalars())
    for token_id in done.revoked_tokens:
        await audit.record(
            session,
            caller,
            action="token.revoke",
            resource_type="ApiToken",
            resource_id=token_id,
            detail={"appIntegrationId": integration.id},
        )
    if integration.status != IntegrationStatus.DISCONNECTED.value:
        integration.status = IntegrationStatus.DISCONNECTED.value
        integration.disconnected_at = now
        await session.flush()
    if release:
        done.released_users = await _release_users(session, caller, integration.id, now)
        done.released_groups = await _release_groups(session, caller, integration.id, now)
    await audit.record(
        session,
        caller,
        action="integration.disconnect",
        resource_type="AppIntegration",
        resource_id=integration.id,
        detail={
            "release": release,
            "revokedTokens": len(done.revoked_tokens),
            "releasedGroups": len(done.released_groups),
            "releasedUsers": len(done.released_users),
        },
    )
    return done


def _assigned_by_active(account_id: Any, user_id: Any, besides: Any = None) -> Any:
    """An active integration (other than `besides`) assigns the user."""
    conditions = [
        ASSIGNMENTS.c.account_id == account_id,
        ASSIGNMENTS.c.user_id == user_id,
        INTEGRATIONS.c.status == IntegrationStatus.ACTIVE.value,
    ]
    if besides is not None:
        conditions.append(ASSIGNMENTS.c.integration_id != besides)
    joined = ASSIGNMENTS.join(
        INTEGRATIONS, and_(INTEGRATIONS.c.account_id == ASSIGNMENTS.c.account_id, INTEGRATIONS.c.id == ASSIGNMENTS.c.integration_id)
    )
    return exists(select(1).select_from(joined).where(*conditions))


async def _release_users(session: AsyncSession, caller: Caller, integration_id: str, now: datetime) -> list[str]:
    """The integration's users that no other active integration assigns, provisionedBy MANAGER from
    now on; its assignments end. Users are locked in id order, before any group (the services' order)."""
    assigned = select(ASSIGNMENTS.c.user_id).where(
        ASSIGNMENTS.c.account_id == caller.account_id, ASSIGNMENTS.c.integration_id == integration_id
    )
    releasable = and_(
        col(User.account_id) == caller.account_id,
        col(User.id).in_(assigned),
        col(User.provisioned_by) == ProvisionedBy.SCIM.value,
        ~_assigned_by_active(caller.account_id, col(User.id), besides=integration_id),
    )
    released = await _release(session, caller, integration_id, now, _USERS_RELEASE, releasable)
    await session.execute(
        delete(UserAssignment).where(
            col(UserAssignment.account_id) == caller.account_id, col(UserAssignment.integration_id) == integration_id
        )
    )
    return released


@dataclass(frozen=True)
class _Release:
    """What releasing a kind of row changes, and how its events name it."""

    model: Any  # User or UserGroup
    resource_type: str
    action: str
    column: str
    name: str  # the column's name in the event
    before: str
    after: str


_USERS_RELEASE = _Release(User, "User", "user.released", "provisioned_by", "provisionedBy", ProvisionedBy.SCIM, ProvisionedBy.MANAGER)
_GROUPS_RELEASE = _Release(
    UserGroup, "UserGroup", "group.released", "managed_by", "managedBy", ManagedBy.IDENTITY_PROVIDER, ManagedBy.MANAGER
)


async def _release(session: AsyncSession, caller: Caller, integration_id: str, now: datetime, release: _Release, which: Any) -> list[str]:
    """Lock the rows that `which` names, in id order, change them as `release` says (their versions
    move on), and record one event each; their ids."""
    model = release.model
    released = await lock_ids(session, col(model.id), which)
    for part in chunks(released):
        await session.execute(
            update(model)
            .where(col(model.account_id) == caller.account_id, col(model.id).in_(part))
            .values({release.column: str(release.after), "version": col(model.version) + 1, "updated_at": now})
        )
    change = {release.name: {"before": str(release.before), "after": str(release.after)}}
    for released_id in released:
        await audit.record(
            session,
            caller,
            action=release.action,
            resource_type=release.resource_type,
            resource_id=released_id,
            detail={"appIntegrationId": integration_id, **change},
        )
    return released


async def _release_groups(session: AsyncSession, caller: Caller, integration_id: str, now: datetime) -> list[str]:
    owned = and_(
        col(UserGroup.account_id) == caller.account_id,
        col(UserGroup.app_integration_id) == integration_id,
        col(UserGroup.managed_by) == ManagedBy.IDENTITY_PROVIDER.value,
    )
    return await _release(session, caller, integration_id, now, _GROUPS_RELEASE, owned)


# --- assignments ------------------------------------------------------------------------------------


def assignment(caller: Caller, user_id: str) -> list[tuple[Any, list[dict[str, Any]]]]:
    """The assignment a SCIM write of a user by `caller` records, as rows to store with the write
    (`common.insert_new` / `write_changes`, which leave an assignment that exists already as it
    is): none for a token bound to no integration."""
    if not caller.is_identity_provider or caller.integration_id is None:
        return []
    row = {"account_id": caller.account_id, "user_id": user_id, "integration_id": caller.integration_id, "assigned_at": utcnow()}
    return [(ASSIGNMENTS, [row])]


_END_ASSIGNMENT = Prepared(
    delete(ASSIGNMENTS).where(
        ASSIGNMENTS.c.account_id == bindparam("account_id"),
        ASSIGNMENTS.c.user_id == bindparam("user_id"),
        ASSIGNMENTS.c.integration_id == bindparam("integration_id"),
    )
)
_ASSIGNED_BY_OTHERS = Prepared(
    select(ASSIGNMENTS.c.integration_id)
    .select_from(
        ASSIGNMENTS.join(
            INTEGRATIONS, and_(INTEGRATIONS.c.account_id == ASSIGNMENTS.c.account_id, INTEGRATIONS.c.id == ASSIGNMENTS.c.integration_id)
        )
    )
    .where(
        ASSIGNMENTS.c.account_id == bindparam("account_id"),
        ASSIGNMENTS.c.user_id == bindparam("user_id"),
        INTEGRATIONS.c.status == IntegrationStatus.ACTIVE.value,
    )
    .order_by(ASSIGNMENTS.c.integration_id)
)
_END_ALL_ASSIGNMENTS = Prepared(
    delete(ASSIGNMENTS).where(ASSIGNMENTS.c.account_id == bindparam("account_id"), ASSIGNMENTS.c.user_id == bindparam("user_id"))
)


async def end_assignment(session: AsyncSession, caller: Caller, user_id: str) -> list[str]:
    """A SCIM DELETE of a user by a token bound to an integration: that integration no longer
    assigns the user. The active integrations that still do, by id: the user is deprovisioned only
    when there are none."""
    if caller.integration_id is None:
        return []
    connection = await session.connection()
    params = {"account_id": caller.account_id, "user_id": user_id}
    await _END_ASSIGNMENT.execute(connection, {**params, "integration_id": caller.integration_id})
    return [row.integration_id for row in await _ASSIGNED_BY_OTHERS.all(connection, params)]


async def end_all_assignments(session: AsyncSession, account_id: int, user_id: str) -> None:
    """The user was deprovisioned: no integration assigns them any more."""
    await _END_ALL_ASSIGNMENTS.execute(await session.connection(), {"account_id": account_id, "user_id": user_id})


def active(found: Iterable[Any]) -> list[Any]:
    """The active ones of some integrations: those that assign, for SSO."""
    return [i for i in found if i.status == IntegrationStatus.ACTIVE.value]


async def assigning_integrations(reader: Reader, account_id: int, user_ids: Sequence[str]) -> dict[str, list[Any]]:
    """For each user, the integrations (plain rows, oldest first) that assign them."""
    found: dict[str, list[Any]] = {user_id: [] for user_id in user_ids}
    connection = await connection_of(reader)
    joined = ASSIGNMENTS.join(
        INTEGRATIONS, and_(INTEGRATIONS.c.account_id == ASSIGNMENTS.c.account_id, INTEGRATIONS.c.id == ASSIGNMENTS.c.integration_id)
    )
    for part in chunks(sorted(set(user_ids))):
        rows = await connection.execute(
            select(ASSIGNMENTS.c.user_id.label("assigned_user"), *INTEGRATIONS.c)
            .select_from(joined)
            .where(ASSIGNMENTS.c.account_id == account_id, ASSIGNMENTS.c.user_id.in_(part))
            .order_by(INTEGRATIONS.c.created_at, INTEGRATIONS.c.id)
        )
        for row in rows:
            found[row.assigned_user].append(row)
    return found


# --- SSO --------------------------------------------------------------------------------------------

_AUTHENTICATING = Prepared(
    select(INTEGRATIONS)
    .where(INTEGRATIONS.c.account_id == bindparam("account_id"), INTEGRATIONS.c.status == IntegrationStatus.ACTIVE.value)
    .order_by(
        case((INTEGRATIONS.c.generation == IntegrationGeneration.FIRSTGEN.value, 0), else_=1), INTEGRATIONS.c.created_at, INTEGRATIONS.c.id
    )
    .limit(1)
)


async def authenticating_integration(reader: Reader, account_id: int) -> Any | None:
    """The integration SSO logins of the account go through: the oldest active FIRSTGEN one, else
    the oldest active NEXTGEN one; None when there is no active integration."""
    return await _AUTHENTICATING.first(await connection_of(reader), {"account_id": account_id})


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    integration: Any | None  # the authenticating integration
    reason: LoginRefusal | None
    user: Any | None = None


_LIVE_USER = USERS.c.deprovisioned_at.is_(None)
_BY_LOGIN = Prepared(
    select(USERS)
    .where(
        USERS.c.account_id == bindparam("account_id"),
        _LIVE_USER,
        or_(USERS.c.email_ci == bindparam("login"), USERS.c.user_name_ci == bindparam("login")),
    )
    # The user whose userName is the address first, then the oldest with it as primary email.
    .order_by(case((USERS.c.user_name_ci == bindparam("login"), 0), else_=1), USERS.c.created_at, USERS.c.id)
    .limit(1)
)
_ASSIGNED = Prepared(
    select(ASSIGNMENTS.c.user_id).where(
        ASSIGNMENTS.c.account_id == bindparam("account_id"),
        ASSIGNMENTS.c.user_id == bindparam("user_id"),
        ASSIGNMENTS.c.integration_id == bindparam("integration_id"),
    )
)


async def preflight(reader: Reader, caller: Caller, email: str) -> Verdict:
    """Whether the user who signs in with `email` (their userName or primary email, any case) would
    be let in by the account's SSO, and why not."""
    caller.require(Permission.USERS_READ)
    connection = await connection_of(reader)
    integration = await authenticating_integration(connection, caller.account_id)
    user = None
    if not has_nul(email):
        user = await _BY_LOGIN.first(connection, {"account_id": caller.account_id, "login": email.strip().lower()})
    if user is None:
        return Verdict(False, integration, LoginRefusal.USER_UNKNOWN)
    if integration is None:
        return Verdict(False, None, LoginRefusal.NO_INTEGRATION, user)
    if user.active is False:
        return Verdict(False, integration, LoginRefusal.USER_INACTIVE, user)
    params = {"account_id": caller.account_id, "user_id": user.id, "integration_id": integration.id}
    if await _ASSIGNED.first(connection, params) is None:
        return Verdict(False, integration, LoginRefusal.NOT_ASSIGNED_TO_AUTHENTICATING_INTEGRATION, user)
    return Verdict(True, integration, None, user)


RISK_ORDER = (USERS.c.user_name_ci, USERS.c.id)


@dataclass(frozen=True)
class Risks:
    integration: Any | None  # the authenticating integration
    reason: LoginRefusal  # why each user here would be refused
    total: int
    users: list[Any]  # one page, in RISK_ORDER


async def risks(reader: Reader, caller: Caller, *, after: tuple[str, str] | None, limit: int) -> Risks:
    """The active users the account's SSO would refuse — all of them when no integration is
    active, else those the authenticating integration does not assign — by userName, from after
    the (userName lower-cased, id) of a previous page's last (keyset: stable while SCIM writes)."""
    caller.require(Permission.USERS_READ)
    connection = await connection_of(reader)
    integration = await authenticating_integration(connection, caller.account_id)
    conditions = [USERS.c.account_id == caller.account_id, _LIVE_USER, USERS.c.active.is_not(False)]
    if integration is not None:
        assigned = select(1).where(
            ASSIGNMENTS.c.account_id == USERS.c.account_id,
            ASSIGNMENTS.c.user_id == USERS.c.id,
            ASSIGNMENTS.c.integration_id == integration.id,
        )
        conditions.append(~exists(assigned))
    total = int((await connection.execute(select(func.count()).select_from(USERS).where(*conditions))).scalar_one())
    if after is not None:
        conditions.append(or_(USERS.c.user_name_ci > after[0], and_(USERS.c.user_name_ci == after[0], USERS.c.id > after[1])))
    rows = list(await connection.execute(select(USERS).where(*conditions).order_by(*RISK_ORDER).limit(limit))) if limit > 0 else []
    reason = LoginRefusal.NO_INTEGRATION if integration is None else LoginRefusal.NOT_ASSIGNED_TO_AUTHENTICATING_INTEGRATION
    return Risks(integration, reason, total, rows)


# --- health -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    at: datetime
    status: int
    scim_type: str | None
    detail: str


@dataclass
class Tally:
    """What an instance saw of one integration's requests since it last wrote (app.integration_activity)."""

    requests: dict[datetime, list[int]] = field(default_factory=dict)  # hour -> [requests, 4xx, 5xx]
    last_success_at: datetime | None = None
    last_failure: Failure | None = None

    def note(self, at: datetime, status: int, failure: Failure | None) -> None:
        hour = at.replace(minute=0, second=0, microsecond=0)
        counts = self.requests.get(hour)
        if counts is None:  # (not setdefault: it would build a list for every request)
            counts = self.requests[hour] = [0, 0, 0]
        counts[0] += 1
        if 400 <= status < 500:
            counts[1] += 1
        elif status >= 500:
            counts[2] += 1
        if failure is None:
            if self.last_success_at is None or at > self.last_success_at:
                self.last_success_at = at
        elif self.last_failure is None or failure.at > self.last_failure.at:
            self.last_failure = failure

    def merge(self, other: Tally) -> None:
        for hour, counts in other.requests.items():
            mine = self.requests.setdefault(hour, [0, 0, 0])
            for i, n in enumerate(counts):
                mine[i] += n
        if other.last_success_at is not None and (self.last_success_at is None or other.last_success_at > self.last_success_at):
            self.last_success_at = other.last_success_at
        if other.last_failure is not None and (self.last_failure is None or other.last_failure.at > self.last_failure.at):
            self.last_failure = other.last_failure


def _upsert_activity(dialect: str) -> Any:
    build = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = build(ACTIVITY)
    added = {name: ACTIVITY.c[name] + statement.excluded[name] for name in ("requests", "client_failures", "server_failures")}
    return statement.on_conflict_do_update(index_elements=["account_id", "integration_id", "hour"], set_=added)


_UPSERT_ACTIVITY = {dialect: Prepared(_upsert_activity(dialect)) for dialect in ("postgresql", "sqlite")}
# UPDATE parameters must not be named as columns of the table.
_OF_INTEGRATION = and_(INTEGRATIONS.c.account_id == bindparam("b_account_id"), INTEGRATIONS.c.id == bindparam("b_integration_id"))
_AT = bindparam("b_at", type_=INTEGRATIONS.c.last_success_at.type)
_LAST_SUCCESS = Prepared(
    update(INTEGRATIONS)
    .where(_OF_INTEGRATION, or_(INTEGRATIONS.c.last_success_at.is_(None), INTEGRATIONS.c.last_success_at < _AT))
    .values(last_success_at=_AT)
)
_LAST_FAILURE = Prepared(
    update(INTEGRATIONS)
    .where(_OF_INTEGRATION, or_(INTEGRATIONS.c.last_failure_at.is_(None), INTEGRATIONS.c.last_failure_at < _AT))
    .values(
        last_failure_at=_AT,
        last_failure_status=bindparam("b_status"),
        last_failure_scim_type=bindparam("b_scim_type"),
        last_failure_detail=bindparam("b_detail"),
    )
)
MAX_FAILURE_DETAIL = 1000


async def record_activity(session: AsyncSession, tallies: Mapping[tuple[int, str], Tally]) -> None:
    """Add what an instance saw to the integrations' health: hourly counts are added to (other
    instances add theirs), the last success and failure replaced only by later ones."""
    connection = await session.connection()
    upsert = _UPSERT_ACTIVITY[connection.dialect.name]
    rows = [
        {
            "account_id": account_id,
            "integration_id": integration_id,
            "hour": hour,
            "requests": counts[0],
            "client_failures": counts[1],
            "server_failures": counts[2],
        }
        for (account_id, integration_id), tally in sorted(tallies.items())
        for hour, counts in sorted(tally.requests.items())
    ]
    for row in rows:  # in key order: two instances writing at once queue rather than deadlock
        await upsert.execute(connection, row)
    for (account_id, integration_id), tally in sorted(tallies.items()):
        about = {"b_account_id": account_id, "b_integration_id": integration_id}
        if tally.last_success_at is not None:
            await _LAST_SUCCESS.execute(connection, {**about, "b_at": tally.last_success_at})
        failure = tally.last_failure
        if failure is not None:
            detail = failure.detail[:MAX_FAILURE_DETAIL]
            params = {"b_at": failure.at, "b_status": failure.status, "b_scim_type": failure.scim_type, "b_detail": detail}
            await _LAST_FAILURE.execute(connection, {**about, **params})


@dataclass(frozen=True)
class Health:
    last_success_at: datetime | None
    requests: int  # in HEALTH_WINDOW
    client_failures: int
    server_failures: int
    last_failure: Failure | None


async def health(reader: Reader, account_id: int, integration_ids: Sequence[str], now: datetime) -> dict[str, Health]:
    """Each integration's health: its last success and failure, and its requests in the last 24
    hours (whole hours: the hour now running and the 23 before it), for any number of integrations
    in two queries. No permission of its own: callers are the admin's views."""
    connection = await connection_of(reader)
    since = now.replace(minute=0, second=0, microsecond=0) - HEALTH_WINDOW + timedelta(hours=1)
    sums: dict[str, tuple[int, int, int]] = {}
    for part in chunks(sorted(set(integration_ids))):
        rows = await connection.execute(
            select(
                ACTIVITY.c.integration_id,
                func.sum(ACTIVITY.c.requests),
                func.sum(ACTIVITY.c.client_failures),
                func.sum(ACTIVITY.c.server_failures),
            )
            .where(ACTIVITY.c.account_id == account_id, ACTIVITY.c.integration_id.in_(part), ACTIVITY.c.hour >= since)
            .group_by(ACTIVITY.c.integration_id)
        )
        sums.update({row[0]: (int(row[1]), int(row[2]), int(row[3])) for row in rows})
    out = {}
    for integration_id, i in (await integrations_by_id(connection, account_id, integration_ids)).items():
        requests, client, server = sums.get(integration_id, (0, 0, 0))
        failure = None
        if i.last_failure_at is not None:
            failure = Failure(i.last_failure_at, int(i.last_failure_status or 0), i.last_failure_scim_type, i.last_failure_detail or "")
        out[integration_id] = Health(i.last_success_at, requests, client, server, failure)
    return out


async def purge_activity(session: AsyncSession, now: datetime) -> int:
    """Delete the hourly counts older than ACTIVITY_RETENTION, of every account (`python -m app purge`)."""
    result = await session.execute(delete(AppIntegrationActivity).where(col(AppIntegrationActivity.hour) < now - ACTIVITY_RETENTION))
    return int(getattr(result, "rowcount", 0) or 0)


async def tokens_of(reader: Reader, account_id: int, integration_ids: Sequence[str]) -> dict[str, list[Any]]:
    """Each integration's tokens (plain rows, never the hash), newest first."""
    found: dict[str, list[Any]] = {i: [] for i in integration_ids}
    columns = [c for c in ApiToken.__table__.c if c.key != "secret_hash"]  # type: ignore[attr-defined]
    connection = await connection_of(reader)
    for part in chunks(sorted(set(integration_ids))):
        rows = await connection.execute(
            select(*columns)
            .where(col(ApiToken.account_id) == account_id, col(ApiToken.app_integration_id).in_(part))
            .order_by(col(ApiToken.created_at).desc(), col(ApiToken.token_id))
        )
        for row in rows:
            found[row.app_integration_id].append(row)
    return found


def token_expires_soon(tokens: Iterable[Any], now: datetime) -> bool:
    """The integration's newest token that is not revoked expires within TOKEN_EXPIRY_WARNING (or
    has expired): provisioning stops when it does, unless the admin puts a new one in the app."""
    newest = next((t for t in tokens if t.revoked_at is None), None)
    return newest is not None and newest.expires_at is not None and newest.expires_at <= now + TOKEN_EXPIRY_WARNING
