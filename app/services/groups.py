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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    and_,
    any_,
    bindparam,
    cast,
    delete,
    false,
    func,
    literal_column,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.elements import True_
from sqlmodel import col

from app.db.models import MEMBERSHIP_GROUP, MEMBERSHIP_USER, Channel, GroupMemberCount, GroupMembership, ManagedBy, Outcome, UserGroup
from app.db.statements import Prepared
from app.db.transactions import locks_row
from app.db.types import utcnow
from app.errors import Conflict, GuardedOperation, InvalidInput, ManagedByIdentityProvider, NotFound
from app.services import accounts, audit, extensions, users
from app.services.caller import Caller, Permission
from app.services.common import (
    OFFSET,
    UNSET,
    VIEWER_INTEGRATION,
    Columns,
    Filter,
    PageQuery,
    Reader,
    among_ids,
    as_whole_rows,
    columns_key,
    connection_of,
    count_of_page,
    fetch,
    id_set,
    id_values,
    insert_unique,
    json_rows,
    kept,
    one_row,
    one_row_params,
    owned_params,
    owned_row,
    page,
    paged,
    read_columns,
    row_updater,
    rows_of_page,
    select_columns,
    total_of_page,
    unique_changes,
    update_with_rows,
    viewer_params,
    write_changes,
)
from app.services.identifiers import IDENTIFIER_RE, derive_identifier, with_suffix
from app.validation import LIKE_ESCAPE, MAX_INDEXED, has_nul, is_blank, like_escaped

IDENTIFIER_ATTEMPTS = 20
MEMBERSHIPS = GroupMembership.__table__  # type: ignore[attr-defined]
GROUPS = UserGroup.__table__  # type: ignore[attr-defined]
MEMBER_COUNTS = GroupMemberCount.__table__  # type: ignore[attr-defined]
USERS = users.USERS


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
        raise InvalidInput("the group name (displayName) is required and must be a non-empty string", field="displayName")
    if has_nul(display_name):
        raise InvalidInput("the group name must not contain the NUL character", field="displayName")
    if len(display_name) > MAX_INDEXED:
        raise InvalidInput(f"the group name (displayName) is longer than {MAX_INDEXED} characters", field="displayName")
    return display_name


def check_values(values: GroupValues, *, creating: bool = False) -> None:
    """The rules a group's values meet, whoever sets them (see `users.check_values`): a name (given
    on create, and not blank when given later), and no value longer than its column."""
    if creating or values.display_name is not UNSET:
        _validate_name(values.display_name)
    if isinstance(values.external_id, str) and len(values.external_id) > MAX_INDEXED:
        raise InvalidInput(f"externalId is longer than {MAX_INDEXED} characters", field="externalId")


# Constants, so that statements built with them can be built once (see common.kept). The groups an
# identity-provider token sees take the token's integration as a parameter (see `visible_to`).
_IDENTITY_PROVIDER_GROUPS: ColumnElement[bool] = and_(
    col(UserGroup.managed_by) == ManagedBy.IDENTITY_PROVIDER.value,
    or_(
        cast(VIEWER_INTEGRATION, String).is_(None),
        col(UserGroup.app_integration_id).is_(None),
        col(UserGroup.app_integration_id) == VIEWER_INTEGRATION,
    ),
)
_EVERY_GROUP: ColumnElement[bool] = true()


def visible_to(channel: Channel) -> ColumnElement[bool]:
    """The groups a channel sees and changes; a statement with this condition takes the caller's
    `viewer_params`. Over SCIM only the identity provider's own groups: native groups belong to the
    admin, and a native group that took an identity-provider group's name must not be what Entra's
    `displayName eq` lookup finds and then modifies. A native group's id is not found over SCIM,
    and a User's `groups` attribute lists only groups SCIM can open. A token bound to an app
    integration sees, of those, the groups its integration owns and the ones no integration owns
    (from before integrations, or created with an unbound token): another integration's group is
    not there for it at all, and a group it creates with the same name is its own.
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


async def _idp_name_taken(session: AsyncSession, caller: Caller, display_name: str, except_id: str | None) -> bool:
    """Whether an identity-provider group the caller sees over SCIM (see `visible_to`) has the name.

    On PostgreSQL the name is first locked for the rest of the transaction (an advisory lock of the
    account and the name): the unique indexes keep names apart only within one integration and
    among groups of none, so two creates of one name by an unbound and a bound token would
    otherwise both pass this check. The second now waits, then sees the first's group."""
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        key = func.hashtextextended(f"idp group name:{caller.account_id}:{display_name.lower()}", 0)
        await session.execute(select(func.pg_advisory_xact_lock(key)))
    query = select(col(UserGroup.id)).where(
        col(UserGroup.account_id) == caller.account_id, col(UserGroup.display_name_ci) == display_name.lower(), _IDENTITY_PROVIDER_GROUPS
    )
    if except_id is not None:
        query = query.where(col(UserGroup.id) != except_id)
    return (await session.scalar(query.limit(1), viewer_params(caller))) is not None


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
    extensions: Any = UNSET  # attributes of custom schema extensions as sent: {urn: {name: value}}

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
    check_values(values, creating=True)
    display_name = values.display_name
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
    custom = {} if values.extensions is UNSET else await extensions.check_declared(session, caller.account_id, values.extensions)
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
        app_integration_id=caller.integration_id if caller.is_identity_provider else None,
        created_at=now,
        updated_at=now,
        version=1,
        extensions=custom,
    )
    await _insert_with_identifier(session, caller, group, chosen=identifier is not None)
    if caller.is_identity_provider:
        await extensions.discover(session, caller, "Group", extensions.added(None, group.extensions))
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
    if caller.is_identity_provider and await _idp_name_taken(session, caller, display_name, None):
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


def _group_query(visible: ColumnElement[bool], lock: Callable[[Select[Any]], Select[Any]] | None) -> Prepared:
    query = select(GROUPS).where(GROUPS.c.id == bindparam("id"), GROUPS.c.account_id == bindparam("account_id"), visible)
    return Prepared(query if lock is None else lock(query))


def _locked(query: Select[Any]) -> Select[Any]:
    # FOR UPDATE, not FOR NO KEY UPDATE as other rows about to change: it waits for the member
    # changes that hold the group FOR KEY SHARE (see `change_members`), before it holds anything
    # they need.
    return query.with_for_update()


def _kept_from_deletion(query: Select[Any]) -> Select[Any]:
    # FOR KEY SHARE, which other changes of the group do not wait for.
    return query.with_for_update(read=True, key_share=True)


# (seen over SCIM, locked) -> the lookup by id.
_GROUP = {
    (scim, lock): _group_query(_IDENTITY_PROVIDER_GROUPS if scim else _EVERY_GROUP, _locked if lock else None)
    for scim in (True, False)
    for lock in (True, False)
}
# The lookup of a group whose members the identity provider changes with its lock taken last (see
# `change_members`): held against deletion only.
_GROUP_KEPT = _group_query(_IDENTITY_PROVIDER_GROUPS, _kept_from_deletion)
_UPDATE = row_updater(GROUPS)
_DELETE = Prepared(delete(GROUPS).where(one_row(GROUPS)))

# The new version of a group whose members changed, counted from the stored one, for a group still
# seen over SCIM: the statement that takes the group's lock when its members are changed last.
_NEXT_VERSION = (
    update(GROUPS)
    .where(one_row(GROUPS), _IDENTITY_PROVIDER_GROUPS)
    .values(version=GROUPS.c.version + 1, updated_at=bindparam("now"))
    .returning(GROUPS.c.version, GROUPS.c.updated_at)
)


async def get_group(session: AsyncSession, caller: Caller, group_id: str, *, for_update: bool = False) -> GroupRecord:
    """A group the caller sees, locked against other changes until the transaction ends when
    `for_update`, or NotFound."""
    caller.require(Permission.GROUPS_WRITE if for_update else Permission.GROUPS_READ)
    lookup = _GROUP[(caller.is_identity_provider, for_update)]
    return GroupRecord(**(await owned_row(session, lookup, "UserGroup", group_id, caller.account_id, viewer_params(caller)))._mapping)


async def get_group_for_members(session: AsyncSession, caller: Caller, group_id: str) -> GroupRecord:
    """A group the identity provider sees, for a change of its members alone that takes its lock last
    (`change_members(locked=False)`), or NotFound: kept from deletion until the transaction ends,
    not locked against other changes."""
    caller.require(Permission.GROUPS_WRITE)
    if not caller.is_identity_provider:
        raise ValueError("only the identity provider's member changes take the group's lock last")
    return GroupRecord(**(await owned_row(session, _GROUP_KEPT, "UserGroup", group_id, caller.account_id, viewer_params(caller)))._mapping)


def may_lock_last(caller: Caller, changes: Sequence[MemberChange]) -> bool:
    """Whether these changes of a group's members may be made with the group's lock taken last
    (see `change_members`): the identity provider's adds and removes, which Entra and Okta send one
    batch at a time, many at once into a large group."""
    return caller.is_identity_provider and bool(changes) and all(change.kind in ("add", "remove") for change in changes)


async def read_group(reader: Reader, caller: Caller, group_id: str) -> Any:
    """`get_group` for a request that only reads: the plain row, on a session or a bare connection."""
    caller.require(Permission.GROUPS_READ)
    lookup = _GROUP[(caller.is_identity_provider, False)]
    return await owned_row(reader, lookup, "UserGroup", group_id, caller.account_id, viewer_params(caller))


async def get_group_by_identifier(
    session: AsyncSession, caller: Caller, identifier: str, org: str | None, project: str | None
) -> UserGroup:
    """The group with this identifier in a scope (the account, an organization, or a project of
    one), or NotFound — also for a project named without its organization, which no group is in."""
    caller.require(Permission.GROUPS_READ)
    if has_nul(identifier, org, project) or (project is not None and not org):
        raise NotFound("UserGroup", identifier)
    group = await session.scalar(
        select(UserGroup).where(
            col(UserGroup.account_id) == caller.account_id,
            col(UserGroup.scope) == _scope(org, project),
            col(UserGroup.identifier) == identifier,
            visible_to(caller.channel),
        ),
        viewer_params(caller),
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
    check_values(values)
    renamed = display_name is not UNSET and display_name != group.display_name
    if renamed:
        guard(caller, group, GuardedOperation.RENAME)
        if group.managed_by == ManagedBy.IDENTITY_PROVIDER.value and await _idp_name_taken(session, caller, display_name, group.id):
            raise Conflict(f"a group named '{display_name}' already exists", field="displayName")
    if description is not UNSET and has_nul(description):
        raise InvalidInput("the description must not contain the NUL character", field="description")
    if values.extensions not in (UNSET, group.extensions):
        values = dataclasses.replace(values, extensions=await extensions.check_declared(session, caller.account_id, values.extensions))
    new_name = display_name if renamed else group.display_name
    # Only a new name can meet a unique constraint; only then is the change made in a savepoint.
    conflict = unique_changes(session, lambda: Conflict(f"a group named '{new_name}' already exists", field="displayName"))
    async with conflict if renamed else contextlib.nullcontext():
        before = dict(vars(group))
        changed = _assign(group, values.given())
        await write_changes(session, _UPDATE, group, before)
    if caller.is_identity_provider:
        await extensions.discover(session, caller, "Group", extensions.added(before["extensions"], group.extensions))
    detail = {"changed": changed, "values": audit.values_changed(before, vars(group), changed)}
    await audit.record(session, caller, action="group.update", resource_type="UserGroup", resource_id=group.id, detail=detail)
    return changed


def _members_of(group: Any) -> ColumnElement[bool]:
    return and_(col(GroupMembership.account_id) == group.account_id, col(GroupMembership.group_id) == group.id)


# Membership changes are one statement each, whatever the number of ids: the ids travel as one
# parameter (`common.id_set`), so a 100,000-member PUT costs three round trips, not one per member
# or per chunk.
_MEMBERS = and_(MEMBERSHIPS.c.account_id == bindparam("account_id"), MEMBERSHIPS.c.group_id == bindparam("group_id"))


def _insert_members(dialect: str) -> Executable:
    """Make members of the named users that exist in the account and are not members yet; returns
    the ids added. The users to add are locked against deletion (FOR KEY SHARE) until the
    transaction ends; one deleted meanwhile by another transaction is left out like an unknown id,
    so the insert never meets a foreign-key error. Current members are neither locked nor written
    (a full member list re-sent by the identity provider is mostly current members); a member added
    meanwhile by another request is skipped by the conflict clause."""
    values = [bindparam(name, type_=MEMBERSHIPS.c[name].type) for name in ("account_id", "group_id")]
    stamps = [bindparam(name, type_=MEMBERSHIPS.c[name].type) for name in ("added_via", "created_at")]
    user = _live_user_not_member(dialect)
    build = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        build(MEMBERSHIPS)
        .from_select(
            ["account_id", "group_id", "user_id", "added_via", "created_at"],
            select(*values, user.c.id, *stamps).select_from(user).where(true()),
        )  # the WHERE: SQLite reads ON CONFLICT after a SELECT without one as part of a join
        .on_conflict_do_nothing(index_elements=["account_id", "group_id", "user_id"])
        .returning(MEMBERSHIPS.c.user_id)
    )


def _live_user_not_member(dialect: str) -> Any:
    """The ids (column `id`) of parameter `ids` that name a live user of the account who is not a
    member of the group, each such user locked FOR KEY SHARE.

    On PostgreSQL each id is looked up on its own (a LATERAL subquery: a primary-key lookup of the
    user and of the membership per id), whatever the planner's statistics say. Written as a join,
    tables whose statistics are not current yet (right after a first bulk sync) were planned as
    nested loops over every row: 79 s for 25,000 ids, where this takes well under one."""
    wanted = id_set(dialect).subquery("wanted")
    member = select(MEMBERSHIPS.c.user_id).where(_MEMBERS, MEMBERSHIPS.c.user_id == USERS.c.id)
    found = select(USERS.c.id).where(USERS.c.account_id == bindparam("account_id"), users.LIVE, ~member.exists())
    if dialect != "postgresql":  # SQLite plans an IN list as an index of the ids
        return found.where(USERS.c.id.in_(select(wanted.c.id))).subquery("found")
    each = found.where(USERS.c.id == wanted.c.id).with_for_update(read=True, key_share=True).lateral("found")
    return select(each.c.id).select_from(wanted.join(each, true())).subquery("chosen")


def _unknown_users(dialect: str) -> Executable:
    """The ids that name no (live) user of the account: looked up one by one, as in
    `_live_user_not_member`."""
    wanted = id_set(dialect).subquery("wanted")
    known = select(USERS.c.id).where(USERS.c.account_id == bindparam("account_id"), users.LIVE, USERS.c.id == wanted.c.id)
    if dialect != "postgresql":
        return select(wanted.c.id).where(~known.exists())
    each = known.limit(1).lateral("known")  # LIMIT: kept as a lookup per id, never flattened into a join
    return select(wanted.c.id).select_from(wanted.outerjoin(each, true())).where(each.c.id.is_(None))


def _delete_members(dialect: str, *, keeping: bool) -> Executable:
    """End the memberships of the ids (`keeping`: of everyone but the ids); returns the ids removed.

    On PostgreSQL the ids that go are found first — the ids themselves, or the members less the ids,
    a set difference (EXCEPT: hashed or sorted, never quadratic) — and each one's membership is then
    looked up on its own by key (a LATERAL subquery, as in `_live_user_not_member`) and deleted by its
    row's address, whatever the planner's statistics say. Written as a join of the ids with the
    group's memberships, tables whose statistics are not current yet (right after a first bulk sync)
    were planned as a nested loop comparing every member with every id that goes: a PUT of 25,000
    members that removed 500 took 15 s, where this takes well under one. (`user_id NOT IN (SELECT
    unnest(…))` would be no better: a hash of the ids only while the planner expects it to fit in
    memory, about 150,000 ids by default, and beyond that the same comparison of every pair.) The
    addresses are read by the DELETE itself, in its snapshot: membership rows are never updated, and a
    membership that another transaction ends meanwhile is skipped, as the join skipped it."""
    if dialect != "postgresql":  # SQLite reads an IN list into an index of its own
        ids = id_set(dialect)
        chosen = MEMBERSHIPS.c.user_id.not_in(ids) if keeping else MEMBERSHIPS.c.user_id.in_(ids)
        return delete(MEMBERSHIPS).where(_MEMBERS, chosen).returning(MEMBERSHIPS.c.user_id)
    if keeping:
        going = select(MEMBERSHIPS.c.user_id.label("id")).where(_MEMBERS).except_(id_set(dialect)).subquery("going")
    else:
        going = id_set(dialect).subquery("going")
    member = MEMBERSHIPS.alias("member")
    each = (
        select(literal_column("ctid"))
        .select_from(member)
        .where(member.c.account_id == bindparam("account_id"), member.c.group_id == bindparam("group_id"), member.c.user_id == going.c.id)
        .limit(1)  # kept as a lookup per id, never flattened into a join
        .lateral("each")
    )
    rows = select(each.c.ctid).select_from(going.join(each, true())).scalar_subquery()
    # The addresses alone in the condition: with the group's conditions beside them, PostgreSQL may
    # scan the group's memberships and compare each with every address.
    return delete(MEMBERSHIPS).where(literal_column("ctid") == any_(func.array(rows))).returning(MEMBERSHIPS.c.user_id)


async def _run_on_members(
    session: AsyncSession, group: Any, name: str, build: Callable[[str], Executable], ids: Sequence[str], **params: Any
) -> set[str]:
    connection = await session.connection()
    dialect = connection.dialect.name
    statement = kept(("group members", name, dialect), lambda: build(dialect))
    values = {"account_id": group.account_id, "group_id": group.id, "ids": id_values(dialect, ids), **params}
    return {row[0] for row in await fetch(connection, statement, values)}


async def _add(session: AsyncSession, caller: Caller, group: Any, ids: Sequence[str]) -> MembershipResult:
    added = await _run_on_members(session, group, "add", _insert_members, ids, added_via=caller.channel.value, created_at=utcnow())
    skipped: set[str] = set()
    if len(added) < len(set(ids)):  # some were members already, or name no user: find out which
        skipped = await _run_on_members(session, group, "unknown", _unknown_users, ids)
    return MembershipResult(added=added, skipped=skipped)


async def _remove(session: AsyncSession, group: Any, ids: Sequence[str]) -> set[str]:
    return await _run_on_members(session, group, "remove", lambda dialect: _delete_members(dialect, keeping=False), ids)


async def _remove_all_but(session: AsyncSession, group: Any, ids: Sequence[str]) -> set[str]:
    return await _run_on_members(session, group, "keep", lambda dialect: _delete_members(dialect, keeping=True), ids)


async def _all_members(session: AsyncSession, group: Any) -> set[str]:
    return set(await session.scalars(select(col(GroupMembership.user_id)).where(_members_of(group))))


async def change_members(
    session: AsyncSession, caller: Caller, group: Any, changes: Sequence[MemberChange], *, locked: bool = True
) -> MembershipResult:
    """Apply membership changes in order. Unknown or other-account user ids are skipped and
    recorded in the audit log; they are not an error (Entra may reference users not yet synced).

    The group is locked (`get_group(for_update=True)`), so that every change of it waits for the
    ones before — unless `locked` is False: the identity provider's adds and removes (see
    `may_lock_last`) on a group read with `get_group_for_members` (held FOR KEY SHARE) take the
    group's lock only with their last statement, which counts its new version from the stored one
    and finds the group still seen over SCIM, or raises NotFound and nothing is kept. Their
    memberships are written without waiting for one another, as adds and removes of different users
    do not depend on each other: the 16 concurrent batches of the benchmark into one group went one
    at a time behind its lock, four round trips each (bench/README.md). A change that locks the
    group first waits for them at its first lock (FOR UPDATE, see `_locked`). Each batch's ids
    are taken in order, so that two batches adding the same users never wait for each other in
    opposite orders; a batch adding users while another removes them may, rarely: PostgreSQL
    detects that deadlock and the transaction runs again."""
    caller.require(Permission.GROUPS_WRITE)
    if not changes:
        return MembershipResult()
    if not locked:
        if not may_lock_last(caller, changes):
            raise ValueError("only the identity provider's adds and removes take the group's lock last")
        changes = [MemberChange(change.kind, tuple(sorted(set(change.ids)))) for change in changes]
    guard(caller, group, GuardedOperation.CHANGE_MEMBERS)
    total = MembershipResult()
    for change in changes:
        removed: set[str] = set()
        step = MembershipResult()
        if change.kind == "add":
            await users.guard(session, caller, change.ids, GuardedOperation.CHANGE_GROUPS)
            step = await _add(session, caller, group, change.ids)
        elif change.kind == "remove":
            await users.guard(session, caller, change.ids, GuardedOperation.CHANGE_GROUPS)
            removed = await _remove(session, group, change.ids)
        else:  # replace / clear: remove everyone else, then add who is missing
            wanted = change.ids if change.kind == "replace" else ()
            removed = await _remove_all_but(session, group, wanted)
            step = await _add(session, caller, group, wanted)
            # Checked once the difference is known; a refusal rolls the whole transaction back.
            await users.guard(session, caller, sorted(removed | step.added), GuardedOperation.CHANGE_GROUPS)
        total.removed = (total.removed | (removed - total.added)) - step.added
        total.added = (total.added - removed) | step.added
        total.skipped |= step.skipped
    _refuse_unknown(caller, total)
    about: audit.Event = {"action": "group.members", "resource_type": "UserGroup", "resource_id": group.id}
    events: list[audit.Event] = [{**about, "detail": _member_detail(MembershipResult(added=total.added, removed=total.removed))}]
    if total.skipped:  # over SCIM only: elsewhere `_refuse_unknown` has refused them
        skipped = {"skipped": audit.id_list(total.skipped), "reason": "no user of this account has these ids"}
        events.append({**about, "outcome": Outcome.IGNORED, "detail": skipped})
    rows = [(audit.TABLE, [audit.row(caller, **event) for event in events])]
    if not locked and total.changed:
        # The group's new version and the audit events in one statement, the transaction's last.
        params = {**one_row_params(group), **viewer_params(caller), "now": utcnow()}
        stored = await update_with_rows(session, _NEXT_VERSION, params, with_rows=rows)
        if stored is None:  # no longer the identity provider's (the group itself is held FOR KEY SHARE)
            raise NotFound("UserGroup", group.id)
        group.version, group.updated_at = stored.version, stored.updated_at
        return total
    before = dict(vars(group))
    if total.changed:
        _touch(group)
    # The group's new version and the audit events in one statement: the group's row is locked
    # until the commit, and other changes of the group wait for each round trip made meanwhile.
    await write_changes(session, _UPDATE, group, before, with_rows=rows)
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
    members = await _all_members(session, group)
    locked = await users.locked_for(session, caller, sorted(members), GuardedOperation.CHANGE_GROUPS)
    if locked:
        raise users.refusal(locked[0], GuardedOperation.CHANGE_GROUPS, IDP_MEMBER_MESSAGE.format(group=group.identifier, user=locked[0]))
    await _DELETE.execute(await session.connection(), one_row_params(group))  # its memberships go with it
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


LIST_ORDER = (col(UserGroup.created_at), col(UserGroup.id))  # a list's order, and the tie-break of any other


async def list_groups(reader: Reader, caller: Caller, query: PageQuery) -> tuple[int, list[Any]]:
    """A page of the groups the caller sees that match the query, as plain rows, and how many match."""
    return await page(reader, UserGroup, *_listed(caller, query))


async def page_of_groups(reader: Reader, caller: Caller, query: PageQuery, *, columns: Columns = None) -> list[Any]:
    """The page of `list_groups` alone, of its values only `columns` (see `common.read_columns`);
    `count_groups` counts the matches when they are asked for."""
    return await rows_of_page(reader, UserGroup, *_listed(caller, query), columns)


async def count_groups(reader: Reader, caller: Caller, query: PageQuery, found: int) -> int:
    """How many groups match the query whose page (`page_of_groups`) held `found` rows."""
    return await count_of_page(reader, UserGroup, *_listed(caller, query), found)


def _listed(caller: Caller, query: PageQuery) -> tuple[ColumnElement[bool], PageQuery]:
    """The groups the caller sees, and the query within them."""
    caller.require(Permission.GROUPS_READ)
    over_scim = caller.is_identity_provider
    scoped = query.within(("visible over SCIM", over_scim), account_id=caller.account_id, **viewer_params(caller))
    return _VISIBLE_IN_ACCOUNT[over_scim], scoped


# The two sides of a membership, each in one order whoever reads it: a user's groups by name, a
# group's members in the order they joined.
GROUPS_OF_A_USER = (col(UserGroup.display_name_ci), col(UserGroup.id))
MEMBERS_OF_A_GROUP = (col(GroupMembership.created_at), col(GroupMembership.user_id))


@dataclass(frozen=True)
class _Side:
    """What a membership leads to from one side: `key`, the membership's column of the side asked
    about; `table` and `joined`, the other side and how a membership joins it; `order_by`."""

    name: str
    key: Any
    table: Any
    joined: ColumnElement[bool]
    order_by: tuple[Any, ...]

    def visible(self, caller: Caller) -> tuple[bool, ColumnElement[bool]]:
        """Which rows of the other side the caller sees, and a key for it: some groups are not seen
        over SCIM (see `visible_to`); every member of a group the caller could read is."""
        if self.table is not GROUPS:
            return False, _EVERY_GROUP
        return caller.is_identity_provider, visible_to(caller.channel)


_GROUPS_OF_USERS = _Side("groups of users", col(GroupMembership.user_id), GROUPS, MEMBERSHIP_GROUP, GROUPS_OF_A_USER)
_MEMBERS_OF_GROUPS = _Side("members of groups", col(GroupMembership.group_id), USERS, MEMBERSHIP_USER, MEMBERS_OF_A_GROUP)
_IN_ACCOUNT = col(GroupMembership.account_id) == bindparam("account_id")


def _related(
    side: _Side, visible: ColumnElement[bool], columns: Columns, narrow: Sequence[Any], *, window: bool, dialect: str
) -> Select[Any]:
    """The rows of side.table (of its values only `columns`, see `common.read_columns`; or, given
    `narrow`, rows of those columns alone) at the other end of the memberships of the keys (parameter
    `keys`) in the account (`account_id`) that `visible` lets the caller see, with `related_to`, the
    key each belongs to; in order per key and, with `window`, only those from parameter `offset`, at
    most `limit` per key — a window function, one query for any number of keys.

    On PostgreSQL each membership's row is looked up by primary key on its own (LATERAL … LIMIT 1,
    as in `_live_user_not_member`): planned as a join, a users table without current statistics
    (right after a bulk sync) was read whole once per member — 25,000 members took minutes."""
    if dialect == "postgresql":
        other = select(side.table).where(side.joined, visible).correlate(MEMBERSHIPS).limit(1).lateral("other")
        source = MEMBERSHIPS.join(other, true())
        where: list[ColumnElement[bool]] = []

        def pick(column: Any) -> Any:
            return other.c[column.key] if column.table is side.table else column

    else:
        source = MEMBERSHIPS.join(side.table, side.joined)
        where = [visible]

        def pick(column: Any) -> Any:
            return column

    order_by = [pick(c) for c in side.order_by]
    chosen = (
        select(side.key.label("related_to"), *([pick(c) for c in narrow] or read_columns(side.table, columns, pick)))
        .select_from(source)
        .where(_IN_ACCOUNT, among_ids(side.key, dialect), *where)
    )
    if not window:
        related = chosen.order_by(side.key, *order_by)
    else:
        position = func.row_number().over(partition_by=side.key, order_by=order_by).label("position")
        ranked = chosen.add_columns(position).subquery("ranked")
        # The window's bound is a condition, not a LIMIT: a parameter like OFFSET, not written into
        # the SQL as `common.LIMIT` is, which would only make one text per page size.
        related = (
            select(*(c for c in ranked.c if c.key != "position"))
            .where(ranked.c.position > OFFSET, ranked.c.position <= OFFSET + bindparam("limit"))
            .order_by(ranked.c.related_to, ranked.c.position)
        )
    return related if narrow else as_whole_rows(related, side.table, columns)


async def _read_related(
    reader: Reader,
    side: _Side,
    caller: Caller,
    keys: Sequence[str],
    columns: Columns,
    offset: int,
    limit: int | None,
    narrow: Sequence[Any] = (),
) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {key: [] for key in keys}
    if limit is not None and limit <= 0:
        return out
    restricted, visible = side.visible(caller)
    window = limit is not None or offset > 0
    connection = await connection_of(reader)
    dialect = connection.dialect.name
    statement = kept(
        ("related", side.name, restricted, columns_key(columns), tuple(c.key for c in narrow), window, dialect),
        lambda: _related(side, visible, columns, narrow, window=window, dialect=dialect),
    )
    params = {"account_id": caller.account_id, "ids": id_values(dialect, keys), "offset": offset, "limit": limit, **viewer_params(caller)}
    for row in await fetch(connection, statement, params):
        out[row.related_to].append(row)
    return out


async def groups_of_users(
    reader: Reader, caller: Caller, user_ids: Sequence[str], *, offset: int = 0, limit: int | None = None, columns: Columns = None
) -> dict[str, list[Any]]:
    """Each user's groups that the caller sees (rows of `user_groups`, of their values only `columns`),
    by name: all of them, or the window from `offset` of at most `limit`. They are groups: groups:read."""
    caller.require(Permission.GROUPS_READ)
    return await _read_related(reader, _GROUPS_OF_USERS, caller, user_ids, columns, offset, limit)


async def members_of_groups(
    reader: Reader, caller: Caller, group_ids: Sequence[str], *, offset: int = 0, limit: int | None = None, columns: Columns = None
) -> dict[str, list[Any]]:
    """Each group's members (rows of `users`, of their values only `columns`), in the order they
    joined: all of them, or the window from `offset` of at most `limit`. They are users, profiles and
    all: users:read."""
    caller.require(Permission.USERS_READ)
    return await _read_related(reader, _MEMBERS_OF_GROUPS, caller, group_ids, columns, offset, limit)


_MEMBER_REFERENCES = (USERS.c.id, USERS.c.display_name, USERS.c.user_name)


async def member_references(reader: Reader, caller: Caller, group_ids: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
    """Each group's members as references — (user id, display name, else userName) — in the order
    they joined, as SCIM's `members` shows them. They are part of the group: groups:read."""
    caller.require(Permission.GROUPS_READ)
    rows = await _read_related(reader, _MEMBERS_OF_GROUPS, caller, group_ids, None, 0, None, narrow=_MEMBER_REFERENCES)
    return {group_id: [(m.id, m.display_name or m.user_name) for m in members] for group_id, members in rows.items()}


def _with_groups(users_query: Select[Any], visible: ColumnElement[bool]) -> Select[Any]:
    """`users_query` (over the users table) with one more column, `their_groups`: the groups of
    each user that `visible` lets the caller see, as a JSON array of [position, id, display name],
    the positions in GROUPS_OF_A_USER order. Still one row per user, however many groups they are
    in, and one statement instead of a second round trip for the groups."""
    ranked = (
        select(func.row_number().over(order_by=GROUPS_OF_A_USER).label("position"), col(UserGroup.id), col(UserGroup.display_name))
        .select_from(MEMBERSHIPS.join(GROUPS, and_(MEMBERSHIP_GROUP, visible)))
        .where(MEMBERSHIP_USER)
        .correlate(USERS)
        .subquery("ranked")
    )
    their_groups = select(json_rows(ranked.c.position, ranked.c.id, ranked.c.display_name)).scalar_subquery()
    return users_query.add_columns(their_groups.label("their_groups"))


def _user_with_groups_query(visible: ColumnElement[bool], *, for_update: bool = False) -> Select[Any]:
    by_id = select(USERS).where(USERS.c.id == bindparam("id"), USERS.c.account_id == bindparam("account_id"), users.LIVE)
    if for_update:  # the user's row only (as `users.get_user` locks it), not the groups read beside it
        by_id = by_id.with_for_update(key_share=True, of=USERS)
    return _with_groups(by_id, visible)


UserWithGroups = tuple[Any, list[tuple[str, str]]]  # a user's plain row, and (id, display name) of their groups


def _users_and_groups(rows: Iterable[Any]) -> list[UserWithGroups]:
    """The rows of a `_with_groups` query as (user, [(group id, display name)]), groups in order."""
    return [(row, [(group_id, name) for _, group_id, name in sorted(row.their_groups or ())]) for row in rows]


# Keyed by (over SCIM, for update); a SCIM GET of a user runs one of them.
_USER_WITH_GROUPS = {
    (over_scim, for_update): Prepared(
        _user_with_groups_query(_IDENTITY_PROVIDER_GROUPS if over_scim else _EVERY_GROUP, for_update=for_update)
    )
    for over_scim in (True, False)
    for for_update in (True, False)
}


async def read_user_with_groups(reader: Reader, caller: Caller, user_id: str) -> UserWithGroups:
    """`users.read_user` and that user's `groups_of_users`, in one statement."""
    caller.require(Permission.USERS_READ)
    return await _user_with_groups(reader, caller, user_id, for_update=False)


async def get_user_with_groups(session: AsyncSession, caller: Caller, user_id: str) -> tuple[users.UserRecord, list[tuple[str, str]]]:
    """`users.get_user(…, for_update=True)` and that user's `groups_of_users`, in one statement: for
    a change of the user that answers with the user as changed (their groups stay as they are)."""
    caller.require(Permission.USERS_WRITE)
    row, groups_of_user = await _user_with_groups(session, caller, user_id, for_update=locks_row(session, True))
    record = users.UserRecord(**row._mapping)
    del record.their_groups
    return record, groups_of_user


async def _user_with_groups(reader: Reader, caller: Caller, user_id: str, *, for_update: bool) -> UserWithGroups:
    params = {**owned_params("User", user_id, caller.account_id), **viewer_params(caller)}
    connection = await connection_of(reader)
    found = _users_and_groups(await _USER_WITH_GROUPS[caller.is_identity_provider, for_update].all(connection, params))
    if not found:
        raise NotFound("User", user_id)
    return found[0]


def _page_with_groups_query(
    where: ColumnElement[bool],
    order_by: Sequence[Any],
    offset: int,
    visible: ColumnElement[bool],
    *,
    dialect: str,
    columns: Columns,
    counted: Prepared | None = None,
) -> Select[Any]:
    read = select_columns(USERS, columns)
    if offset == 0 and dialect == "postgresql":
        # PostgreSQL works out a subquery of the select list after the sort, for the rows the LIMIT
        # lets through only: the first page is read straight from the users.
        users_query = paged(read.where(users.OF_ACCOUNT, where).order_by(*order_by), offset)
    else:
        # Otherwise the page is chosen first, so that the groups are read for its users only: PostgreSQL
        # would read them for the rows the OFFSET skips too, SQLite for every match before sorting.
        # Not correlated: the subquery reads the users table on its own, whatever the outer query reads.
        # Joined by primary key rather than `id IN (…)`, which PostgreSQL plans as a scan of every user
        # of the table hashed against the page.
        chosen = select(USERS.c.account_id, USERS.c.id).where(users.OF_ACCOUNT, where).order_by(*order_by).correlate(None)
        page_ids = paged(chosen, offset).subquery("page")
        on_page = page_ids.join(USERS, and_(USERS.c.account_id == page_ids.c.account_id, USERS.c.id == page_ids.c.id))
        users_query = read.select_from(on_page).order_by(*order_by)
    if counted is not None:  # the count on every row of the page: one round trip instead of two
        users_query = users_query.add_columns(counted.statement.scalar_subquery().label("counted"))  # type: ignore[attr-defined]
    return _with_groups(users_query, visible)


async def list_users_with_groups(
    reader: Reader, caller: Caller, query: PageQuery, *, columns: Columns = None
) -> tuple[int, list[UserWithGroups]]:
    """`users.list_users` with each user's `groups_of_users`, in one statement (see `_with_groups`):
    with the account's kept count of users when the list has no filter, else plus a count when the
    page does not show the total (see `total_of_page`). Of the users' values, only `columns` (see
    `common.read_columns`)."""
    caller.require(Permission.USERS_READ)
    over_scim = caller.is_identity_provider
    scoped = query.within(("visible over SCIM", over_scim), account_id=caller.account_id, **viewer_params(caller))
    connection = await connection_of(reader)
    with_count = isinstance(scoped.where, True_)
    rows: list[Any] = []
    if scoped.limit > 0:
        statement = kept(
            scoped.key and ("users with groups", scoped.key, scoped.offset == 0, connection.dialect.name, columns_key(columns)),
            lambda: _page_with_groups_query(
                scoped.where,
                scoped.order_by,
                scoped.offset,
                visible_to(caller.channel),
                dialect=connection.dialect.name,
                columns=columns,
                counted=users.COUNTED if with_count else None,
            ),
        )
        rows = await fetch(connection, statement, scoped.page_params())
    counted_with_page = int(rows[0].counted) if with_count and rows else None
    total = await total_of_page(
        connection, USERS, (users.OF_ACCOUNT, scoped.where), scoped, len(rows), counted=users.COUNTED, counted_with_page=counted_with_page
    )
    return total, _users_and_groups(rows)


async def member_counts(reader: Reader, caller: Caller, group_ids: Sequence[str]) -> dict[str, int]:
    """How many members each group has (groups the caller has read: the count is part of the group),
    summed from the slots of `group_member_counts`, which triggers keep (migration 0014): a few
    rows per group, where counting a group's memberships read every one of them."""
    caller.require(Permission.GROUPS_READ)
    out = {group_id: 0 for group_id in group_ids}
    connection = await connection_of(reader)
    dialect = connection.dialect.name
    statement = kept(
        ("member counts", dialect),
        lambda: (
            select(MEMBER_COUNTS.c.group_id, func.sum(MEMBER_COUNTS.c.members).label("members"))
            .where(MEMBER_COUNTS.c.account_id == bindparam("account_id"), among_ids(MEMBER_COUNTS.c.group_id, dialect))
            .group_by(MEMBER_COUNTS.c.group_id)
        ),
    )
    params = {"account_id": caller.account_id, "ids": id_values(dialect, group_ids)}
    out.update({group_id: int(n) for group_id, n in await fetch(connection, statement, params)})
    return out


async def group_counts(reader: Reader, caller: Caller, user_ids: Sequence[str]) -> dict[str, int]:
    """How many of the groups the caller sees each user is in."""
    caller.require(Permission.GROUPS_READ)
    out = {user_id: 0 for user_id in user_ids}
    side = _GROUPS_OF_USERS
    restricted, visible = side.visible(caller)
    counted = MEMBERSHIPS.join(side.table, side.joined) if restricted else MEMBERSHIPS  # the memberships alone: an index-only count
    connection = await connection_of(reader)
    dialect = connection.dialect.name
    statement = kept(
        ("groups counted", restricted, dialect),
        lambda: (
            select(side.key, func.count().label("count"))
            .select_from(counted)
            .where(_IN_ACCOUNT, among_ids(side.key, dialect), visible)
            .group_by(side.key)
        ),
    )
    params = {"account_id": caller.account_id, "ids": id_values(dialect, user_ids), **viewer_params(caller)}
    out.update({user_id: int(n) for user_id, n in await fetch(connection, statement, params)})
    return out


def admin_filter(
    *, search: str | None = None, managed_by: str | None = None, org_identifier: str | None = None, project_identifier: str | None = None
) -> Filter:
    """The admin UI's group list filter: name/identifier substring, manager, scope."""
    if has_nul(search, org_identifier, project_identifier):
        return Filter(false(), {}, "nothing")
    conditions: list[ColumnElement[bool]] = []
    params: dict[str, Any] = {}
    if search:
        params["search"] = f"%{like_escaped(search.lower())}%"
        pattern = bindparam("search", type_=String)
        conditions.append(
            col(UserGroup.display_name_ci).like(pattern, escape=LIKE_ESCAPE)
            | func.lower(col(UserGroup.identifier)).like(pattern, escape=LIKE_ESCAPE)
        )
    exact = {"managed_by": managed_by, "org_identifier": org_identifier, "project_identifier": project_identifier}
    for column, value in exact.items():
        if value is not None:
            params[column] = value
            conditions.append(getattr(UserGroup, column) == bindparam(column))
    return Filter(and_(true(), *conditions), params, ("admin groups", bool(search), *(value is not None for value in exact.values())))
