"""Users: creation, replacement, deletion and the rules that guard them.

Rules here apply to every channel. Which channel may change what is decided by `_guard`, the one
place that knows the Limitations of Harness's page "Provision Users and Groups using Azure AD
(SCIM)" for users.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import ColumnElement, String, and_, bindparam, delete, exists, false, func, insert, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.db.casefold import fold
from app.db.models import (
    MEMBERSHIP_GROUP,
    MEMBERSHIP_USER,
    Account,
    GroupMembership,
    ManagedBy,
    Outcome,
    ProvisionedBy,
    User,
    UserAttributeValue,
    UserCount,
    UserGroup,
)
from app.db.statements import Prepared
from app.db.transactions import locks_row, needs_transaction
from app.db.types import utcnow
from app.errors import Conflict, GuardedOperation, InvalidInput, ManagedByIdentityProvider, NotFound
from app.services import audit, extensions, flags, integrations
from app.services.caller import Caller, Permission
from app.services.common import (
    UNSET,
    Columns,
    Filter,
    PageQuery,
    Reader,
    among_ids,
    chunks,
    connection_of,
    count_of_page,
    fetch,
    id_values,
    insert_new,
    kept,
    lock_ids,
    one_row,
    one_row_params,
    owned_row,
    page,
    row_updater,
    rows_of_page,
    unique_changes,
    viewer_params,
    write_changes,
)
from app.validation import LIKE_ESCAPE, MAX_EMAIL, MAX_INDEXED, has_nul, is_blank, like_escaped

USERS = User.__table__  # type: ignore[attr-defined]
INDEX_ROWS = UserAttributeValue.__table__  # type: ignore[attr-defined]
_INSERT_INDEX_ROWS = Prepared(INDEX_ROWS.insert())
_DELETE_INDEX_ROWS = Prepared(
    delete(UserAttributeValue).where(
        col(UserAttributeValue.account_id) == bindparam("b_account_id"), col(UserAttributeValue.user_id) == bindparam("b_id")
    )
)
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True, slots=True)
class UserValues:
    """What a caller may set on a user: one field per column of `users` that a caller writes (the
    rest, DERIVED, the service works out). A field left UNSET keeps the stored value, or on create
    the column's default. Naming a column that is not here fails at once, instead of being dropped."""

    user_name: Any = UNSET
    external_id: Any = UNSET
    display_name: Any = UNSET
    nick_name: Any = UNSET
    profile_url: Any = UNSET
    title: Any = UNSET
    user_type: Any = UNSET
    preferred_language: Any = UNSET
    locale: Any = UNSET
    timezone: Any = UNSET
    name_formatted: Any = UNSET
    name_family: Any = UNSET
    name_given: Any = UNSET
    name_middle: Any = UNSET
    name_honorific_prefix: Any = UNSET
    name_honorific_suffix: Any = UNSET
    active: Any = UNSET
    employee_number: Any = UNSET
    cost_center: Any = UNSET
    organization: Any = UNSET
    division: Any = UNSET
    department: Any = UNSET
    manager_id: Any = UNSET
    multi_valued: Any = UNSET  # emails, phoneNumbers, addresses… as sent, by attribute name
    extensions: Any = UNSET  # attributes of custom schema extensions as sent: {urn: {name: value}}

    def given(self) -> dict[str, Any]:
        """The fields set, by column."""
        return {name: value for name in WRITABLE if (value := getattr(self, name)) is not UNSET}


WRITABLE = tuple(field.name for field in dataclasses.fields(UserValues))
# The columns of `users` no caller sets: identity, ownership, the lower-cased and primary-email
# copies, provenance (who created the user, and through which app integration), the version and
# the tombstone. A test checks that every column is one or the other.
DERIVED = (
    "id",
    "account_id",
    "user_name_ci",
    "email",
    "email_ci",
    "provisioned_by",
    "created_at",
    "updated_at",
    "version",
    "deprovisioned_at",
    "deprovisioned_groups",
    "app_integration_id",
)


@dataclass
class UpdateResult:
    user: UserRecord
    changed: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    adopted: bool = False  # the identity provider took the user over with this change (see `_adoptable`)


def primary_email(multi_valued: dict[str, Any]) -> str | None:
    """The primary email, else the first work email, else the first one."""
    emails = [e for e in (multi_valued.get("emails") or []) if isinstance(e, dict) and e.get("value")]
    chosen = (
        next((e for e in emails if e.get("primary") is True), None)
        or next((e for e in emails if str(e.get("type", "")).lower() == "work"), None)
        or (emails[0] if emails else None)
    )
    return str(chosen["value"]) if chosen else None


def check_values(values: dict[str, Any]) -> None:
    """The rules a user's writable values (by column) meet, whoever sets them: a userName, and no
    value longer than its column. The services check them on every write; SCIM also checks a whole
    document as soon as it is parsed, so that a bad one is refused before anything is read."""
    name = values.get("user_name")
    if not isinstance(name, str) or is_blank(name):
        raise InvalidInput("userName is required and must be a non-empty string", field="userName")
    for column, label in (("user_name", "userName"), ("external_id", "externalId"), ("manager_id", "manager")):
        value = values.get(column)
        if value is not None and len(value) > MAX_INDEXED:
            raise InvalidInput(f"{label} is longer than {MAX_INDEXED} characters", field=label)
    email = primary_email(values.get("multi_valued") or {})
    if email is not None and len(email) > MAX_EMAIL:
        raise InvalidInput(f"the email address is longer than {MAX_EMAIL} characters", field="emails")


def _assign(user: UserRecord, values: dict[str, Any]) -> list[str]:
    """Set writable columns and derived ones; return the names of columns that changed."""
    changed = []
    for column in WRITABLE:
        if column not in values:
            continue
        new = values[column]
        if getattr(user, column) != new:
            changed.append(column)
            setattr(user, column, new)
    user.user_name_ci = user.user_name.lower()
    user.email = primary_email(user.multi_valued or {})
    user.email_ci = user.email.lower() if user.email else None
    return changed


def _index_rows(user: UserRecord) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for attribute, elements in (user.multi_valued or {}).items():
        for element in elements:
            value, kind = element.get("value"), element.get("type")
            rows.append(
                {
                    "account_id": user.account_id,
                    "user_id": user.id,
                    "position": len(rows),
                    "attribute": attribute,
                    "type_ci": str(kind).lower()[:64] if kind is not None else None,
                    "value_ci": str(value).lower()[:512] if value is not None else None,
                    "is_primary": element.get("primary") is True,
                    "data": element,
                }
            )
    # A custom extension's attribute, one row per value (a list: one per element), for `eq` and `pr`.
    for urn, attributes in (user.extensions or {}).items():
        for name, value in attributes.items():
            for item in value if isinstance(value, list) else [value]:
                if item is None or isinstance(item, dict | list):
                    continue  # only plain values are compared
                text = ("true" if item else "false") if isinstance(item, bool) else str(item)
                rows.append(
                    {
                        "account_id": user.account_id,
                        "user_id": user.id,
                        "position": len(rows),
                        "attribute": extensions.key_of(urn, name),
                        "type_ci": None,
                        "value_ci": text.lower()[:512],
                        "is_primary": False,
                        "data": {"value": item},
                    }
                )
    return rows


async def _reindex(session: AsyncSession, user: UserRecord) -> None:
    connection = await session.connection()
    await _DELETE_INDEX_ROWS.execute(connection, one_row_params(user))
    await _INSERT_INDEX_ROWS.execute(connection, _index_rows(user))


def _name_taken(user_name: str) -> Conflict:
    return Conflict(f"a user with userName '{user_name}' already exists", field="userName")


async def _user_name_taken(session: AsyncSession, account_id: int, user_name: str, except_id: str | None) -> bool:
    query = select(col(User.id)).where(col(User.account_id) == account_id, col(User.user_name_ci) == user_name.lower())
    if except_id is not None:
        query = query.where(col(User.id) != except_id)
    return (await session.scalar(query.limit(1))) is not None


class UserRecord(SimpleNamespace):
    """A user as the services read and change it: one attribute per column of `users`. Not an ORM
    entity: it is read with one prepared statement (locked, when it is to change) and written back
    with one UPDATE of the columns that changed (`common.write_changes`)."""


# A user that is not a tombstone (see `delete_user`): what SCIM and every list see.
LIVE = USERS.c.deprovisioned_at.is_(None)
_BY_ID = select(USERS).where(USERS.c.id == bindparam("id"), USERS.c.account_id == bindparam("account_id"))
_USER = {False: Prepared(_BY_ID.where(LIVE)), True: Prepared(_BY_ID.where(LIVE).with_for_update(key_share=True))}
_ANY_USER = {False: Prepared(_BY_ID), True: Prepared(_BY_ID.with_for_update(key_share=True))}
_UPDATE = row_updater(USERS)
_DELETE = Prepared(delete(USERS).where(one_row(USERS)))


async def get_user(
    session: AsyncSession, caller: Caller, user_id: str, *, for_update: bool = False, deprovisioned: bool = False
) -> UserRecord:
    """A user of the caller's account, locked against other changes until the transaction ends when
    `for_update`, or NotFound. A tombstone is found only with `deprovisioned` (the admin UI's view of
    one user, and purging)."""
    caller.require(Permission.USERS_WRITE if for_update else Permission.USERS_READ)
    statement = (_ANY_USER if deprovisioned else _USER)[locks_row(session, for_update)]
    return UserRecord(**(await owned_row(session, statement, "User", user_id, caller.account_id))._mapping)


async def read_user(reader: Reader, caller: Caller, user_id: str) -> Any:
    """`get_user` for a request that only reads: the plain row, on a session or a bare connection."""
    caller.require(Permission.USERS_READ)
    return await owned_row(reader, _USER[False], "User", user_id, caller.account_id)


async def create_user(session: AsyncSession, caller: Caller, given: UserValues) -> CreateResult:
    """Create a user; userName is unique per account ignoring case (409 otherwise), except that over
    SCIM the name of a user created in the admin UI adopts that user (see `_adoptable`)."""
    caller.require(Permission.USERS_WRITE)
    values = given.given()
    check_values(values)
    if values.get("extensions"):
        values["extensions"] = await extensions.check_declared(session, caller.account_id, values["extensions"])
    now = utcnow()
    user = UserRecord(
        **{
            **dict.fromkeys(USERS.c.keys()),
            "id": str(uuid.uuid4()),
            "account_id": caller.account_id,
            "user_name": values["user_name"],
            "user_name_ci": values["user_name"].lower(),
            "active": True,
            "multi_valued": {},
            "extensions": {},
            "provisioned_by": (ProvisionedBy.SCIM if caller.is_identity_provider else ProvisionedBy.MANAGER).value,
            "app_integration_id": caller.integration_id if caller.is_identity_provider else None,
            "created_at": now,
            "updated_at": now,
            "version": 1,
        }
    )
    _assign(user, values)
    event = audit.row(
        caller,
        action="user.create",
        resource_type="User",
        resource_id=user.id,
        detail={"attributes": sorted(k for k, v in values.items() if v not in (None, {}, []))},
    )
    # An existing userName (any case) is found by the unique constraint, in the same statement; so is,
    # over SCIM, a tombstone with the same externalId (the identity provider renamed the user meanwhile).
    restorable = caller.is_identity_provider and user.external_id is not None
    discovered = extensions.added(None, user.extensions) if caller.is_identity_provider else {}
    needs_transaction(session, bool(discovered))  # the user and the discovery are two writes
    stored = await insert_new(
        session,
        USERS,
        vars(user),
        key=("account_id", "user_name_ci"),
        with_rows=[(INDEX_ROWS, _index_rows(user)), (audit.TABLE, [event]), *integrations.assignment(caller, user.id)],
        unless=("tombstone with externalId", _TOMBSTONE_WITH_EXTERNAL_ID) if restorable else None,
    )
    if stored:
        await extensions.discover(session, caller, "User", discovered)
        return CreateResult(user)
    needs_transaction(session)  # nothing was stored: what follows locks the user found, and may change them
    existing = await _by_name_for_update(session, caller.account_id, user.user_name_ci)
    if existing is None and restorable:
        existing = await _tombstone_for_update(session, caller.account_id, user.external_id)
    if existing is not None and caller.is_identity_provider:
        if existing.deprovisioned_at is not None:
            return CreateResult(await _restore(session, caller, existing, given), restored=True)
        if await _adoptable(session, caller, existing):
            # The identity provider creates a user the admin UI made before it was connected: the same
            # user, from now on the identity provider's. Its POST sets every attribute, as a PUT would.
            return CreateResult(existing, adopted=(await update_user(session, caller, existing, given)).adopted)
    if existing is not None and existing.deprovisioned_at is not None:
        raise Conflict(
            f"userName '{user.user_name}' belongs to a user the identity provider deprovisioned, kept until the account's "
            "retention ends so that it can come back; purge that user (purgeUser) to use the name now",
            field="userName",
        )
    raise _name_taken(user.user_name)


@dataclass
class CreateResult:
    user: UserRecord
    adopted: bool = False  # an existing user of the admin UI's was taken over, not created
    restored: bool = False  # a tombstone came back, with its id


_OF_ACCOUNT_ROW = USERS.c.account_id == bindparam("account_id")
_TOMBSTONE_WITH_EXTERNAL_ID = and_(_OF_ACCOUNT_ROW, USERS.c.external_id == bindparam("external_id"), USERS.c.deprovisioned_at.is_not(None))
_BY_NAME_FOR_UPDATE = Prepared(select(USERS).where(_OF_ACCOUNT_ROW, USERS.c.user_name_ci == bindparam("user_name_ci")).with_for_update())
_TOMBSTONE_FOR_UPDATE = Prepared(
    select(USERS).where(_TOMBSTONE_WITH_EXTERNAL_ID).order_by(USERS.c.deprovisioned_at.desc(), USERS.c.id).limit(1).with_for_update()
)


async def _by_name_for_update(session: AsyncSession, account_id: int, user_name_ci: str) -> UserRecord | None:
    """The user, tombstone or not, holding a userName."""
    row = await _BY_NAME_FOR_UPDATE.first(await session.connection(), {"account_id": account_id, "user_name_ci": user_name_ci})
    return None if row is None else UserRecord(**row._mapping)


async def _tombstone_for_update(session: AsyncSession, account_id: int, external_id: str) -> UserRecord | None:
    """The latest tombstone with an externalId."""
    row = await _TOMBSTONE_FOR_UPDATE.first(await session.connection(), {"account_id": account_id, "external_id": external_id})
    return None if row is None else UserRecord(**row._mapping)


async def _adoptable(session: AsyncSession, caller: Caller, user: UserRecord) -> bool:
    """Whether a change by `caller` makes the identity provider the owner of `user`: the caller is
    SCIM, the user was created in the admin UI, and the account's ADOPT_EXISTING_USERS flag is on
    (Harness's SCIM migration takes existing users over). A user already provisioned over SCIM is
    never adopted again: a second create of them stays a conflict."""
    return (
        caller.is_identity_provider
        and user.provisioned_by == ProvisionedBy.MANAGER.value
        and await flags.is_enabled(session, caller.account_id, flags.ADOPT_EXISTING_USERS)
    )


IDP_USER_MESSAGE = (
    "User {id} is managed by your identity provider and cannot be {what} here. "
    "Make this change in the identity provider (Azure AD / Okta); it reaches this account with the next sync."
)
_WHAT = {
    GuardedOperation.UPDATE_PROFILE: "edited",
    GuardedOperation.DELETE: "deleted",
    GuardedOperation.CHANGE_GROUPS: "moved between groups",
}


class Ownership(enum.Enum):
    """Why the identity provider owns some of a user: Harness's Limitations for users."""

    PROVISIONED = "provisioned"  # created over SCIM: email, name and existence are the identity provider's
    IN_IDP_GROUP = "in_idp_group"  # a member of an identity-provider group: locked, group assignments too


# What each reason takes away from every channel but SCIM. A user created in the admin UI and in no
# identity-provider group has no reason: everything may change.
OWNED = {
    Ownership.PROVISIONED: frozenset({GuardedOperation.UPDATE_PROFILE, GuardedOperation.DELETE}),
    Ownership.IN_IDP_GROUP: frozenset({GuardedOperation.UPDATE_PROFILE, GuardedOperation.DELETE, GuardedOperation.CHANGE_GROUPS}),
}
_IN_IDP_GROUP = exists().where(MEMBERSHIP_USER, MEMBERSHIP_GROUP, col(UserGroup.managed_by) == ManagedBy.IDENTITY_PROVIDER.value)


async def ownership(session: AsyncSession, account_id: int, user_ids: Sequence[str]) -> dict[str, frozenset[Ownership]]:
    """For each of these users of the account, why the identity provider owns some of them (no reason:
    it owns nothing), in one statement. The one place that answers it: `guard`, `locked_for` and
    GraphQL's `User.managedByIdentityProvider` all ask here. It checks no permission: its callers are
    a write being checked, or a field of users the caller has already read."""
    connection = await connection_of(session)
    dialect = connection.dialect.name
    statement = kept(
        ("ownership", dialect),
        lambda: select(col(User.id), col(User.provisioned_by), _IN_IDP_GROUP.label("in_idp_group")).where(
            col(User.account_id) == bindparam("account_id"), among_ids(col(User.id), dialect)
        ),
    )
    found: dict[str, frozenset[Ownership]] = {}
    for user_id, provisioned_by, in_idp_group in await fetch(
        connection, statement, {"account_id": account_id, "ids": id_values(dialect, set(user_ids))}
    ):
        reasons = {Ownership.PROVISIONED} if provisioned_by == ProvisionedBy.SCIM.value else set()
        found[user_id] = frozenset(reasons | ({Ownership.IN_IDP_GROUP} if in_idp_group else set()))
    return found


async def locked_for(session: AsyncSession, caller: Caller, user_ids: Sequence[str], operation: GuardedOperation) -> list[str]:
    """The users among `user_ids` on whom `caller` may not make `operation`, in id order: none over
    SCIM, which is how the identity provider itself makes its changes."""
    if caller.is_identity_provider:
        return []
    owned = await ownership(session, caller.account_id, user_ids)
    return sorted(user_id for user_id, reasons in owned.items() if any(operation in OWNED[reason] for reason in reasons))


async def guard(session: AsyncSession, caller: Caller, user_ids: Sequence[str], operation: GuardedOperation) -> None:
    """Refuse `operation` on these users when the identity provider owns it for any of them (see
    `OWNED`). Any change of a membership counts as CHANGE_GROUPS — adding, removing, and removing as
    a side effect of deleting a group."""
    locked = await locked_for(session, caller, user_ids, operation)
    if locked:
        raise refusal(locked[0], operation)


def refusal(user_id: str, operation: GuardedOperation, message: str | None = None) -> ManagedByIdentityProvider:
    return ManagedByIdentityProvider(
        message or IDP_USER_MESSAGE.format(id=user_id, what=_WHAT[operation]),
        resource_type="User",
        resource_id=user_id,
        operation=operation,
    )


def _same_emails(a: Any, b: Any) -> bool:
    def norm(x: Any) -> list[Any]:
        return sorted((str(e.get("value", "")).lower(), str(e.get("type", "")).lower()) for e in (x or []))

    return norm(a) == norm(b)


async def update_user(session: AsyncSession, caller: Caller, user: UserRecord, given: UserValues) -> UpdateResult:
    """Replace a user's writable attributes with those `given` (UNSET ones stay as they are).

    Over SCIM, while the account's UPDATE_EMAILS_VIA_SCIM flag is off, a change of an existing email
    address (the emails, and the userName where it is the email) is skipped and logged as IGNORED;
    the rest of the change applies. A user who has no email yet may be given one.
    """
    caller.require(Permission.USERS_WRITE)
    values = given.given()
    merged = {c: values.get(c, getattr(user, c)) for c in WRITABLE}
    check_values(merged)
    ignored: list[str] = []
    if caller.is_identity_provider:
        new_multi = dict(values.get("multi_valued", user.multi_valued) or {})
        old_emails = (user.multi_valued or {}).get("emails")
        # A user without an address may be given one; an existing address is what the flag protects.
        emails_change = bool(old_emails) and not _same_emails(old_emails, new_multi.get("emails"))
        new_name = values.get("user_name", user.user_name)
        email_name_change = bool(user.email_ci) and user.user_name_ci == user.email_ci and new_name.lower() != user.user_name_ci
        # The flag is read only when it decides something: most updates touch no address.
        if (emails_change or email_name_change) and not await flags.is_enabled(session, caller.account_id, flags.UPDATE_EMAILS_VIA_SCIM):
            if emails_change:
                new_multi["emails"] = old_emails
                values["multi_valued"] = new_multi
                ignored.append("emails")
            if email_name_change:
                values["user_name"] = user.user_name
                ignored.append("userName")
    if not caller.is_identity_provider:
        profile = {"user_name", "display_name", "name_formatted", "name_given", "name_family", "multi_valued"}
        if any(k in profile and values[k] != getattr(user, k) for k in values):
            await guard(session, caller, [user.id], GuardedOperation.UPDATE_PROFILE)
    old_multi, old_extensions, new_name = user.multi_valued, user.extensions, values.get("user_name", user.user_name)
    if values.get("extensions") and values["extensions"] != old_extensions:
        values["extensions"] = await extensions.check_declared(session, caller.account_id, values["extensions"])
    renamed = new_name.lower() != user.user_name_ci
    needs_transaction(session, renamed)  # a new name may meet the unique constraint: a savepoint, below
    if renamed and await _user_name_taken(session, caller.account_id, new_name, user.id):
        raise _name_taken(new_name)
    # Only a new userName can meet the unique constraint; only then is the change made in a savepoint
    # (a parallel request may take the name between the check and the write).
    unique = unique_changes(session, lambda: _name_taken(new_name)) if renamed else contextlib.nullcontext()
    adopted = await _adoptable(session, caller, user)
    async with unique:
        before = dict(vars(user))
        changed = _assign(user, values)
        if adopted:
            user.provisioned_by = ProvisionedBy.SCIM.value
        if changed or adopted:
            user.version += 1
            user.updated_at = utcnow()
        detail = {"changed": changed, "values": audit.values_changed(before, vars(user), changed)}
        events = [audit.row(caller, action="user.update", resource_type="User", resource_id=user.id, detail=detail)]
        if adopted:
            events.append(
                audit.row(
                    caller,
                    action="user.adopted",
                    resource_type="User",
                    resource_id=user.id,
                    detail={"provisionedBy": {"before": ProvisionedBy.MANAGER.value, "after": ProvisionedBy.SCIM.value}},
                )
            )
        if ignored:
            events.append(
                audit.row(
                    caller,
                    action="user.update",
                    resource_type="User",
                    resource_id=user.id,
                    outcome=Outcome.IGNORED,
                    detail={"attributes": ignored, "reason": f"{flags.UPDATE_EMAILS_VIA_SCIM.name} is off"},
                )
            )
        reindex = bool(changed) and (user.multi_valued != old_multi or user.extensions != old_extensions)
        discovered = extensions.added(old_extensions, user.extensions) if caller.is_identity_provider else {}
        needs_transaction(session, reindex or bool(discovered))  # more tables to write than one statement's
        # A change by an integration's token is that integration assigning the user (again).
        await write_changes(session, _UPDATE, user, before, with_rows=[(audit.TABLE, events), *integrations.assignment(caller, user.id)])
    if reindex:
        await _reindex(session, user)
    await extensions.discover(session, caller, "User", discovered)
    return UpdateResult(user, changed, ignored, adopted)


def _reports(account_id: int, user_id: str) -> ColumnElement[bool]:
    return and_(col(User.account_id) == account_id, col(User.manager_id) == user_id)


async def get_user_for_delete(session: AsyncSession, caller: Caller, user_id: str) -> UserRecord:
    """The user to delete, locked together with the users whose manager they are (`delete_user`
    clears that), all in id order and before anything else. Two users who manage each other and are
    deleted at the same moment then queue on the same first row, instead of each holding one and
    waiting for the other."""
    caller.require(Permission.USERS_WRITE)
    if has_nul(user_id):
        raise NotFound("User", user_id)
    await lock_ids(
        session, col(User.id), (col(User.account_id) == caller.account_id) & ((col(User.id) == user_id) | (col(User.manager_id) == user_id))
    )
    return await get_user(session, caller, user_id)


async def delete_user(session: AsyncSession, caller: Caller, user: UserRecord) -> None:
    """Delete a user and all of their memberships; their groups' versions move on, and users they
    managed lose that manager.

    Over SCIM, while the account keeps deprovisioned users (`deprovision_retention_days` > 0), the
    user becomes a tombstone instead of going: gone from SCIM (404) and from every list, memberships
    ended, but the row kept with `deprovisioned_at` and the native groups they were in, so that the
    identity provider provisioning them again within the retention brings back the same id and
    those memberships (`_restore`). `python -m app purge` deletes tombstones past the retention.

    Locks follow the services' order (see app.services.common): the users first, in id order, then
    the groups, in id order, and the row itself is written last."""
    caller.require(Permission.USERS_WRITE)
    await guard(session, caller, [user.id], GuardedOperation.DELETE)
    if caller.is_identity_provider and caller.integration_id is not None:
        still = await integrations.end_assignment(session, caller, user.id)
        if still:  # another app of the identity provider still assigns the user: they stay
            ended = {"appIntegrationId": caller.integration_id, "stillAssignedBy": still}
            await audit.record(session, caller, action="user.unassigned", resource_type="User", resource_id=user.id, detail=ended)
            return
    now = utcnow()
    if await lock_ids(session, col(User.id), _reports(caller.account_id, user.id)):
        await session.execute(
            update(User).where(_reports(caller.account_id, user.id)).values(manager_id=None, version=col(User.version) + 1, updated_at=now)
        )
    touched = await _touch_groups_of(session, caller.account_id, user.id, now)
    retention = await retention_days(session, caller.account_id) if caller.is_identity_provider else 0
    detail: dict[str, Any] = {"userName": user.user_name}
    if retention <= 0:
        await _DELETE.execute(await session.connection(), one_row_params(user))  # memberships and index rows go with it
        await audit.record(session, caller, action="user.delete", resource_type="User", resource_id=user.id, detail=detail)
        return
    # The user is held FOR NO KEY UPDATE so far, which lets a membership being added to them (it
    # locks them FOR KEY SHARE) go ahead: taken any earlier, a stronger lock would deadlock with a
    # request holding the group and waiting for the user. Now FOR UPDATE: an add in progress
    # finishes first (and its membership is ended below, its group touched), a later one waits and
    # then finds a tombstone, which it skips.
    await lock_ids(session, col(User.id), (col(User.account_id) == caller.account_id) & (col(User.id) == user.id), exclusive=True)
    await _touch_groups_of(session, caller.account_id, user.id, now, besides=touched)
    connection = await session.connection()
    params = {"account_id": caller.account_id, "user_id": user.id}
    native = [[row.group_id, row.added_via] for row in await _NATIVE_MEMBERSHIPS.all(connection, params)]
    await _END_MEMBERSHIPS.execute(connection, params)
    await integrations.end_all_assignments(session, caller.account_id, user.id)
    before = dict(vars(user))
    user.deprovisioned_at, user.deprovisioned_groups = now, native
    user.version += 1
    user.updated_at = now
    detail |= {"deprovisioned": True, "retentionDays": retention, "nativeGroups": len(native)}
    event = audit.row(caller, action="user.delete", resource_type="User", resource_id=user.id, detail=detail)
    await write_changes(session, _UPDATE, user, before, with_rows=[(audit.TABLE, [event])])


async def _touch_groups_of(session: AsyncSession, account_id: int, user_id: str, now: Any, *, besides: Sequence[str] = ()) -> list[str]:
    """Lock the groups the user is a member of, in id order, and move their versions on (their
    members are about to change); those in `besides` are done already. Their ids.

    A second pass (`besides` given) finds groups the user joined meanwhile, whose ids may sort
    before those held: they are locked without waiting (see `common.lock_ids`), and when one is
    held elsewhere the deletion runs again from the start, which locks it in order."""
    of_account = col(UserGroup.account_id) == account_id
    member_of = col(UserGroup.id).in_(
        select(col(GroupMembership.group_id)).where(col(GroupMembership.account_id) == account_id, col(GroupMembership.user_id) == user_id)
    )
    found = await lock_ids(session, col(UserGroup.id), of_account & member_of, exclusive=True, without_waiting=bool(besides))
    locked = [group_id for group_id in found if group_id not in besides]
    for part in chunks(locked):
        await session.execute(
            update(UserGroup).where(of_account, col(UserGroup.id).in_(part)).values(version=col(UserGroup.version) + 1, updated_at=now)
        )
    return [*besides, *locked]


_GROUPS = UserGroup.__table__  # type: ignore[attr-defined]
_MEMBERSHIPS = GroupMembership.__table__  # type: ignore[attr-defined]
_MEMBERSHIPS_OF_USER = and_(_MEMBERSHIPS.c.account_id == bindparam("account_id"), _MEMBERSHIPS.c.user_id == bindparam("user_id"))
_NATIVE_MEMBERSHIPS = Prepared(
    select(_MEMBERSHIPS.c.group_id, _MEMBERSHIPS.c.added_via)
    .select_from(_MEMBERSHIPS.join(_GROUPS, MEMBERSHIP_GROUP))
    .where(_MEMBERSHIPS_OF_USER, _GROUPS.c.managed_by == ManagedBy.MANAGER.value)
    .order_by(_MEMBERSHIPS.c.created_at, _MEMBERSHIPS.c.group_id)
)
_END_MEMBERSHIPS = Prepared(delete(_MEMBERSHIPS).where(_MEMBERSHIPS_OF_USER))
# One remembered membership back, if its group still exists and is still native.
_RESTORE_MEMBERSHIP = Prepared(
    insert(_MEMBERSHIPS)
    .from_select(
        ["account_id", "group_id", "user_id", "added_via", "created_at"],
        select(
            _GROUPS.c.account_id,
            _GROUPS.c.id,
            bindparam("user_id", type_=_MEMBERSHIPS.c.user_id.type),
            bindparam("added_via", type_=_MEMBERSHIPS.c.added_via.type),
            bindparam("created_at", type_=_MEMBERSHIPS.c.created_at.type),
        ).where(
            _GROUPS.c.account_id == bindparam("account_id"),
            _GROUPS.c.id == bindparam("group_id"),
            _GROUPS.c.managed_by == ManagedBy.MANAGER.value,
        ),
    )
    .returning(_MEMBERSHIPS.c.group_id)
)
_RETENTION = Prepared(select(col(Account.deprovision_retention_days)).where(col(Account.id) == bindparam("account_id")))


async def retention_days(reader: Reader, account_id: int) -> int:
    """How many days the account keeps a user the identity provider deleted (0: none)."""
    return int(await _RETENTION.scalar(await connection_of(reader), {"account_id": account_id}) or 0)


async def purge_user(session: AsyncSession, caller: Caller, user_id: str) -> None:
    """Delete a tombstone now, before the account's retention ends (the admin UI's purge); the
    identity provider provisioning the user again then creates a new one. Admins only."""
    caller.require(Permission.ADMIN)
    user = await get_user(session, caller, user_id, for_update=True, deprovisioned=True)
    if user.deprovisioned_at is None:
        raise InvalidInput(f"user {user_id} is not deprovisioned: only a user the identity provider deleted can be purged", field="id")
    await _DELETE.execute(await session.connection(), one_row_params(user))
    await audit.record(session, caller, action="user.purge", resource_type="User", resource_id=user.id, detail={"userName": user.user_name})


async def purge_expired(session: AsyncSession, caller: Caller, now: datetime) -> int:
    """Delete the tombstones of the caller's account whose retention has ended (`python -m app
    purge`, a system caller); how many, recorded in one audit event."""
    caller.require(Permission.ADMIN)
    retention = await retention_days(session, caller.account_id)
    expired = and_(
        col(User.account_id) == caller.account_id,
        col(User.deprovisioned_at).is_not(None),
        col(User.deprovisioned_at) < now - timedelta(days=retention),
    )
    purged = list(await session.scalars(delete(User).where(expired).returning(col(User.id))))
    if purged:
        await audit.record(
            session,
            caller,
            action="user.purge",
            resource_type="User",
            resource_id=None,
            detail={"users": audit.id_list(purged), "retentionDays": retention},
        )
    return len(purged)


async def _restore(session: AsyncSession, caller: Caller, user: UserRecord, given: UserValues) -> UserRecord:
    """Bring a tombstone back as the identity provider provisions it again: the same id, the native
    groups they were in (those that still exist) and the attributes of this request, as a PUT sets
    them. Audited as `user.restored`."""
    now = utcnow()
    connection = await session.connection()
    back: list[str] = []
    for group_id, added_via in user.deprovisioned_groups or []:
        params = {"account_id": user.account_id, "group_id": group_id, "user_id": user.id, "added_via": added_via, "created_at": now}
        back += [row.group_id for row in await _RESTORE_MEMBERSHIP.all(connection, params)]
    if back:
        of_account = col(UserGroup.account_id) == user.account_id
        await session.execute(
            update(UserGroup).where(of_account, col(UserGroup.id).in_(back)).values(version=col(UserGroup.version) + 1, updated_at=now)
        )
    before = dict(vars(user))
    user.deprovisioned_at = user.deprovisioned_groups = None
    user.version += 1
    user.updated_at = now
    event = audit.row(caller, action="user.restored", resource_type="User", resource_id=user.id, detail={"nativeGroups": sorted(back)})
    await write_changes(session, _UPDATE, user, before, with_rows=[(audit.TABLE, [event])])
    await update_user(session, caller, user, given)
    return user


# The live users of the caller's account ({"account_id": caller.account_id}): every list's base.
OF_ACCOUNT = and_(USERS.c.account_id == bindparam("account_id"), LIVE)
LIST_ORDER = (col(User.created_at), col(User.id))  # a list's order, and the tie-break of any other


# How many users the account has ({"account_id": …}), as the triggers of migration 0006 keep it.
COUNTED = Prepared(
    select(func.coalesce(func.sum(col(UserCount.users)), 0).label("users")).where(col(UserCount.account_id) == bindparam("account_id"))
)


async def list_users(reader: Reader, caller: Caller, query: PageQuery, *, columns: Columns = None) -> tuple[int, list[Any]]:
    """A page of the caller's users matching the query, as plain rows, and how many match; of
    their values, only `columns` (see `common.read_columns`)."""
    return await page(reader, User, OF_ACCOUNT, _listed(caller, query), counted=COUNTED, columns=columns)


async def page_of_users(reader: Reader, caller: Caller, query: PageQuery, *, columns: Columns = None) -> list[Any]:
    """The page of `list_users` alone, of its values only `columns` (see `common.read_columns`);
    `count_users` counts the matches when they are asked for."""
    return await rows_of_page(reader, User, OF_ACCOUNT, _listed(caller, query), columns)


async def count_users(reader: Reader, caller: Caller, query: PageQuery, found: int) -> int:
    """How many users match the query whose page (`page_of_users`) held `found` rows."""
    return await count_of_page(reader, User, OF_ACCOUNT, _listed(caller, query), found, counted=COUNTED)


def _listed(caller: Caller, query: PageQuery) -> PageQuery:
    caller.require(Permission.USERS_READ)
    # A SCIM filter on `groups` names the groups the caller sees, which take its integration.
    return query.within("account", account_id=caller.account_id, **viewer_params(caller))


_DISPLAY_NAMES = select(USERS.c.id, USERS.c.display_name, USERS.c.user_name).where(
    USERS.c.account_id == bindparam("account_id"), USERS.c.id.in_(bindparam("ids", expanding=True))
)


async def display_names(reader: Reader, account_id: int, user_ids: Sequence[str]) -> dict[str, str]:
    """Display names (or userNames) of users, e.g. managers referenced from a page of users."""
    connection = await connection_of(reader)
    out: dict[str, str] = {}
    for part in chunks(sorted(set(user_ids))):
        rows = await connection.execute(_DISPLAY_NAMES, {"account_id": account_id, "ids": list(part)})
        out.update({str(uid): str(display or name) for uid, display, name in rows})
    return out


def admin_filter(*, search: str | None = None, active: bool | None = None, provisioned_by: str | None = None) -> Filter:
    """The admin UI's user list filter: a case-insensitive substring over userName, email and
    display name, plus exact state filters."""
    if has_nul(search):
        return Filter(false(), {}, "nothing")
    conditions: list[ColumnElement[bool]] = []
    params: dict[str, Any] = {}
    if search:
        # Both sides of each match go through one fold (app.db.casefold): the lower-cased copies
        # against the lower-cased search, the display name against the search as typed.
        escaped = like_escaped(search)
        params |= {"search_lowered": f"%{escaped.lower()}%", "search_as_typed": f"%{escaped}%"}
        lowered, as_typed = fold(bindparam("search_lowered", type_=String)), fold(bindparam("search_as_typed", type_=String))
        conditions.append(
            fold(col(User.user_name_ci)).like(lowered, escape=LIKE_ESCAPE)
            | fold(col(User.email_ci)).like(lowered, escape=LIKE_ESCAPE)
            | fold(col(User.display_name)).like(as_typed, escape=LIKE_ESCAPE)
        )
    if active is not None:
        # An unassigned `active` (NULL) is not a deactivation.
        conditions.append(col(User.active).is_not(False) if active else col(User.active).is_(False))
    if provisioned_by is not None:
        params["provisioned_by"] = provisioned_by
        conditions.append(col(User.provisioned_by) == bindparam("provisioned_by"))
    # No condition: every user, whose count is kept.
    where = and_(*conditions) if conditions else true()
    return Filter(where, params, ("admin users", bool(search), active, provisioned_by is not None))


async def get_user_by_email(session: AsyncSession, caller: Caller, email: str) -> User | None:
    caller.require(Permission.USERS_READ)
    if has_nul(email):
        return None
    lowered = email.strip().lower()
    for column in (col(User.email_ci), col(User.user_name_ci)):
        user = await session.scalar(
            select(User)
            .where(col(User.account_id) == caller.account_id, column == lowered, col(User.deprovisioned_at).is_(None))
            .order_by(col(User.created_at))
            .limit(1)
        )
        if user is not None:
            return user
    return None


def _valid_email(email: Any) -> str:
    if not isinstance(email, str):
        raise InvalidInput("the email is required", field="email")
    email = email.strip()
    if has_nul(email):
        raise InvalidInput("the email must not contain the NUL character", field="email")
    if not EMAIL_RE.match(email) or len(email) > MAX_INDEXED:  # it is also the userName
        raise InvalidInput(f"{email!r} is not an email address", field="email")
    return email


def _valid_name(name: Any) -> str:
    if not isinstance(name, str):
        raise InvalidInput("the name must not be empty", field="name")
    if has_nul(name):
        raise InvalidInput("the name must not contain the NUL character", field="name")
    if not name.strip():
        raise InvalidInput("the name must not be empty", field="name")
    return name.strip()


def profile_values(*, email: str, name: str) -> UserValues:
    """Values of a user created in the admin UI: the email is also the userName."""
    email, name = _valid_email(email), _valid_name(name)
    return UserValues(
        user_name=email,
        display_name=name,
        name_formatted=name,
        multi_valued={"emails": [{"value": email, "type": "work", "primary": True}]},
    )


async def update_profile(session: AsyncSession, caller: Caller, user: UserRecord, *, name: Any = UNSET, email: Any = UNSET) -> UpdateResult:
    """The admin UI's edit of name and email (UNSET: unchanged; neither may be cleared); `guard`
    decides whether the user may be edited."""
    values: dict[str, Any] = {}
    if name is not UNSET:
        name = _valid_name(name)
        values.update(display_name=name, name_formatted=name)
    if email is not UNSET:
        email = _valid_email(email)
        emails = [dict(e) for e in (user.multi_valued or {}).get("emails", [])]
        primary = next((e for e in emails if e.get("value") == user.email), None)
        if primary is None:
            emails.insert(0, {"value": email, "type": "work", "primary": True})
        else:
            primary["value"] = email
        values["multi_valued"] = {**(user.multi_valued or {}), "emails": emails}
        if user.email_ci is None or user.user_name_ci == user.email_ci:
            values["user_name"] = email
    return await update_user(session, caller, user, UserValues(**values))
