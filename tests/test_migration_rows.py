"""Migrations keep the rows that are there (written as the schema of revision 0004 holds them).
SQLite alters a table by copying it and dropping the original; with foreign keys enforced, that drop
deleted every membership and attribute row of the users (ON DELETE CASCADE)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db import migrate
from app.db.engine import create_engine

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ROWS = [
    "INSERT INTO accounts (id, identifier, name, created_at) VALUES (901, 'migrating', 'M', :now)",
    "INSERT INTO users (id, account_id, user_name, user_name_ci, email, email_ci, active, multi_valued, "
    "provisioned_by, created_at, updated_at, version)"
    " VALUES ('u-901', 901, :name, :name_ci, :email, :email_ci, TRUE, '{}', 'SCIM', :now, :now, 1)",
    "INSERT INTO user_attribute_values (user_id, attribute, value_ci, is_primary, data) VALUES ('u-901', 'emails', 'a@x.io', TRUE, '{}')",
    "INSERT INTO user_attribute_values (user_id, attribute, value_ci, is_primary, data) VALUES ('u-901', 'phoneNumbers', '1', FALSE, '{}')",
    "INSERT INTO user_groups (id, account_id, scope, identifier, display_name, display_name_ci, "
    "managed_by, created_at, updated_at, version)"
    " VALUES ('g-901', 901, '', 'g', :group, :group_ci, 'IDENTITY_PROVIDER', :now, :now, 1)",
    "INSERT INTO group_memberships (group_id, user_id, added_via, created_at) VALUES ('g-901', 'u-901', 'SCIM', :now)",
]
VALUES: dict[str, Any] = {
    "now": NOW,
    "name": "İ" * 200,
    "name_ci": "İ" * 200,
    "email": "a@x.io",
    "email_ci": "a@x.io",
    "group": "G",
    "group_ci": "g",
}


def _with_connection(url: str, work: Callable[[AsyncConnection], Awaitable[Any]]) -> Any:
    async def run() -> Any:
        engine = create_engine(url)
        try:
            async with engine.begin() as connection:
                return await work(connection)
        finally:
            await engine.dispose()

    return asyncio.run(run())


async def _insert(connection: AsyncConnection, values: dict[str, Any]) -> None:
    for statement in ROWS:
        await connection.execute(text(statement), values)


async def _counts(connection: AsyncConnection) -> tuple[int, ...]:
    tables = ("users", "user_attribute_values", "user_groups", "group_memberships")
    return tuple(
        [
            (await connection.execute(text(f"SELECT count(*) FROM {t} WHERE {t}.{c} = :id"), {"id": i})).scalar_one()
            for t, c, i in zip(tables, ("account_id", "user_id", "account_id", "user_id"), (901, "u-901", 901, "u-901"), strict=True)
        ]
    )


def test_upgrading_sqlite_keeps_memberships_and_attribute_rows(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'upgrade.db'}"
    migrate.upgrade(url, "0001")
    _with_connection(url, lambda c: _insert(c, VALUES))
    migrate.upgrade(url)
    assert _with_connection(url, _counts) == (1, 2, 1, 1)


def test_widened_lowered_copies_round_trip_with_rows_in_place(database_url: str) -> None:
    """Up to the wide copies, store one that needs them, down (the copy is cut to fit), up again."""
    wide = {
        **VALUES,
        "name_ci": ("İ" * 200).lower(),
        "email": "İ" * 300 + "@x.io",
        "email_ci": ("İ" * 300 + "@x.io").lower(),
        "group": "İ" * 256,
        "group_ci": ("İ" * 256).lower(),
    }
    try:
        migrate.downgrade(database_url, "0004")
        _with_connection(database_url, lambda c: _insert(c, wide))
        migrate.downgrade(database_url, "0002")
        assert _with_connection(database_url, _counts) == (1, 2, 1, 1)
        cut = _with_connection(database_url, lambda c: c.execute(text("SELECT user_name_ci, email_ci FROM users WHERE id = 'u-901'")))
        assert cut.one() == (wide["name_ci"][:256], wide["email_ci"][:320])
        migrate.upgrade(database_url)
        assert _with_connection(database_url, _counts) == (1, 2, 1, 1)
    finally:
        migrate.upgrade(database_url)
        _with_connection(database_url, lambda c: c.execute(text("DELETE FROM accounts WHERE id = 901")))


def test_account_keys_are_filled_in_and_taken_out_with_rows_in_place(database_url: str) -> None:
    """0005 gives memberships and attribute rows their user's account and numbers a user's attribute
    rows; going back gives them integer ids again. No row is lost either way."""
    keyed = "SELECT account_id, user_id, position, attribute FROM user_attribute_values WHERE user_id = 'u-901' ORDER BY position"
    try:
        migrate.downgrade(database_url, "0004")
        _with_connection(database_url, lambda c: _insert(c, VALUES))
        migrate.upgrade(database_url, "0005")
        assert _with_connection(database_url, _counts) == (1, 2, 1, 1)
        assert _with_connection(database_url, lambda c: c.execute(text(keyed))).all() == [
            (901, "u-901", 0, "emails"),
            (901, "u-901", 1, "phoneNumbers"),
        ]
        member = "SELECT account_id FROM group_memberships WHERE user_id = 'u-901'"
        assert _with_connection(database_url, lambda c: c.execute(text(member))).scalar_one() == 901
        migrate.downgrade(database_url, "0004")
        assert _with_connection(database_url, _counts) == (1, 2, 1, 1)
        numbered = "SELECT count(DISTINCT id) FROM user_attribute_values WHERE user_id = 'u-901' AND id IS NOT NULL"
        assert _with_connection(database_url, lambda c: c.execute(text(numbered))).scalar_one() == 2
    finally:
        migrate.upgrade(database_url)
        _with_connection(database_url, lambda c: c.execute(text("DELETE FROM accounts WHERE id = 901")))


def test_tombstones_and_extension_rows_go_on_the_way_down_and_counts_keep_working(database_url: str) -> None:
    """Going below 0007 deletes tombstones (users that no longer exist) and the index rows of custom
    extension attributes (their names outgrow 0008's column); the live user stays, and the user counts
    the triggers keep stay right on the way down and up again (SQLite rebuilds `users`, and with it
    its triggers)."""
    urn_key = "urn:ietf:params:scim:schemas:extension:customextensionname:2.0:user:costcode"
    at_head = [
        "INSERT INTO users (id, account_id, user_name, user_name_ci, active, multi_valued, provisioned_by, created_at,"
        " updated_at, version, deprovisioned_at) VALUES ('u-902', 901, 'gone', 'gone', TRUE, '{}', 'SCIM', :now, :now, 2, :now)",
        "INSERT INTO user_attribute_values (account_id, user_id, position, attribute, value_ci, is_primary, data)"
        f" VALUES (901, 'u-901', 2, '{urn_key}', 'cc-1', FALSE, '{{}}')",
    ]
    counted = "SELECT coalesce(sum(users), 0) FROM user_counts WHERE account_id = 901"
    users = "SELECT id FROM users WHERE account_id = 901 ORDER BY id"

    async def add_at_head(connection: AsyncConnection) -> None:
        for statement in at_head:
            await connection.execute(text(statement), VALUES)

    async def one_more(connection: AsyncConnection) -> None:
        await connection.execute(
            text(
                "INSERT INTO users (id, account_id, user_name, user_name_ci, active, multi_valued, provisioned_by, created_at,"
                " updated_at, version) VALUES ('u-903', 901, 'new', 'new', TRUE, '{}', 'SCIM', :now, :now, 1)"
            ),
            VALUES,
        )

    try:
        migrate.downgrade(database_url, "0004")
        _with_connection(database_url, lambda c: _insert(c, VALUES))
        migrate.upgrade(database_url)
        _with_connection(database_url, add_at_head)
        assert _with_connection(database_url, lambda c: c.execute(text(counted))).scalar_one() == 1  # the tombstone is not counted
        migrate.downgrade(database_url, "0006")
        assert _with_connection(database_url, lambda c: c.execute(text(users))).scalars().all() == ["u-901"]
        assert _with_connection(database_url, _counts) == (1, 2, 1, 1)
        _with_connection(database_url, one_more)
        assert _with_connection(database_url, lambda c: c.execute(text(counted))).scalar_one() == 2
        migrate.upgrade(database_url)
        _with_connection(database_url, lambda c: c.execute(text("DELETE FROM users WHERE id = 'u-903'")))
        assert _with_connection(database_url, lambda c: c.execute(text(counted))).scalar_one() == 1
    finally:
        migrate.upgrade(database_url)
        _with_connection(database_url, lambda c: c.execute(text("DELETE FROM accounts WHERE id = 901")))


def test_existing_tokens_and_data_get_no_integration_and_same_named_groups_survive_the_way_down(database_url: str) -> None:
    """0010 gives the tokens, users and groups already there no app integration: they behave as
    before (an unbound token sees every identity-provider group). Going back below it, where an
    identity-provider group's name is unique in the account, the second of two integrations'
    same-named groups becomes native rather than being lost."""
    token = (
        "INSERT INTO api_tokens (account_id, token_id, name, secret_hash, permissions, created_at)"
        " VALUES (901, 't-901', 'old', 'x', '[\"admin\"]', :now)"
    )
    provenance = (
        "SELECT (SELECT app_integration_id FROM api_tokens WHERE token_id = 't-901'),"
        " (SELECT app_integration_id FROM users WHERE id = 'u-901'), (SELECT app_integration_id FROM user_groups WHERE id = 'g-901')"
    )
    at_head = [
        "INSERT INTO app_integrations (account_id, id, name, name_ci, generation, provider, status, created_at)"
        " VALUES (901, 'i-901', 'Okta', 'okta', 'NEXTGEN', 'Okta', 'ACTIVE', :now)",
        "INSERT INTO user_groups (id, account_id, scope, identifier, display_name, display_name_ci, managed_by, created_at,"
        " updated_at, version, app_integration_id)"
        " VALUES ('g-902', 901, '', 'g_2', :group, :group_ci, 'IDENTITY_PROVIDER', :now, :now, 1, 'i-901')",
        "INSERT INTO user_assignments (account_id, user_id, integration_id, assigned_at) VALUES (901, 'u-901', 'i-901', :now)",
    ]
    managed = "SELECT id, managed_by FROM user_groups WHERE account_id = 901 ORDER BY id"

    async def insert(connection: AsyncConnection, statements: list[str]) -> None:
        for statement in statements:
            await connection.execute(text(statement), VALUES)

    try:
        migrate.downgrade(database_url, "0004")
        _with_connection(database_url, lambda c: _insert(c, VALUES))
        migrate.upgrade(database_url, "0009")
        _with_connection(database_url, lambda c: insert(c, [token]))
        migrate.upgrade(database_url)
        assert tuple(_with_connection(database_url, lambda c: c.execute(text(provenance))).one()) == (None, None, None)
        _with_connection(database_url, lambda c: insert(c, at_head))
        migrate.downgrade(database_url, "0009")
        groups = _with_connection(database_url, lambda c: c.execute(text(managed))).all()
        assert [tuple(g) for g in groups] == [("g-901", "IDENTITY_PROVIDER"), ("g-902", "MANAGER")]
        assert _with_connection(database_url, _counts) == (1, 2, 2, 1)  # users, attribute rows, groups, memberships
    finally:
        migrate.upgrade(database_url)
        _with_connection(database_url, lambda c: c.execute(text("DELETE FROM accounts WHERE id = 901")))


def test_events_already_there_each_stand_for_one_request(database_url: str) -> None:
    """0012 counts the requests a record stands for; every event before it is one."""
    event = (
        "INSERT INTO audit_events (account_id, occurred_at, caller, channel, action, resource_type, outcome, detail, status)"
        " VALUES (901, :now, 't', 'SCIM', 'scim.request', 'User', 'READ', '{}', 200)"
    )
    try:
        migrate.downgrade(database_url, "0011")
        _with_connection(database_url, lambda c: c.execute(text(ROWS[0]), VALUES))
        _with_connection(database_url, lambda c: c.execute(text(event), VALUES))
        migrate.upgrade(database_url)
        counted = "SELECT requests FROM audit_events WHERE account_id = 901"
        assert _with_connection(database_url, lambda c: c.execute(text(counted))).scalars().all() == [1]
    finally:
        migrate.upgrade(database_url)
        _with_connection(database_url, lambda c: c.execute(text("DELETE FROM accounts WHERE id = 901")))


def test_member_counts_are_filled_in_for_the_memberships_there_and_kept_after(database_url: str) -> None:
    """0014 counts each group's memberships already there; from then on its triggers keep the count,
    and going back below it and up again counts them afresh."""
    kept = "SELECT coalesce(sum(members), 0) FROM group_member_counts WHERE account_id = 901 AND group_id = 'g-901'"
    second = [
        "INSERT INTO users (id, account_id, user_name, user_name_ci, active, multi_valued, provisioned_by, created_at,"
        " updated_at, version) VALUES ('u-904', 901, 'second', 'second', TRUE, '{}', 'SCIM', :now, :now, 1)",
        "INSERT INTO group_memberships (account_id, group_id, user_id, added_via, created_at) VALUES (901, 'g-901', 'u-904', 'SCIM', :now)",
    ]

    async def add_second(connection: AsyncConnection) -> None:
        for statement in second:
            await connection.execute(text(statement), VALUES)

    def count() -> int:
        return int(_with_connection(database_url, lambda c: c.execute(text(kept))).scalar_one())

    try:
        migrate.downgrade(database_url, "0004")
        _with_connection(database_url, lambda c: _insert(c, VALUES))
        migrate.upgrade(database_url, "0013")
        _with_connection(database_url, add_second)
        migrate.upgrade(database_url)
        assert count() == 2
        _with_connection(database_url, lambda c: c.execute(text("DELETE FROM users WHERE id = 'u-904'")))
        assert count() == 1
        migrate.downgrade(database_url, "0013")
        _with_connection(database_url, add_second)
        migrate.upgrade(database_url)
        assert count() == 2
    finally:
        migrate.upgrade(database_url)
        _with_connection(database_url, lambda c: c.execute(text("DELETE FROM accounts WHERE id = 901")))
