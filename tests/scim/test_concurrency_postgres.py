"""Races that SQLite hides by running one writer at a time and PostgreSQL does not: parallel
creates that collide on a unique name or identifier, a member added while that user is deleted,
and deletes that touch the same rows. Each answers with the status a client expects, never 500,
and leaves the database as if the requests had run one after the other. The tests run on both
databases; a deadlock retried behind the scenes would hide a lock-order problem, so the tests also
check that the database reported none."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.db import statements
from app.db.models import GroupMembership, ManagedBy, Organization, Project, User, UserGroup
from app.db.transactions import ATTEMPTS, run_transaction
from app.errors import Unavailable
from app.services import groups
from app.services.common import lock_ids
from tests.support.clients import CORE_GROUP, ENTERPRISE, GraphQLClient, ScimClient, Tenant

DEADLOCK = "40P01"
# Different names, one derived identifier (`.`, `-` and spaces become `_`; other punctuation goes).
SAME_IDENTIFIER = [
    "TeamX X",
    "TeamX-X",
    "TeamX X!",
    "TeamX.X",
    "TeamX_X",
    "TeamX X?",
    "TeamX-X!",
    "TeamX X#",
    "TeamX.X!",
    "TeamX X%",
    "TeamX X&",
    "TeamX X*",
]


@pytest.fixture
def sqlstates(engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The SQLSTATE of every database error the app met during the test (none on SQLite): in the
    statements SQLAlchemy runs and in those run on the driver directly (app.db.statements)."""
    seen: list[str] = []

    def note(error: BaseException) -> None:
        code = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
        if code:
            seen.append(str(code))

    def record(context: Any) -> None:
        note(context.original_exception)

    run = statements._run

    async def run_noting_errors(connection: Any, sql: str, call: Any) -> Any:
        try:
            return await run(connection, sql, call)
        except Exception as error:
            note(error.__cause__ or error)
            raise

    monkeypatch.setattr(statements, "_run", run_noting_errors)
    event.listen(engine.sync_engine, "handle_error", record)
    yield seen
    event.remove(engine.sync_engine, "handle_error", record)


# A user deleted over SCIM is kept as a tombstone for the account's retention: not a user any more.
LIVE_USER = User.deprovisioned_at.is_(None)  # type: ignore[union-attr]


async def _count(sessionmaker: async_sessionmaker[AsyncSession], model: Any, *where: Any) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def _identifiers(sessionmaker: async_sessionmaker[AsyncSession]) -> list[str]:
    async with sessionmaker() as session:
        return sorted(await session.scalars(select(UserGroup.identifier)))


def _suffixed(base: str, n: int) -> list[str]:
    return sorted([base] + [f"{base}_{i}" for i in range(2, n + 1)])


async def test_thirty_parallel_creates_of_one_group_name_make_one_group(
    scim: ScimClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async def create() -> httpx.Response:
        return await scim.post("/Groups", {"schemas": [CORE_GROUP], "displayName": "Same"})

    responses = await asyncio.gather(*(create() for _ in range(30)))
    assert sorted(r.status_code for r in responses) == [201] + [409] * 29
    assert {r.json()["scimType"] for r in responses if r.status_code == 409} == {"uniqueness"}
    assert await _identifiers(sessionmaker) == ["Same"]


async def test_parallel_scim_creates_of_names_with_one_identifier_get_numbered_identifiers(
    scim: ScimClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async def create(name: str) -> int:
        return (await scim.post("/Groups", {"schemas": [CORE_GROUP], "displayName": name})).status_code

    statuses = await asyncio.gather(*(create(name) for name in SAME_IDENTIFIER))
    assert statuses == [201] * len(SAME_IDENTIFIER)
    assert await _identifiers(sessionmaker) == _suffixed("TeamX_X", len(SAME_IDENTIFIER))


async def test_parallel_graphql_creates_of_names_with_one_identifier_get_numbered_identifiers(
    client: httpx.AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    gql = GraphQLClient(client, tenant)
    mutation = "mutation($n: String!) { createUserGroup(input: {name: $n}) { __typename ... on UserGroup { identifier } } }"

    results = await asyncio.gather(*(gql(mutation, n=name) for name in SAME_IDENTIFIER))
    assert [r["createUserGroup"]["__typename"] for r in results] == ["UserGroup"] * len(SAME_IDENTIFIER)
    expected = _suffixed("TeamX_X", len(SAME_IDENTIFIER))
    assert sorted(r["createUserGroup"]["identifier"] for r in results) == expected
    assert await _identifiers(sessionmaker) == expected


async def test_parallel_graphql_email_changes_to_one_address_leave_one_winner_and_the_rest_of_each_request_runs(
    client: httpx.AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    gql = GraphQLClient(client, tenant)
    create = 'mutation($e: String!) { createUser(input: {email: $e, name: "U"}) { ... on User { id } } }'
    ids = [(await gql(create, e=f"u{i}@x.com"))["createUser"]["id"] for i in range(6)]
    # A refused mutation undoes only itself: the next mutation of the same request still runs.
    both = (
        'mutation($u: ID!, $n: String!) { first: updateUser(input: {id: $u, email: "same@x.com"}) { __typename } '
        "second: createUserGroup(input: {name: $n}) { __typename } }"
    )
    results = await asyncio.gather(*(gql(both, u=uid, n=f"After {uid}") for uid in ids))
    assert sorted(r["first"]["__typename"] for r in results) == ["ConflictError"] * 5 + ["User"]
    assert [r["second"]["__typename"] for r in results] == ["UserGroup"] * len(ids)
    assert await _count(sessionmaker, User, User.user_name == "same@x.com") == 1
    assert await _count(sessionmaker, UserGroup) == len(ids)


async def test_parallel_creates_of_one_organization_and_project_leave_one_of_each(
    client: httpx.AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    gql = GraphQLClient(client, tenant)
    org = 'mutation { r: createOrganization(input: {identifier: "eng", name: "Eng"}) { __typename } }'
    results = await asyncio.gather(*(gql(org) for _ in range(6)))
    assert sorted(r["r"]["__typename"] for r in results) == ["ConflictError"] * 5 + ["Organization"]
    project = 'mutation { r: createProject(input: {orgIdentifier: "eng", identifier: "web", name: "Web"}) { __typename } }'
    results = await asyncio.gather(*(gql(project) for _ in range(6)))
    assert sorted(r["r"]["__typename"] for r in results) == ["ConflictError"] * 5 + ["Project"]
    assert await _count(sessionmaker, Organization) == await _count(sessionmaker, Project) == 1


async def test_parallel_scim_renames_of_groups_to_one_name_leave_one_winner(
    scim: ScimClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    group_ids = [str((await scim.create_group(f"G{i}"))["id"]) for i in range(6)]
    rename = [{"op": "replace", "path": "displayName", "value": "Same"}]
    responses = await asyncio.gather(*(scim.patch(f"/Groups/{gid}", rename) for gid in group_ids))
    assert sorted(r.status_code for r in responses) == [204] + [409] * 5
    assert await _count(sessionmaker, UserGroup, UserGroup.display_name == "Same") == 1


async def test_member_added_while_the_user_is_deleted_is_skipped(
    scim: ScimClient, sessionmaker: async_sessionmaker[AsyncSession], sqlstates: list[str]
) -> None:
    keep = str((await scim.create_user("keep@contoso.com"))["id"])
    doomed = [str((await scim.create_user(f"gone{i}@contoso.com"))["id"]) for i in range(12)]
    group = str((await scim.create_group("Engineering"))["id"])

    async def add(user_id: str) -> int:
        operations = [{"op": "add", "path": "members", "value": [{"value": user_id}, {"value": keep}]}]
        return (await scim.patch(f"/Groups/{group}", operations)).status_code

    async def delete(user_id: str) -> int:
        return (await scim.delete(f"/Users/{user_id}")).status_code

    statuses = await asyncio.gather(*(step for uid in doomed for step in (add(uid), delete(uid))))
    assert statuses == [204, 204] * len(doomed)
    assert "23503" not in sqlstates  # no foreign-key violation, not even one turned into something else
    assert await _count(sessionmaker, User, LIVE_USER) == 1
    async with sessionmaker() as session:
        assert list(await session.scalars(select(GroupMembership.user_id).where(GroupMembership.group_id == group))) == [keep]


async def _users_linked_by_manager(scim: ScimClient, n: int) -> list[str]:
    """`n` users in a ring of managers (each manages the next, the last manages the first), all in
    the same two groups: every delete has to touch rows another delete locks too."""
    ids = [str((await scim.create_user(f"ring{i}@contoso.com"))["id"]) for i in range(n)]
    for i, user_id in enumerate(ids):
        operations = [{"op": "add", "path": f"{ENTERPRISE}:manager", "value": {"value": ids[(i + 1) % n]}}]
        response = await scim.patch(f"/Users/{user_id}", operations)
        assert response.status_code == 200, response.text
    await scim.create_group("Alpha", members=[{"value": uid} for uid in ids])
    await scim.create_group("Beta", members=[{"value": uid} for uid in reversed(ids)])
    return ids


async def test_parallel_deletes_of_users_linked_by_manager_all_succeed_without_deadlock(
    scim: ScimClient, sessionmaker: async_sessionmaker[AsyncSession], sqlstates: list[str]
) -> None:
    ids = await _users_linked_by_manager(scim, 8)
    statuses = await asyncio.gather(*(scim.delete(f"/Users/{uid}") for uid in ids))
    assert [r.status_code for r in statuses] == [204] * len(ids)
    assert DEADLOCK not in sqlstates
    assert await _count(sessionmaker, User, LIVE_USER) == 0
    assert await _count(sessionmaker, GroupMembership) == 0
    async with sessionmaker() as session:
        versions = sorted(await session.scalars(select(UserGroup.version)))
    assert versions == [1 + len(ids)] * 2  # each delete moved both groups on once


async def test_parallel_graphql_deletes_of_users_linked_by_manager_all_succeed_without_deadlock(
    client: httpx.AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession], sqlstates: list[str]
) -> None:
    gql = GraphQLClient(client, tenant)
    create = 'mutation($e: String!) { createUser(input: {email: $e, name: "U"}) { ... on User { id } } }'
    ids = [(await gql(create, e=f"u{i}@x.com"))["createUser"]["id"] for i in range(8)]
    async with sessionmaker() as session, session.begin():
        for i, user_id in enumerate(ids):  # a ring of managers, as Entra would have synced it
            user = await session.get(User, (tenant.account_id, user_id))
            assert user is not None
            user.manager_id = ids[(i + 1) % len(ids)]
    group = "mutation($n: String!, $u: [ID!]) { createUserGroup(input: {name: $n, userIds: $u}) { __typename } }"
    await gql(group, n="Alpha", u=ids)
    await gql(group, n="Beta", u=list(reversed(ids)))

    delete = "mutation($u: ID!) { deleteUser(input: {id: $u}) { __typename } }"
    results = await asyncio.gather(*(gql(delete, u=uid) for uid in ids))
    assert [r["deleteUser"]["__typename"] for r in results] == ["DeletedUser"] * len(ids)
    assert DEADLOCK not in sqlstates
    assert await _count(sessionmaker, User, LIVE_USER) == 0


async def test_parallel_deletes_of_groups_and_users_beside_member_changes_never_deadlock(
    scim: ScimClient, sessionmaker: async_sessionmaker[AsyncSession], sqlstates: list[str]
) -> None:
    ids = [str((await scim.create_user(f"m{i}@contoso.com"))["id"]) for i in range(8)]
    group_ids = []
    for g in range(8):  # members joined in a different order in every other group
        members = [{"value": uid} for uid in (ids if g % 2 else reversed(ids))]
        group_ids.append(str((await scim.create_group(f"G{g}", members=members))["id"]))

    remove = [{"op": "remove", "path": "members", "value": [{"value": uid} for uid in ids[:4]]}]
    requests = []
    for n, (gid, uid) in enumerate(zip(group_ids, ids, strict=True)):
        replace = {"schemas": [CORE_GROUP], "displayName": f"Renamed {n}", "members": [{"value": u} for u in ids[2:]]}
        requests += [
            scim.patch(f"/Groups/{gid}", remove),
            scim.delete(f"/Users/{uid}"),
            scim.put(f"/Groups/{gid}", replace),
            scim.delete(f"/Groups/{gid}"),
        ]
    responses = await asyncio.gather(*requests)
    for response in responses:
        assert response.status_code in (200, 204, 404), response.text  # 404: the group or a member was gone first
    assert [r.status_code for r in responses if r.request.method == "DELETE"] == [204] * (len(ids) + len(group_ids))
    assert DEADLOCK not in sqlstates
    counts = [
        await _count(sessionmaker, UserGroup),
        await _count(sessionmaker, User, LIVE_USER),
        await _count(sessionmaker, GroupMembership),
    ]
    assert counts == [0, 0, 0]


async def test_parallel_patches_of_one_user_each_change_what_they_name_and_none_is_lost(scim: ScimClient) -> None:
    """Each PATCH reads the user it changes under a row lock, also when it reads the user's groups
    with it: a PATCH that read the user before another committed would write back the old values."""
    user = await scim.create_user("a@x")
    await scim.create_group("G", members=[{"value": user["id"]}])
    attributes = ["displayName", "nickName", "title", "userType", "locale", "timezone", "preferredLanguage", "profileUrl"]

    async def change(attribute: str) -> int:
        response = await scim.patch(f"/Users/{user['id']}", [{"op": "replace", "path": attribute, "value": f"https://x.test/{attribute}"}])
        return response.status_code

    assert set(await asyncio.gather(*(change(a) for a in attributes))) == {200}
    stored = (await scim.get(f"/Users/{user['id']}")).json()
    assert {a: stored.get(a) for a in attributes} == {a: f"https://x.test/{a}" for a in attributes}
    assert stored["meta"]["version"] == f'W/"{1 + len(attributes)}"'


async def test_a_row_that_must_not_be_waited_for_runs_the_transaction_again(
    scim: ScimClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """`lock_ids(…, without_waiting=True)`, as a user's deletion locks a group the user joined after
    its first pass: a row another transaction holds is Contention, which `run_transaction` runs
    again from the start (as for a deadlock, without waiting for PostgreSQL to detect one)."""
    group_id = str((await scim.create_group("Held"))["id"])
    held = UserGroup.id == group_id  # type: ignore[arg-type]
    attempts = 0

    async def lock_it(session: AsyncSession) -> list[Any]:
        nonlocal attempts
        attempts += 1
        return await lock_ids(session, UserGroup.id, held, without_waiting=True)

    async with sessionmaker() as holder, holder.begin():
        await lock_ids(holder, UserGroup.id, held)
        if holder.get_bind().dialect.name == "postgresql":
            with pytest.raises(Unavailable):  # held for every attempt
                await run_transaction(sessionmaker, lock_it)
            assert attempts == ATTEMPTS
    assert await run_transaction(sessionmaker, lock_it) == [group_id]


# --- member adds and removes that take the group's lock last (services.groups.change_members) ------


async def test_parallel_member_adds_into_one_group_each_move_its_version_on_once(
    scim: ScimClient, sessionmaker: async_sessionmaker[AsyncSession], sqlstates: list[str]
) -> None:
    """Entra's batches into one large group arrive at once: each lands, and the group's version
    counts every one of them — none read the version and wrote back the same next one."""
    group = await scim.create_group("Everyone")
    batches = [[str((await scim.create_user(f"b{b}u{i}@contoso.com"))["id"]) for i in range(5)] for b in range(8)]

    async def add(batch: list[str]) -> httpx.Response:
        return await scim.patch(f"/Groups/{group['id']}", [{"op": "Add", "path": "members", "value": [{"value": uid} for uid in batch]}])

    responses = await asyncio.gather(*(add(batch) for batch in batches))
    assert [r.status_code for r in responses] == [204] * len(batches)
    etags = sorted(int(r.headers["etag"].split('"')[1]) for r in responses)
    assert etags == list(range(2, 2 + len(batches)))  # one version each, after the create's 1
    stored = (await scim.get(f"/Groups/{group['id']}")).json()
    assert stored["meta"]["version"] == f'W/"{1 + len(batches)}"'
    assert sorted(m["value"] for m in stored["members"]) == sorted(uid for batch in batches for uid in batch)
    assert DEADLOCK not in sqlstates


async def test_a_member_add_does_not_hold_the_group_while_it_writes_its_memberships(
    scim: ScimClient, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another add into the same group, made while an add is writing its memberships, does not wait
    for it: the add holds the group against deletion only, and takes its lock with its last
    statement. Both land, and the version counts each."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one writer at a time: no write can come between a write's read and its write")
    first, second = [str((await scim.create_user(f"{n}@contoso.com"))["id"]) for n in ("first", "second")]
    group = await scim.create_group("Engineering")
    meanwhile: list[httpx.Response] = []
    add = groups._add

    async def add_with_another_meanwhile(session: AsyncSession, *args: Any, **kwargs: Any) -> Any:
        if not meanwhile:  # the first add only, not the one it makes meanwhile
            meanwhile.append(httpx.Response(0))
            operations = [{"op": "add", "path": "members", "value": [{"value": second}]}]
            # It would wait for this add, which waits for it, if this add held the group.
            meanwhile[0] = await asyncio.wait_for(scim.patch(f"/Groups/{group['id']}", operations), timeout=10)
        return await add(session, *args, **kwargs)

    monkeypatch.setattr(groups, "_add", add_with_another_meanwhile)
    response = await scim.patch(f"/Groups/{group['id']}", [{"op": "add", "path": "members", "value": [{"value": first}]}])
    assert [r.status_code for r in meanwhile] == [204]
    assert response.status_code == 204, response.text
    assert (meanwhile[0].headers["etag"], response.headers["etag"]) == ('W/"2"', 'W/"3"')
    stored = (await scim.get(f"/Groups/{group['id']}")).json()
    assert sorted(m["value"] for m in stored["members"]) == sorted([first, second])


async def test_a_member_add_to_a_group_taken_from_the_identity_provider_meanwhile_is_404_and_adds_nothing(
    scim: ScimClient, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The group stops being the identity provider's (an admin released it) after the add read it:
    the add's last statement, which finds the group as SCIM sees it, finds none, and the
    memberships it wrote are not kept."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one writer at a time: no write can come between a write's read and its write")
    user = str((await scim.create_user("late@contoso.com"))["id"])
    group = await scim.create_group("Released")
    add = groups._add

    async def add_after_release(session: AsyncSession, *args: Any, **kwargs: Any) -> Any:
        async with sessionmaker() as other, other.begin():
            await other.execute(update(UserGroup).where(UserGroup.id == group["id"]).values(managed_by=ManagedBy.MANAGER.value))  # type: ignore[arg-type]
        return await add(session, *args, **kwargs)

    monkeypatch.setattr(groups, "_add", add_after_release)
    response = await scim.patch(f"/Groups/{group['id']}", [{"op": "add", "path": "members", "value": [{"value": user}]}])
    assert response.status_code == 404, response.text
    assert await _count(sessionmaker, GroupMembership, GroupMembership.group_id == group["id"]) == 0  # type: ignore[arg-type]


async def test_a_member_remove_and_the_deletion_of_that_member_at_once_never_deadlock(
    scim: ScimClient, sessionmaker: async_sessionmaker[AsyncSession], sqlstates: list[str]
) -> None:
    """The identity provider removes users from a group as it deletes them. The deletion locks the
    user's groups FOR UPDATE, which waits for a remove that holds the group FOR KEY SHARE; taken FOR
    NO KEY UPDATE, it went on to the memberships the remove held while the remove waited for the
    group: a deadlock."""
    ids = [str((await scim.create_user(f"leaver{i}@contoso.com"))["id"]) for i in range(10)]
    group = await scim.create_group("Leavers", members=[{"value": uid} for uid in ids])

    async def remove(user_id: str) -> int:
        operations = [{"op": "remove", "path": f'members[value eq "{user_id}"]'}]
        return (await scim.patch(f"/Groups/{group['id']}", operations)).status_code

    async def delete(user_id: str) -> int:
        return (await scim.delete(f"/Users/{user_id}")).status_code

    statuses = await asyncio.gather(*(step for uid in ids for step in (remove(uid), delete(uid))))
    assert statuses == [204, 204] * len(ids)
    assert DEADLOCK not in sqlstates
    assert await _count(sessionmaker, GroupMembership, GroupMembership.group_id == group["id"]) == 0  # type: ignore[arg-type]
