"""User groups and their memberships.

The Limitations of Harness's page "Provision Users and Groups using Azure AD (SCIM)" for groups
live in `guard`: a group the identity provider manages cannot be renamed, deleted, or have members
added or removed except over SCIM; its description may change.
Which groups a channel sees at all is `visible_to`: SCIM works only on the identity provider's own
groups. Memberships are rows of a join table and change by set operations in SQL, so adding 50
members costs the same whatever the group's size.
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, and_, bindparam, delete, false, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.db.models import Channel, GroupMembership, ManagedBy, User, UserGroup
from app.db.statements import Prepared
from app.db.types import utcnow
from app.errors import Conflict, GuardedOperation, InvalidInput, ManagedByIdentityProvider, NotFound
from app.services import accounts, audit, users
from app.services.caller import Caller, Permission
from app.services.common import (
    LIMIT,
    OFFSET,
    UNSET,
    PageQuery,
    Reader,
    chunks,
    connection_of,
    fetch,
    insert_new_rows,
    insert_unique,
    json_rows,
    kept,
    lock_ids,
    membership_windows,
    owned_params,
    owned_row,
    page,
    row_updater,
    total_of_page,
    unique_changes,
    write_changes,
)
from app.services.identifiers import IDENTIFIER_RE, derive_identifier, with_suffix
from app.validation import LIKE_ESCAPE, MAX_INDEXED, has_nul, is_blank, like_escaped

IDENTIFIER_ATTEMPTS = 20
MEMBERSHIPS = GroupMembership.__table__  # type: ignore[attr-defined]
GROUPS = UserGroup.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class MemberChange:
    """One step of a membership change, applied in order within one transaction."""

    kind: Literal["add", "remove", "replace", "clear"]
    ids: tuple[str, ...] = ()


@dataclass
class MembershipResult:
    added: set[str] = field(default_factory=set)
    removed: set[str] = field(default_factory=set)
    skipped: set[str] = field(default_factory=set)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)


IDP_GROUP_MESSAGES = {
    GuardedOperation.RENAME: "The name cannot be changed for group {id}: it is managed by your identity provider. Rename it there.",
    GuardedOperation.DELETE: (
        "Group {id} is managed by your identity provider and cannot be deleted here. Remove it from the identity provider's app assignment."
    ),
    GuardedOperation.CHANGE_MEMBERS: (
        "Members of group {id} are managed by your identity provider. Assign or unassign users in the identity provider."
    ),
}


IDP_MEMBER_MESSAGE = (
    "Group {group} cannot be deleted here: its member User {user} is managed by your identity provider, and deleting the "
    "group would remove them from it. Unassign the user in the identity provider (Azure AD / Okta) first."
)


def _scope(org: str | None, project: str | None) -> str:
    if project and not org:
        raise InvalidInput("a project scope needs its organization", field="orgIdentifier")
    return "" if not org else (org if not project else f"{org}/{project}")


def _validate_name(display_name: Any) -> str:
    if not isinstance(display_name, str) or is_blank(display_name):
        raise InvalidInput("the group name is required", field="displayName")
    if has_nul(display_name):
        raise InvalidInput("the group name must not contain the NUL character", field="displayName")
    if len(display_name) > MAX_INDEXED:
        raise InvalidInput(f"the group name is longer than {MAX_INDEXED} characters", field="displayName")
    return display_name


# Constants, so that statements built with them can be built once (see common.fetch_owned).
_IDENTITY_PROVIDER_GROUPS: ColumnElement[bool] = col(UserGroup.managed_by) == ManagedBy.IDENTITY_PROVIDER.value
_EVERY_GROUP: ColumnElement[bool] = true()


def visible_to(channel: Channel) -> ColumnElement[bool]:
    """The groups a channel sees and changes. Over SCIM only the identity provider's own groups:
    native groups belong to the admin, and a native group that took an identity-provider group's
    name must not be what Entra's `displayName eq` lookup finds and then modifies. A native group's
    id is not found over SCIM, and a User's `groups` attribute lists only groups SCIM can open.
    Every other channel sees every group of the account."""
    return _IDENTITY_PROVIDER_GROUPS if channel == Channel.SCIM else _EVERY_GROUP


def guard(caller: Caller, group: Any, operation: GuardedOperation) -> None:
    """Refuse, outside SCIM, the changes of an identity-provider group that the identity provider
    owns: RENAME, DELETE, CHANGE_MEMBERS."""
    if caller.is_identity_provider or group.managed_by != ManagedBy.IDENTITY_PROVIDER.value:
        return
    raise ManagedByIdentityProvider(
        IDP_GROUP_MESSAGES[operation].format(id=group.identifier), resource_type="UserGroup", resource_id=group.id, operation=operation
    )


async def _idp_name_taken(session: AsyncSession, account_id: int, display_name: str, except_id: str | None) -> bool:
    query = select(col(UserGroup.id)).where(
        col(UserGroup.account_id) == account_id,
        col(UserGroup.display_name_ci) == display_name.lower(),
        col(UserGroup.managed_by) == ManagedBy.IDENTITY_PROVIDER.value,
    )
    if except_id is not None:
        query = query.where(col(UserGroup.id) != except_id)
    return (await session.scalar(query.limit(1))) is not None


async def _free_identifier(session: AsyncSession, account_id: int, scope: str, base: str) -> str:
    """`base`, or `base_2`, `base_3`, … — the first one not taken in the scope."""
    like = like_escaped(base) + LIKE_ESCAPE + "_%"
    taken = set(
        await session.scalars(
            select(col(UserGroup.identifier)).where(
                col(UserGroup.account_id) == account_id,
                col(UserGroup.scope) == scope,
                (col(UserGroup.identifier) == base) | col(UserGroup.identifier).like(like, escape=LIKE_ESCAPE),
            )
        )
    )
    if base not in taken:
        return base
    n = 2
    while with_suffix(base, n) in taken:
        n += 1
    return with_suffix(base, n)


@dataclass(frozen=True, slots=True)
class GroupValues:
    """What a caller may set on a group's own attributes (its scope, identifier and members are set
    apart). A field left UNSET keeps the stored value, or on create the column's default."""

    display_name: Any = UNSET
    external_id: Any = UNSET
    description: Any = UNSET

    def given(self) -> dict[str, Any]:
        """The fields set, by column."""
        return {f.name: value for f in dataclasses.fields(self) if (value := getattr(self, f.name)) is not UNSET}


async def create_group(
    session: AsyncSession,
    caller: Caller,
    values: GroupValues,
    *,
    org_identifier: str | None = None,
    project_identifier: str | None = None,
    identifier: str | None = None,
    member_ids: Sequence[str] = (),
) -> tuple[UserGroup, MembershipResult]:
    """Create a group. Over SCIM it is managed by the identity provider, at account scope, its
    display name unique among such groups, and its identifier derived from the name — with a suffix
    when a native group already holds it (Harness's page keeps both). Elsewhere it is a native group."""
    caller.require(Permission.GROUPS_WRITE)
    display_name = _validate_name(values.display_name)
    external_id = None if values.external_id is UNSET else values.external_id
    description = None if values.description is UNSET else values.description
    if has_nul(description, external_id, org_identifier, project_identifier):
        raise InvalidInput("values must not contain the NUL character", field="description")
    if identifier is not None and not IDENTIFIER_RE.match(identifier):
        raise InvalidInput(
            "identifier must start with a letter or '_' and use letters, digits, '_' or '$' (at most 128)", field="identifier"
        )
    if org_identifier:
        await accounts.get_organization(session, caller.account_id, org_identifier)
    if project_identifier:
        await accounts.get_project(session, caller.account_id, str(org_identifier), project_identifier)
    await _refuse_taken_idp_name(session, caller, display_name)
    now = utcnow()
    group = UserGroup(
        id=str(uuid.uuid4()),
        account_id=caller.account_id,
        org_identifier=org_identifier,
        project_identifier=project_identifier,
        scope=_scope(org_identifier, project_identifier),
        identifier=identifier or derive_identifier(display_name),  # or, when taken, a free one (below)
        display_name=display_name,
        display_name_ci=display_name.lower(),
        description=description,
        external_id=external_id,
        managed_by=(ManagedBy.IDENTITY_PROVIDER if caller.is_identity_provider else ManagedBy.MANAGER).value,
        created_at=now,
        updated_at=now,
        version=1,
    )
    await _insert_with_identifier(session, caller, group, chosen=identifier is not None)
    result = MembershipResult()
    if member_ids:
        await users.guard(session, caller, member_ids, GuardedOperation.CHANGE_GROUPS)
        result = await _add(session, caller, group, member_ids)
        _refuse_unknown(caller, result)
    await audit.record(
        session,
        caller,
        action="group.create",
        resource_type="UserGroup",
        resource_id=group.id,
        detail={"identifier": group.identifier, "managedBy": group.managed_by, **_member_detail(result)},
    )
    return group, result


async def _refuse_taken_idp_name(session: AsyncSession, caller: Caller, display_name: str) -> None:
    """Over SCIM, the name of a new group must not be another identity-provider group's (any case)."""
    if caller.is_identity_provider and await _idp_name_taken(session, caller.account_id, display_name, None):
        raise Conflict(f"a group named '{display_name}' already exists", field="displayName")


async def _insert_with_identifier(session: AsyncSession, caller: Caller, group: UserGroup, *, chosen: bool) -> None:
    """Store the new group with its identifier when the caller `chosen` it (Conflict when its scope
    has it already), else with the first free of that identifier (derived from the name), `_2`, `_3`…

    Parallel creates may pick the same free identifier; the unique constraint picks a winner and the
    others look again (they now see the winner: each statement reads what has been committed), so
    the suffixes are handed out one each."""
    base = group.identifier
    for _ in range(IDENTIFIER_ATTEMPTS):
        group.identifier = base if chosen else await _free_identifier(session, caller.account_id, group.scope, base)
        if await insert_unique(session, group):
            return
        await _refuse_taken_idp_name(session, caller, group.display_name)  # the winner may have taken the name
        if chosen:
            raise Conflict(f"the identifier '{base}' is already taken in this scope", field="identifier")
    # Only IDENTIFIER_ATTEMPTS creators of one name at the same moment would get here.
    raise Conflict("could not allocate a group identifier; retry", field="identifier")  # pragma: no cover


class GroupRecord(SimpleNamespace):
    """A group as the services read and change it: one attribute per column of `user_groups`, read
    with one prepared statement (locked, when it is to change) and written back with one UPDATE of
    the columns that changed (`common.write_changes`). Not an ORM entity."""


def _group_query(visible: ColumnElement[bool], for_update: bool) -> Prepared:
    query = select(GROUPS).where(GROUPS.c.id == bindparam("id"), GROUPS.c.account_id == bindparam("account_id"), visible)
    return Prepared(query.with_for_update(key_share=True) if for_update else query)


# (seen over SCIM, locked) -> the lookup by id.
_GROUP = {
    (scim, lock): _group_query(_IDENTITY_PROVIDER_GROUPS if scim else _EVERY_GROUP, lock)
    for scim in (True, False)
    for lock in (True, False)
}
_UPDATE = row_updater(GROUPS)
_DELETE = Prepared(delete(GROUPS).where(GROUPS.c.id == bindparam("b_id")))


async def get_group(session: AsyncSession, caller: Caller, group_id: str, *, for_update: bool = False) -> GroupRecord:
    """A group the caller sees, locked against other changes until the transaction ends when
    `for_update`, or NotFound."""
    caller.require(Permission.GROUPS_WRITE if for_update else Permission.GROUPS_READ)
    lookup = _GROUP[(caller.is_identity_provider, for_update)]
    return GroupRecord(**(await owned_row(session, lookup, "UserGroup", group_id, caller.account_id))._mapping)


async def read_group(reader: Reader, caller: Caller, group_id: str) -> Any:
    """`get_group` for a request that only reads: the plain row, on a session or a bare connection."""
    caller.require(Permission.GROUPS_READ)
    return await owned_row(reader, _GROUP[(caller.is_identity_provider, False)], "UserGroup", group_id, caller.account_id)


async def get_group_by_identifier(
    session: AsyncSession, caller: Caller, identifier: str, org: str | None, project: str | None
) -> UserGroup:
    """The group with this identifier in a scope (the account, an organization, or a project of
    one), or NotFound — also for a project named without its organization, which no group is in."""
    caller.require(Permission.GROUPS_READ)
    if has_nul(identifier, org, project) or (project is not None and org is None):
        raise NotFound("UserGroup", identifier)
    group = await session.scalar(
        select(UserGroup).where(
            col(UserGroup.account_id) == caller.account_id,
            col(UserGroup.scope) == _scope(org, project),
            col(UserGroup.identifier) == identifier,
            visible_to(caller.channel),
        )
    )
    if group is None:
        raise NotFound("UserGroup", identifier)
    return group


def _touch(group: GroupRecord) -> None:
    group.version += 1
    group.updated_at = utcnow()


def _assign(group: GroupRecord, values: dict[str, Any]) -> list[str]:
    """Set the given attributes that differ (and the name's lower-cased copy); return the names of
    those that changed."""
    changed = [column for column, value in values.items() if getattr(group, column) != value]
    for column in changed:
        setattr(group, column, values[column])
    if "display_name" in changed:
        group.display_name_ci = group.display_name.lower()
    if changed:
        _touch(group)
    return changed


async def update_group(session: AsyncSession, caller: Caller, group: GroupRecord, values: GroupValues) -> list[str]:
    """Change name, externalId or description; renames keep the identifier. Returns what changed."""
    caller.require(Permission.GROUPS_WRITE)
    display_name, description = values.display_name, values.description
    renamed = display_name is not UNSET and display_name != group.display_name
    if renamed:
        _validate_name(display_name)
        guard(caller, group, GuardedOperation.RENAME)
        if group.managed_by == ManagedBy.IDENTITY_PROVIDER.value and await _idp_name_taken(
            session, caller.account_id, display_name, group.id
        ):
            raise Conflict(f"a group named '{display_name}' already exists", field="displayName")
    if description is not UNSET and has_nul(description):
        raise InvalidInput("the description must not contain the NUL character", field="description")
    new_name = display_name if renamed else group.display_name
    # Only a new name can meet a unique constraint; only then is the change made in a savepoint.
    conflict = unique_changes(session, lambda: Conflict(f"a group named '{new_name}' already exists", field="displayName"))
    async with conflict if renamed else contextlib.nullcontext():
        before = dict(vars(group))
        changed = _assign(group, values.given())
        await write_changes(session, _UPDATE, group, before)
    await audit.record(session, caller, action="group.update", resource_type="UserGroup", resource_id=group.id, detail={"changed": changed})
    return changed


async def _lock_existing_users(session: AsyncSession, account_id: int, ids: Sequence[str]) -> set[str]:
    """The ids of users that exist, each locked against deletion until this transaction ends, in
    id order. A user deleted by a concurrent request is waited for and then left out, like an
    unknown id, so the membership insert that follows never meets a foreign-key error."""
    found: set[str] = set()
    for part in chunks(sorted(set(ids))):
        found.update(await lock_ids(session, col(User.id), (col(User.account_id) == account_id) & col(User.id).in_(part), shared=True))
    return found


async def _current_members(session: AsyncSession, group_id: str, ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for part in chunks(sorted(set(ids))):
        found.update(
            await session.scalars(
                select(col(GroupMembership.user_id)).where(
                    col(GroupMembership.group_id) == group_id, col(GroupMembership.user_id).in_(part)
                )
            )
        )
    return found


async def _add(session: AsyncSession, caller: Caller, group: Any, ids: Sequence[str]) -> MembershipResult:
    valid = await _lock_existing_users(session, caller.account_id, ids)
    now = utcnow()
    rows = [{"group_id": group.id, "user_id": uid, "added_via": caller.channel.value, "created_at": now} for uid in sorted(valid)]
    # Current members are skipped by the insert itself; what it returns is what was added.
    added = await insert_new_rows(session, MEMBERSHIPS, rows, key=("group_id", "user_id"), returning="user_id")
    return MembershipResult(added=set(added), skipped=set(ids) - valid)


async def _remove(session: AsyncSession, group: Any, ids: Sequence[str]) -> set[str]:
    present = await _current_members(session, group.id, ids)
    for part in chunks(sorted(present)):
        await session.execute(
            delete(GroupMembership).where(col(GroupMembership.group_id) == group.id, col(GroupMembership.user_id).in_(part))
        )
    return present


async def _all_members(session: AsyncSession, group_id: str) -> set[str]:
    return set(await session.scalars(select(col(GroupMembership.user_id)).where(col(GroupMembership.group_id) == group_id)))


async def change_members(session: AsyncSession, caller: Caller, group: Any, changes: Sequence[MemberChange]) -> MembershipResult:
    """Apply membership changes in order. Unknown or other-account user ids are skipped and
    recorded in the audit log; they are not an error (Entra may reference users not yet synced)."""
    caller.require(Permission.GROUPS_WRITE)
    if not changes:
        return MembershipResult()
    guard(caller, group, GuardedOperation.CHANGE_MEMBERS)
    total = MembershipResult()
    for change in changes:
        if change.kind == "add":
            await users.guard(session, caller, change.ids, GuardedOperation.CHANGE_GROUPS)
            step = await _add(session, caller, group, change.ids)
            total.added |= step.added
            total.removed -= step.added
            total.skipped |= step.skipped
        elif change.kind == "remove":
            await users.guard(session, caller, change.ids, GuardedOperation.CHANGE_GROUPS)
            removed = await _remove(session, group, change.ids)
            total.removed |= removed - total.added
            total.added -= removed
        else:  # replace / clear: the set difference, in SQL-sized chunks
            wanted = set(change.ids) if change.kind == "replace" else set()
            current = await _all_members(session, group.id)
            await users.guard(session, caller, sorted(current ^ wanted), GuardedOperation.CHANGE_GROUPS)
            removed = await _remove(session, group, sorted(current - wanted))
            step = await _add(session, caller, group, sorted(wanted - current))
            total.removed |= removed
            total.added |= step.added
            total.skipped |= step.skipped
    _refuse_unknown(caller, total)
    if total.changed:
        before = dict(vars(group))
        _touch(group)
        await write_changes(session, _UPDATE, group, before)
    await audit.record(
        session, caller, action="group.members", resource_type="UserGroup", resource_id=group.id, detail=_member_detail(total)
    )
    return total


def _refuse_unknown(caller: Caller, result: MembershipResult) -> None:
    """Over SCIM unknown member ids are skipped (the identity provider may be ahead of us); an
    admin naming a user that does not exist made a mistake worth reporting."""
    if not caller.is_identity_provider and result.skipped:
        raise NotFound("User", sorted(result.skipped)[0])


def _member_detail(result: MembershipResult) -> dict[str, Any]:
    detail: dict[str, Any] = {}
    if result.added:
        detail["added"] = audit.id_list(result.added)
    if result.removed:
        detail["removed"] = audit.id_list(result.removed)
    if result.skipped:
        detail["skipped"] = audit.id_list(result.skipped)
    return detail


async def delete_group(session: AsyncSession, caller: Caller, group: GroupRecord) -> None:
    """Delete a group and its memberships. Removing the members is a change of each member's group
    assignments, so outside SCIM a group holding a locked user (see `users.OWNED`) is not deleted:
    otherwise deleting a native group, and creating it again without that user, would do what
    removing the user from it is refused to do. The audit event lists the members removed."""
    caller.require(Permission.GROUPS_WRITE)
    guard(caller, group, GuardedOperation.DELETE)
    members = await _all_members(session, group.id)
    locked = await users.locked_for(session, caller, sorted(members), GuardedOperation.CHANGE_GROUPS)
    if locked:
        raise users.refusal(locked[0], GuardedOperation.CHANGE_GROUPS, IDP_MEMBER_MESSAGE.format(group=group.identifier, user=locked[0]))
    await _DELETE.execute(await session.connection(), {"b_id": group.id})  # its memberships go with it
    await audit.record(
        session,
        caller,
        action="group.delete",
        resource_type="UserGroup",
        resource_id=group.id,
        detail={"identifier": group.identifier, "displayName": group.display_name, **_member_detail(MembershipResult(removed=members))},
    )


def _visible_in_account(visible: ColumnElement[bool]) -> ColumnElement[bool]:
    return and_(col(UserGroup.account_id) == bindparam("account_id"), visible)


# The groups of the caller's account ({"account_id": …}) that the caller sees (True: over SCIM).
_VISIBLE_IN_ACCOUNT = {True: _visible_in_account(_IDENTITY_PROVIDER_GROUPS), False: _visible_in_account(_EVERY_GROUP)}


async def list_groups(reader: Reader, caller: Caller, query: PageQuery) -> tuple[int, list[Any]]:
    """A page of the groups the caller sees that match the query, as plain rows, and how many match."""
    caller.require(Permission.GROUPS_READ)
    over_scim = caller.is_identity_provider
    scoped = query.within(("visible over SCIM", over_scim), account_id=caller.account_id)
    return await page(reader, UserGroup, _VISIBLE_IN_ACCOUNT[over_scim], scoped)


def _groups_of_users_query(visible: ColumnElement[bool], *, one: bool = False) -> Select[str, str, str]:
    """The groups of the users `ids` (of the user `id` when `one`: a statement that can be prepared)."""
    of = col(GroupMembership.user_id) == bindparam("id") if one else col(GroupMembership.user_id).in_(bindparam("ids", expanding=True))
    return (
        select(col(GroupMembership.user_id), col(UserGroup.id), col(UserGroup.display_name))
        .join(UserGroup, col(UserGroup.id) == col(GroupMembership.group_id))
        .where(of, visible)
        .order_by(col(UserGroup.display_name_ci), col(UserGroup.id))
    )


def _with_groups(users_query: Select[Any], visible: ColumnElement[bool]) -> Select[Any]:
    """`users_query` (over the users table) with one more column, `their_groups`: the groups of
    each user that `visible` lets the caller see, as a JSON array of [position, id, display name],
    the positions in `_groups_of_users_query`'s order. Still one row per user, however many groups
    they are in, and one statement instead of a second round trip for the groups."""
    users_table = User.__table__  # type: ignore[attr-defined]
    ranked = (
        select(
            func.row_number().over(order_by=(col(UserGroup.display_name_ci), col(UserGroup.id))).label("position"),
            col(UserGroup.id),
            col(UserGroup.display_name),
        )
        .select_from(MEMBERSHIPS.join(UserGroup.__table__, and_(col(UserGroup.id) == col(GroupMembership.group_id), visible)))  # type: ignore[attr-defined]
        .where(col(GroupMembership.user_id) == users_table.c.id)
        .correlate(users_table)
        .subquery("ranked")
    )
    their_groups = select(json_rows(ranked.c.position, ranked.c.id, ranked.c.display_name)).scalar_subquery()
    return users_query.add_columns(their_groups.label("their_groups"))


def _user_with_groups_query(visible: ColumnElement[bool], *, for_update: bool = False) -> Select[Any]:
    users_table = User.__table__  # type: ignore[attr-defined]
    by_id = select(users_table).where(users_table.c.id == bindparam("id"), users_table.c.account_id == bindparam("account_id"))
    if for_update:  # the user's row only (as `users.get_user` locks it), not the groups read beside it
        by_id = by_id.with_for_update(key_share=True, of=users_table)
    return _with_groups(by_id, visible)


UserWithGroups = tuple[Any, list[tuple[str, str]]]  # a user's plain row, and (id, display name) of their groups


def _users_and_groups(rows: Iterable[Any]) -> list[UserWithGroups]:
    """The rows of a `_with_groups` query as (user, [(group id, display name)]), groups in order."""
    return [(row, [(group_id, name) for _, group_id, name in sorted(row.their_groups or ())]) for row in rows]


# Built once; a SCIM GET of a user runs one of the latter (True: SCIM's view, identity-provider groups only).
_GROUPS_OF_USERS = {True: _groups_of_users_query(_IDENTITY_PROVIDER_GROUPS), False: _groups_of_users_query(_EVERY_GROUP)}
# One user's, as after a write of that user.
_GROUPS_OF_USER = {
    True: Prepared(_groups_of_users_query(_IDENTITY_PROVIDER_GROUPS, one=True)),
    False: Prepared(_groups_of_users_query(_EVERY_GROUP, one=True)),
}
# Keyed by (over SCIM, for update).
_USER_WITH_GROUPS = {
    (over_scim, for_update): Prepared(
        _user_with_groups_query(_IDENTITY_PROVIDER_GROUPS if over_scim else _EVERY_GROUP, for_update=for_update)
    )
    for over_scim in (True, False)
    for for_update in (True, False)
}


async def groups_of_users(reader: Reader, caller: Caller, user_ids: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
    """Group (id, display name) per user — the groups `caller` can see — for a page of users, in
    one query per chunk."""
    connection = await connection_of(reader)
    out: dict[str, list[tuple[str, str]]] = {uid: [] for uid in user_ids}
    over_scim = caller.is_identity_provider
    if len(out) == 1:
        [user_id] = out
        out[user_id] = [(group_id, name) for _, group_id, name in await _GROUPS_OF_USER[over_scim].all(connection, {"id": user_id})]
        return out
    query = _GROUPS_OF_USERS[over_scim]
    for part in chunks(list(user_ids)):
        rows = await connection.execute(query, {"ids": list(part)})
        for user_id, group_id, name in rows:
            out[user_id].append((group_id, name))
    return out


async def read_user_with_groups(reader: Reader, caller: Caller, user_id: str) -> UserWithGroups:
    """`users.read_user` and that user's `groups_of_users`, in one statement."""
    caller.require(Permission.USERS_READ)
    return await _user_with_groups(reader, caller, user_id, for_update=False)


async def get_user_with_groups(session: AsyncSession, caller: Caller, user_id: str) -> tuple[users.UserRecord, list[tuple[str, str]]]:
    """`users.get_user(…, for_update=True)` and that user's `groups_of_users`, in one statement: for
    a change of the user that answers with the user as changed (their groups stay as they are)."""
    caller.require(Permission.USERS_WRITE)
    row, groups_of_user = await _user_with_groups(session, caller, user_id, for_update=True)
    record = users.UserRecord(**row._mapping)
    del record.their_groups
    return record, groups_of_user


async def _user_with_groups(reader: Reader, caller: Caller, user_id: str, *, for_update: bool) -> UserWithGroups:
    params = owned_params("User", user_id, caller.account_id)
    connection = await connection_of(reader)
    found = _users_and_groups(await _USER_WITH_GROUPS[caller.is_identity_provider, for_update].all(connection, params))
    if not found:
        raise NotFound("User", user_id)
    return found[0]


def _page_with_groups_query(where: ColumnElement[bool], order_by: Sequence[Any], visible: ColumnElement[bool]) -> Select[Any]:
    users_table = User.__table__  # type: ignore[attr-defined]
    # The page is chosen first, so that the groups are read for its users only, whatever the order
    # (SQLite would otherwise read them for every match before sorting). Not correlated: the
    # subquery reads the users table on its own, whatever the outer query reads.
    # Joined by primary key rather than `id IN (…)`, which PostgreSQL plans as a scan of every user
    # of the table hashed against the page.
    page_ids = (
        select(users_table.c.id)
        .where(users.OF_ACCOUNT, where)
        .order_by(*order_by)
        .offset(OFFSET)
        .limit(LIMIT)
        .correlate(None)
        .subquery("page")
    )
    on_page = page_ids.join(users_table, users_table.c.id == page_ids.c.id)
    return _with_groups(select(users_table).select_from(on_page).order_by(*order_by), visible)


async def list_users_with_groups(reader: Reader, caller: Caller, query: PageQuery) -> tuple[int, list[UserWithGroups]]:
    """`users.list_users` with each user's `groups_of_users`, in one statement (plus a count when
    the page does not show the total; see `_with_groups`)."""
    caller.require(Permission.USERS_READ)
    over_scim = caller.is_identity_provider
    scoped = query.within(("visible over SCIM", over_scim), account_id=caller.account_id)
    connection = await connection_of(reader)
    found: list[UserWithGroups] = []
    if scoped.limit > 0:
        statement = kept(
            scoped.key and ("users with groups", scoped.key),
            lambda: _page_with_groups_query(scoped.where, scoped.order_by, visible_to(caller.channel)),
        )
        found = _users_and_groups(await fetch(connection, statement, scoped.page_params()))
    users_table = User.__table__  # type: ignore[attr-defined]
    total = await total_of_page(connection, users_table, (users.OF_ACCOUNT, scoped.where), scoped, len(found))
    return total, found


_MEMBERS_OF_GROUPS = (
    select(col(GroupMembership.group_id), col(User.id), col(User.display_name), col(User.user_name))
    .join(User, col(User.id) == col(GroupMembership.user_id))
    .where(col(GroupMembership.group_id).in_(bindparam("ids", expanding=True)))
    .order_by(col(GroupMembership.created_at), col(User.id))
)


async def members_of_groups(reader: Reader, group_ids: Sequence[str]) -> dict[str, list[tuple[str, str | None]]]:
    """Members (user id, display name) of a page of groups."""
    connection = await connection_of(reader)
    out: dict[str, list[tuple[str, str | None]]] = {gid: [] for gid in group_ids}
    for part in chunks(list(group_ids)):
        rows = await connection.execute(_MEMBERS_OF_GROUPS, {"ids": list(part)})
        for group_id, user_id, display, user_name in rows:
            out[group_id].append((user_id, display or user_name))
    return out


async def member_counts(session: AsyncSession, caller: Caller, group_ids: Sequence[str]) -> dict[str, int]:
    """How many members each group has (groups the caller has read: the count is part of the group)."""
    caller.require(Permission.GROUPS_READ)
    out = {gid: 0 for gid in group_ids}
    for part in chunks(list(group_ids)):
        rows = await session.execute(
            select(col(GroupMembership.group_id), func.count())
            .where(col(GroupMembership.group_id).in_(part))
            .group_by(col(GroupMembership.group_id))
        )
        out.update({gid: int(n) for gid, n in rows})
    return out


def admin_filter(
    *, search: str | None = None, managed_by: str | None = None, org_identifier: str | None = None, project_identifier: str | None = None
) -> ColumnElement[bool]:
    """The admin UI's group list filter: name/identifier substring, manager, scope."""
    conditions: list[ColumnElement[bool]] = []
    if has_nul(search, org_identifier, project_identifier):
        return false()
    if search:
        pattern = f"%{like_escaped(search.lower())}%"
        conditions.append(
            col(UserGroup.display_name_ci).like(pattern, escape=LIKE_ESCAPE)
            | func.lower(col(UserGroup.identifier)).like(pattern, escape=LIKE_ESCAPE)
        )
    if managed_by is not None:
        conditions.append(col(UserGroup.managed_by) == managed_by)
    if org_identifier is not None:
        conditions.append(col(UserGroup.org_identifier) == org_identifier)
    if project_identifier is not None:
        conditions.append(col(UserGroup.project_identifier) == project_identifier)
    return and_(true(), *conditions)


async def members_page_of_groups(
    session: AsyncSession, caller: Caller, group_ids: Sequence[str], offset: int, limit: int
) -> dict[str, list[User]]:
    """One window of members per group, in join order (they are users: users:read)."""
    caller.require(Permission.USERS_READ)
    return await membership_windows(
        session,
        group_ids,
        key_column=col(GroupMembership.group_id),
        item_column=col(GroupMembership.user_id),
        item_model=User,
        order_by=(col(GroupMembership.created_at), col(GroupMembership.user_id)),
        offset=offset,
        limit=limit,
    )
