"""`account_id` leads the keys of every table that belongs to an account: the primary key, each
unique constraint and each foreign key. `group_memberships` and `user_attribute_values` gain the
column (filled in from their user); the integer ids that nothing referred to give way to the natural
keys (organizations, projects, tokens) or to a position (a user's attribute rows).

It is the shape distributing the tables by account needs (docs/scaling.md), and it keeps each
account's rows together in every index. SQLite, which is never distributed, keeps `audit_events.id`
as its whole primary key: that is the only kind of column it counts up.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CASCADE = {"ondelete": "CASCADE"}

# Foreign keys that reference a key this migration replaces: (table, name, columns, referred table,
# referred columns), before and after. PostgreSQL ties a foreign key to the exact key it references,
# so these are dropped before the keys change and made again after.
FOREIGN_KEYS_BEFORE = (
    ("group_memberships", "fk_group_memberships_group_id_user_groups", ["group_id"], "user_groups", ["id"]),
    ("group_memberships", "fk_group_memberships_user_id_users", ["user_id"], "users", ["id"]),
    ("user_attribute_values", "fk_user_attribute_values_user_id_users", ["user_id"], "users", ["id"]),
    (
        "projects",
        "fk_projects_account_id_org_identifier_organizations",
        ["account_id", "org_identifier"],
        "organizations",
        ["account_id", "identifier"],
    ),
    (
        "user_groups",
        "fk_user_groups_account_id_org_identifier_organizations",
        ["account_id", "org_identifier"],
        "organizations",
        ["account_id", "identifier"],
    ),
    (
        "user_groups",
        "fk_user_groups_account_id_org_identifier_project_identifier_projects",
        ["account_id", "org_identifier", "project_identifier"],
        "projects",
        ["account_id", "org_identifier", "identifier"],
    ),
)
FOREIGN_KEYS_AFTER = (
    (
        "group_memberships",
        "fk_group_memberships_account_id_group_id_user_groups",
        ["account_id", "group_id"],
        "user_groups",
        ["account_id", "id"],
    ),
    ("group_memberships", "fk_group_memberships_account_id_user_id_users", ["account_id", "user_id"], "users", ["account_id", "id"]),
    (
        "user_attribute_values",
        "fk_user_attribute_values_account_id_user_id_users",
        ["account_id", "user_id"],
        "users",
        ["account_id", "id"],
    ),
    *FOREIGN_KEYS_BEFORE[3:],
)


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _drop_foreign_keys(keys: Sequence[tuple[str, str, list[str], str, list[str]]]) -> None:
    for table, name, *_ in keys:
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_constraint(op.f(name), type_="foreignkey")


def _create_foreign_keys(keys: Sequence[tuple[str, str, list[str], str, list[str]]]) -> None:
    for table, name, columns, referred, referred_columns in keys:
        with op.batch_alter_table(table) as batch_op:
            batch_op.create_foreign_key(op.f(name), referred, columns, referred_columns, **CASCADE)


def _set_primary_key(batch_op: object, table: str, columns: list[str]) -> None:
    batch_op.drop_constraint(f"pk_{table}", type_="primary")  # type: ignore[attr-defined]
    batch_op.create_primary_key(f"pk_{table}", columns)  # type: ignore[attr-defined]


def upgrade() -> None:
    postgresql = _postgresql()
    for table in ("group_memberships", "user_attribute_values"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(sa.Column("account_id", sa.Integer(), nullable=True))
        op.execute(f"UPDATE {table} SET account_id = (SELECT users.account_id FROM users WHERE users.id = {table}.user_id)")
    with op.batch_alter_table("user_attribute_values") as batch_op:
        batch_op.add_column(sa.Column("position", sa.Integer(), nullable=True))
    op.execute(
        "UPDATE user_attribute_values SET position = (SELECT count(*) FROM user_attribute_values AS earlier"
        " WHERE earlier.user_id = user_attribute_values.user_id AND earlier.id < user_attribute_values.id)"
    )
    if postgresql:
        _drop_foreign_keys(FOREIGN_KEYS_BEFORE)

    for table in ("users", "user_groups"):
        with op.batch_alter_table(table) as batch_op:
            _set_primary_key(batch_op, table, ["account_id", "id"])
    with op.batch_alter_table("organizations") as batch_op:
        batch_op.drop_constraint("uq_organizations_account_id_identifier", type_="unique")
        _set_primary_key(batch_op, "organizations", ["account_id", "identifier"])
        batch_op.drop_column("id")
    with op.batch_alter_table("projects") as batch_op:
        batch_op.drop_constraint("uq_projects_account_id_org_identifier_identifier", type_="unique")
        _set_primary_key(batch_op, "projects", ["account_id", "org_identifier", "identifier"])
        batch_op.drop_column("id")
    with op.batch_alter_table("api_tokens") as batch_op:
        batch_op.drop_index("ix_api_tokens_account_id")
        batch_op.drop_constraint("uq_api_tokens_token_id", type_="unique")
        _set_primary_key(batch_op, "api_tokens", ["account_id", "token_id"])
        batch_op.drop_column("id")
    with op.batch_alter_table("group_memberships") as batch_op:
        batch_op.alter_column("account_id", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_index("ix_group_memberships_user_id")
        if not postgresql:
            batch_op.drop_constraint("fk_group_memberships_group_id_user_groups", type_="foreignkey")
            batch_op.drop_constraint("fk_group_memberships_user_id_users", type_="foreignkey")
        _set_primary_key(batch_op, "group_memberships", ["account_id", "group_id", "user_id"])
        batch_op.create_index("ix_group_memberships_account_id_user_id", ["account_id", "user_id"])
    with op.batch_alter_table("user_attribute_values") as batch_op:
        batch_op.alter_column("account_id", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column("position", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_index("ix_user_attribute_values_attribute_value_ci")
        batch_op.drop_index("ix_user_attribute_values_user_id")
        if not postgresql:
            batch_op.drop_constraint("fk_user_attribute_values_user_id_users", type_="foreignkey")
        _set_primary_key(batch_op, "user_attribute_values", ["account_id", "user_id", "position"])
        batch_op.drop_column("id")
        batch_op.create_index("ix_user_attribute_values_account_id_attribute_value_ci", ["account_id", "attribute", "value_ci"])
    if postgresql:
        with op.batch_alter_table("audit_events") as batch_op:
            _set_primary_key(batch_op, "audit_events", ["account_id", "id"])
        _create_foreign_keys(FOREIGN_KEYS_AFTER)
    else:
        _create_foreign_keys(FOREIGN_KEYS_AFTER[:3])


def _add_counted_id(table: str, postgresql: bool) -> None:
    """Give `table` back an integer id, numbered for the rows there, as its whole primary key."""
    if postgresql:
        op.execute(f"ALTER TABLE {table} ADD COLUMN id SERIAL")
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT pk_{table}")
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT pk_{table} PRIMARY KEY (id)")
        return
    # SQLite numbers an INTEGER PRIMARY KEY left empty, which copying the table into the new shape does.
    with op.batch_alter_table(table, recreate="always") as batch_op:
        batch_op.add_column(sa.Column("id", sa.Integer(), nullable=True))
        _set_primary_key(batch_op, table, ["id"])


def downgrade() -> None:
    postgresql = _postgresql()
    if postgresql:
        _drop_foreign_keys(FOREIGN_KEYS_AFTER)
        with op.batch_alter_table("audit_events") as batch_op:
            _set_primary_key(batch_op, "audit_events", ["id"])
    else:
        _drop_foreign_keys(FOREIGN_KEYS_AFTER[:3])

    with op.batch_alter_table("user_attribute_values") as batch_op:
        batch_op.drop_index("ix_user_attribute_values_account_id_attribute_value_ci")
    _add_counted_id("user_attribute_values", postgresql)
    with op.batch_alter_table("user_attribute_values") as batch_op:
        batch_op.drop_column("position")
        batch_op.drop_column("account_id")
        batch_op.create_index("ix_user_attribute_values_attribute_value_ci", ["attribute", "value_ci"])
        batch_op.create_index("ix_user_attribute_values_user_id", ["user_id"])
    with op.batch_alter_table("group_memberships") as batch_op:
        batch_op.drop_index("ix_group_memberships_account_id_user_id")
        _set_primary_key(batch_op, "group_memberships", ["group_id", "user_id"])
        batch_op.drop_column("account_id")
        batch_op.create_index("ix_group_memberships_user_id", ["user_id"])
    _add_counted_id("api_tokens", postgresql)
    with op.batch_alter_table("api_tokens") as batch_op:
        batch_op.create_unique_constraint("uq_api_tokens_token_id", ["token_id"])
        batch_op.create_index("ix_api_tokens_account_id", ["account_id"])
    _add_counted_id("projects", postgresql)
    with op.batch_alter_table("projects") as batch_op:
        batch_op.create_unique_constraint(
            "uq_projects_account_id_org_identifier_identifier", ["account_id", "org_identifier", "identifier"]
        )
    _add_counted_id("organizations", postgresql)
    with op.batch_alter_table("organizations") as batch_op:
        batch_op.create_unique_constraint("uq_organizations_account_id_identifier", ["account_id", "identifier"])
    for table in ("users", "user_groups"):
        with op.batch_alter_table(table) as batch_op:
            _set_primary_key(batch_op, table, ["id"])
    _create_foreign_keys(FOREIGN_KEYS_BEFORE if postgresql else FOREIGN_KEYS_BEFORE[:3])
