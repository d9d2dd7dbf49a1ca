"""`user_counts`: how many users each account has, kept by triggers on `users`, so that a list of
users with its total reads a few rows instead of counting every user of the account (at 100,000
users that count was most of a list request's cost).

PostgreSQL counts per statement (transition tables, so a bulk load is one update), into the slot of
the connection's backend; a delete that is part of deleting the account changes nothing (the
account's counts go with it). SQLite counts per row, in slot 0.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SLOTS = 16  # app.db.models.USER_COUNT_SLOTS when this revision was written

POSTGRESQL = (
    f"""
CREATE FUNCTION user_counts_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO user_counts AS c (account_id, slot, users)
    SELECT account_id, pg_backend_pid() % {SLOTS}, count(*) FROM inserted GROUP BY account_id
    ON CONFLICT (account_id, slot) DO UPDATE SET users = c.users + excluded.users;
    RETURN NULL;
END $$
""",
    f"""
CREATE FUNCTION user_counts_remove() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO user_counts AS c (account_id, slot, users)
    SELECT d.account_id, pg_backend_pid() % {SLOTS}, -count(*) FROM deleted AS d
    WHERE EXISTS (SELECT 1 FROM accounts AS a WHERE a.id = d.account_id)
    GROUP BY d.account_id
    ON CONFLICT (account_id, slot) DO UPDATE SET users = c.users + excluded.users;
    RETURN NULL;
END $$
""",
    "CREATE TRIGGER users_counted_on_insert AFTER INSERT ON users REFERENCING NEW TABLE AS inserted"
    " FOR EACH STATEMENT EXECUTE FUNCTION user_counts_add()",
    "CREATE TRIGGER users_counted_on_delete AFTER DELETE ON users REFERENCING OLD TABLE AS deleted"
    " FOR EACH STATEMENT EXECUTE FUNCTION user_counts_remove()",
)
SQLITE = (
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
    op.create_table(
        "user_counts",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("users", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_user_counts_account_id_accounts"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("account_id", "slot", name=op.f("pk_user_counts")),
    )
    op.execute("INSERT INTO user_counts (account_id, slot, users) SELECT account_id, 0, count(*) FROM users GROUP BY account_id")
    for statement in POSTGRESQL if op.get_bind().dialect.name == "postgresql" else SQLITE:
        op.execute(statement)


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for trigger in ("users_counted_on_delete", "users_counted_on_insert"):
        op.execute(f"DROP TRIGGER {trigger} ON users" if postgresql else f"DROP TRIGGER {trigger}")
    if postgresql:
        op.execute("DROP FUNCTION user_counts_remove()")
        op.execute("DROP FUNCTION user_counts_add()")
    op.drop_table("user_counts")
