"""`group_member_counts`: how many members each group has, kept by triggers on `group_memberships`,
so that a group's memberCount reads a few rows instead of counting its memberships (at 100,000
members that count took PostgreSQL about 30 ms, on every page of groups that showed the group).

As `user_counts` (0006): PostgreSQL counts per statement (transition tables), into the slot of the
connection's backend, the groups in id order (the order the services lock groups in); a membership
deleted with its group changes nothing (the group's counts go with it). SQLite counts per row, in
slot 0.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SLOTS = 16  # app.db.models.GROUP_MEMBER_COUNT_SLOTS when this revision was written

POSTGRESQL = (
    f"""
CREATE FUNCTION group_member_counts_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO group_member_counts AS c (account_id, group_id, slot, members)
    SELECT account_id, group_id, pg_backend_pid() % {SLOTS}, count(*) FROM inserted
    GROUP BY account_id, group_id ORDER BY account_id, group_id
    ON CONFLICT (account_id, group_id, slot) DO UPDATE SET members = c.members + excluded.members;
    RETURN NULL;
END $$
""",
    f"""
CREATE FUNCTION group_member_counts_remove() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO group_member_counts AS c (account_id, group_id, slot, members)
    SELECT d.account_id, d.group_id, pg_backend_pid() % {SLOTS}, -count(*) FROM deleted AS d
    WHERE EXISTS (SELECT 1 FROM user_groups AS g WHERE g.account_id = d.account_id AND g.id = d.group_id)
    GROUP BY d.account_id, d.group_id ORDER BY d.account_id, d.group_id
    ON CONFLICT (account_id, group_id, slot) DO UPDATE SET members = c.members + excluded.members;
    RETURN NULL;
END $$
""",
    "CREATE TRIGGER group_memberships_counted_on_insert AFTER INSERT ON group_memberships REFERENCING NEW TABLE AS inserted"
    " FOR EACH STATEMENT EXECUTE FUNCTION group_member_counts_add()",
    "CREATE TRIGGER group_memberships_counted_on_delete AFTER DELETE ON group_memberships REFERENCING OLD TABLE AS deleted"
    " FOR EACH STATEMENT EXECUTE FUNCTION group_member_counts_remove()",
)
SQLITE = (
    """
CREATE TRIGGER group_memberships_counted_on_insert AFTER INSERT ON group_memberships BEGIN
    INSERT INTO group_member_counts (account_id, group_id, slot, members) VALUES (NEW.account_id, NEW.group_id, 0, 1)
    ON CONFLICT (account_id, group_id, slot) DO UPDATE SET members = members + 1;
END
""",
    """
CREATE TRIGGER group_memberships_counted_on_delete AFTER DELETE ON group_memberships BEGIN
    UPDATE group_member_counts SET members = members - 1
    WHERE account_id = OLD.account_id AND group_id = OLD.group_id AND slot = 0;
END
""",
)
TRIGGERS = ("group_memberships_counted_on_delete", "group_memberships_counted_on_insert")


def upgrade() -> None:
    op.create_table(
        "group_member_counts",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.String(length=36), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("members", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id", "group_id"],
            ["user_groups.account_id", "user_groups.id"],
            name=op.f("fk_group_member_counts_account_id_group_id_user_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "group_id", "slot", name=op.f("pk_group_member_counts")),
    )
    op.execute(
        "INSERT INTO group_member_counts (account_id, group_id, slot, members)"
        " SELECT account_id, group_id, 0, count(*) FROM group_memberships GROUP BY account_id, group_id"
    )
    for statement in POSTGRESQL if op.get_bind().dialect.name == "postgresql" else SQLITE:
        op.execute(statement)


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for trigger in TRIGGERS:
        op.execute(f"DROP TRIGGER {trigger} ON group_memberships" if postgresql else f"DROP TRIGGER {trigger}")
    if postgresql:
        op.execute("DROP FUNCTION group_member_counts_remove()")
        op.execute("DROP FUNCTION group_member_counts_add()")
    op.drop_table("group_member_counts")
