"""App integrations: the identity-provider apps connected to an account (`app_integrations`), the
hourly request counts behind their health (`app_integration_activity`), which of them assigns each
user (`user_assignments`), and the integration of a token, and of the user or group it created.

Existing tokens, users and groups get no integration: they behave as before (see
services.integrations).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

IDP_GROUP = "managed_by = 'IDENTITY_PROVIDER'"
WITHOUT_INTEGRATION = f"{IDP_GROUP} AND app_integration_id IS NULL"
OF_INTEGRATION = f"{IDP_GROUP} AND app_integration_id IS NOT NULL"


def _where(condition: str) -> dict[str, sa.TextClause]:
    return {"sqlite_where": sa.text(condition), "postgresql_where": sa.text(condition)}


def upgrade() -> None:
    op.create_table(
        "app_integrations",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("name_ci", sa.String(length=512), nullable=False),
        sa.Column("generation", sa.String(length=16), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disconnected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_failure_status", sa.Integer(), nullable=True),
        sa.Column("last_failure_scim_type", sa.String(length=32), nullable=True),
        sa.Column("last_failure_detail", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_app_integrations_account_id_accounts"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("account_id", "id", name=op.f("pk_app_integrations")),
        sa.UniqueConstraint("account_id", "name_ci", name=op.f("uq_app_integrations_account_id_name_ci")),
    )
    op.create_table(
        "app_integration_activity",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("integration_id", sa.String(length=36), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("client_failures", sa.BigInteger(), nullable=False),
        sa.Column("server_failures", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id", "integration_id"],
            ["app_integrations.account_id", "app_integrations.id"],
            name=op.f("fk_app_integration_activity_account_id_integration_id_a_3fe1"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "integration_id", "hour", name=op.f("pk_app_integration_activity")),
    )
    op.create_table(
        "user_assignments",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("integration_id", sa.String(length=36), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id", "user_id"],
            ["users.account_id", "users.id"],
            name=op.f("fk_user_assignments_account_id_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["account_id", "integration_id"],
            ["app_integrations.account_id", "app_integrations.id"],
            name=op.f("fk_user_assignments_account_id_integration_id_app_integrations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "user_id", "integration_id", name=op.f("pk_user_assignments")),
    )
    op.create_index(op.f("ix_user_assignments_account_id_integration_id"), "user_assignments", ["account_id", "integration_id"])
    # Added, not rebuilt: SQLite keeps the triggers on `users` (see migration 0006). No foreign key
    # on the provenance columns: SQLite cannot add one without rebuilding the table, and
    # integrations are never deleted.
    op.add_column("users", sa.Column("app_integration_id", sa.String(length=36), nullable=True))
    op.add_column("user_groups", sa.Column("app_integration_id", sa.String(length=36), nullable=True))
    op.drop_index("uq_user_groups_idp_display_name", table_name="user_groups")
    op.create_index(
        "uq_user_groups_idp_display_name", "user_groups", ["account_id", "display_name_ci"], unique=True, **_where(WITHOUT_INTEGRATION)
    )
    op.create_index(
        "uq_user_groups_integration_display_name",
        "user_groups",
        ["account_id", "app_integration_id", "display_name_ci"],
        unique=True,
        **_where(OF_INTEGRATION),
    )
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("app_integration_id", sa.String(length=36), nullable=True))
        batch.create_foreign_key(
            op.f("fk_api_tokens_account_id_app_integration_id_app_integrations"),
            "app_integrations",
            ["account_id", "app_integration_id"],
            ["account_id", "id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_constraint(op.f("fk_api_tokens_account_id_app_integration_id_app_integrations"), type_="foreignkey")
        batch.drop_column("app_integration_id")
    op.drop_index("uq_user_groups_integration_display_name", table_name="user_groups")
    op.drop_index("uq_user_groups_idp_display_name", table_name="user_groups")
    # Groups of different integrations may share a name; only one of each name stays an
    # identity-provider group of the old unique index, the others become native (managedBy MANAGER).
    op.execute(
        "UPDATE user_groups SET managed_by = 'MANAGER' WHERE managed_by = 'IDENTITY_PROVIDER' AND EXISTS ("
        "SELECT 1 FROM user_groups AS other WHERE other.account_id = user_groups.account_id "
        "AND other.display_name_ci = user_groups.display_name_ci AND other.managed_by = 'IDENTITY_PROVIDER' "
        "AND (other.created_at < user_groups.created_at OR (other.created_at = user_groups.created_at AND other.id < user_groups.id)))"
    )
    op.create_index("uq_user_groups_idp_display_name", "user_groups", ["account_id", "display_name_ci"], unique=True, **_where(IDP_GROUP))
    # Plain DROP COLUMN (SQLite has it since 3.35): a batch rebuild of `users` would drop its triggers.
    for table in ("user_groups", "users"):
        op.execute(f"ALTER TABLE {table} DROP COLUMN app_integration_id")
    op.drop_index(op.f("ix_user_assignments_account_id_integration_id"), table_name="user_assignments")
    op.drop_table("user_assignments")
    op.drop_table("app_integration_activity")
    op.drop_table("app_integrations")
