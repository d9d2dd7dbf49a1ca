"""Reversible deprovisioning: a user deleted over SCIM is kept as a tombstone
(`users.deprovisioned_at`, and the native groups they were in, `users.deprovisioned_groups`) for the
account's `deprovision_retention_days` (30 by default), so that the identity provider provisioning
them again brings back the same id. Tombstones are not counted in `user_counts`: the triggers of
0006 now count only users without `deprovisioned_at`, and a third one follows a user becoming a
tombstone or being restored.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SLOTS = 16  # app.db.models.USER_COUNT_SLOTS when this revision was written
INDEX = "ix_users_account_id_deprovisioned_at"

POSTGRESQL_UP = (
    f"""
CREATE OR REPLACE FUNCTION user_counts_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO user_counts AS c (account_id, slot, users)
    SELECT account_id, pg_backend_pid() % {SLOTS}, count(*) FROM inserted WHERE deprovisioned_at IS NULL GROUP BY account_id
    ON CONFLICT (account_id, slot) DO UPDATE SET users = c.users + excluded.users;
    RETURN NULL;
END $$
""",
    f"""
CREATE OR REPLACE FUNCTION user_counts_remove() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO user_counts AS c (account_id, slot, users)
    SELECT d.account_id, pg_backend_pid() % {SLOTS}, -count(*) FROM deleted AS d
    WHERE d.deprovisioned_at IS NULL AND EXISTS (SELECT 1 FROM accounts AS a WHERE a.id = d.account_id)
    GROUP BY d.account_id
    ON CONFLICT (account_id, slot) DO UPDATE SET users = c.users + excluded.users;
    RETURN NULL;
END $$
""",
    f"""
CREATE FUNCTION user_counts_deprovision() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (OLD.deprovisioned_at IS NULL) <> (NEW.deprovisioned_at IS NULL) THEN
        INSERT INTO user_counts AS c (account_id, slot, users)
        VALUES (NEW.account_id, pg_backend_pid() % {SLOTS}, CASE WHEN NEW.deprovisioned_at IS NULL THEN 1 ELSE -1 END)
        ON CONFLICT (account_id, slot) DO UPDATE SET users = c.users + excluded.users;
    END IF;
    RETURN NULL;
END $$
""",
    # Per row and only when the column is written: an ordinary update of a user never runs it.
    "CREATE TRIGGER users_counted_on_deprovision AFTER UPDATE OF deprovisioned_at ON users"
    " FOR EACH ROW EXECUTE FUNCTION user_counts_deprovision()",
)
POSTGRESQL_DOWN = (
    "DROP TRIGGER users_counted_on_deprovision ON users",
    "DROP FUNCTION user_counts_deprovision()",
    f"""
CREATE OR REPLACE FUNCTION user_counts_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO user_counts AS c (account_id, slot, users)
    SELECT account_id, pg_backend_pid() % {SLOTS}, count(*) FROM inserted GROUP BY account_id
    ON CONFLICT (account_id, slot) DO UPDATE SET users = c.users + excluded.users;
    RETURN NULL;
END $$
""",
    f"""
CREATE OR REPLACE FUNCTION user_counts_remove() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO user_counts AS c (account_id, slot, users)
    SELECT d.account_id, pg_backend_pid() % {SLOTS}, -count(*) FROM deleted AS d
    WHERE EXISTS (SELECT 1 FROM accounts AS a WHERE a.id = d.account_id)
    GROUP BY d.account_id
    ON CONFLICT (account_id, slot) DO UPDATE SET users = c.users + excluded.users;
    RETURN NULL;
END $$
""",
)
SQLITE_TRIGGERS = ("users_counted_on_insert", "users_counted_on_delete")
SQLITE_UP = (
    """
CREATE TRIGGER users_counted_on_insert AFTER INSERT ON users WHEN NEW.deprovisioned_at IS NULL BEGIN
    INSERT INTO user_counts (account_id, slot, users) VALUES (NEW.account_id, 0, 1)
    ON CONFLICT (account_id, slot) DO UPDATE SET users = users + 1;
END
""",
    """
CREATE TRIGGER users_counted_on_delete AFTER DELETE ON users WHEN OLD.deprovisioned_at IS NULL BEGIN
    UPDATE user_counts SET users = users - 1 WHERE account_id = OLD.account_id AND slot = 0;
END
""",
    """
CREATE TRIGGER users_counted_on_deprovision AFTER UPDATE OF deprovisioned_at ON users
WHEN (OLD.deprovisioned_at IS NULL) <> (NEW.deprovisioned_at IS NULL) BEGIN
    INSERT INTO user_counts (account_id, slot, users)
    VALUES (NEW.account_id, 0, CASE WHEN NEW.deprovisioned_at IS NULL THEN 1 ELSE -1 END)
    ON CONFLICT (account_id, slot) DO UPDATE SET users = users + excluded.users;
END
""",
)
SQLITE_DOWN = (
    """
CREATE TRIGGER users_counted_on_insert AFTER INSERT ON users BEGIN
    INSERT INTO user_counts (account_id, slot, users) VALUES (NEW.account_id, 0, 1)
    ON CONFLICT (account_id, slot) DO UPDATE SET users = users + 1;
END
""",
    """
CREATE TRIGGER users_counted_on_delete AFTER DELETE ON users BEGIN
    UPDATE user_counts SET users = users - 1 WHERE account_id = OLD.account_id AND slot = 0;
END
""",
)


def upgrade() -> None:
    op.add_column("accounts", sa.Column("deprovision_retention_days", sa.Integer(), nullable=False, server_default="30"))
    op.add_column("users", sa.Column("deprovisioned_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("users", sa.Column("deprovisioned_groups", sa.JSON(), nullable=True))
    tombstones = sa.text("deprovisioned_at IS NOT NULL")
    op.create_index(INDEX, "users", ["account_id", "deprovisioned_at"], postgresql_where=tombstones, sqlite_where=tombstones)
    if op.get_bind().dialect.name == "postgresql":
        for statement in POSTGRESQL_UP:
            op.execute(statement)
        return
    for trigger in SQLITE_TRIGGERS:
        op.execute(f"DROP TRIGGER {trigger}")
    for statement in SQLITE_UP:
        op.execute(statement)


def downgrade() -> None:
    # Tombstones are users that no longer exist: they go, with what they held.
    op.execute("DELETE FROM users WHERE deprovisioned_at IS NOT NULL")
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        for statement in POSTGRESQL_DOWN:
            op.execute(statement)
    else:
        for trigger in (*SQLITE_TRIGGERS, "users_counted_on_deprovision"):
            op.execute(f"DROP TRIGGER {trigger}")
    op.drop_index(INDEX, table_name="users")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("deprovisioned_groups")
        batch.drop_column("deprovisioned_at")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("deprovision_retention_days")
    if not postgresql:
        # After the batch: on SQLite it rebuilds `users`, which drops the table's triggers.
        for statement in SQLITE_DOWN:
            op.execute(statement)
