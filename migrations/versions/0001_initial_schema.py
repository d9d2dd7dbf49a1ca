"""Initial schema: accounts, scopes, users, groups, memberships, tokens, flags and audit events.

Revision ID: 0001
Revises:
Create Date: 2026-11-28 15:23:25.415498
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("identifier", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("identifier", name=op.f("uq_accounts_identifier")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("token_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("permissions", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_api_tokens_account_id_accounts"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_id", name=op.f("uq_api_tokens_token_id")),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_tokens_account_id"), ["account_id"], unique=False)

    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("caller", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("resource_type", sa.String(length=32), nullable=False),
        sa.Column("resource_id", sa.String(length=256), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_audit_events_account_id_accounts"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_events_account_id_occurred_at"), ["account_id", "occurred_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_audit_events_account_id_resource_type_resource_id"), ["account_id", "resource_type", "resource_id"], unique=False
        )

    op.create_table(
        "feature_flags",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_feature_flags_account_id_accounts"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("account_id", "name", name=op.f("pk_feature_flags")),
    )
    op.create_table(
        "organizations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("identifier", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_organizations_account_id_accounts"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organizations")),
        sa.UniqueConstraint("account_id", "identifier", name=op.f("uq_organizations_account_id_identifier")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("user_name", sa.String(length=256), nullable=False),
        sa.Column("user_name_ci", sa.String(length=256), nullable=False),
        sa.Column("external_id", sa.String(length=256), nullable=True),
        sa.Column("display_name", sa.Text(), nullable=True),
        sa.Column("nick_name", sa.Text(), nullable=True),
        sa.Column("profile_url", sa.Text(), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("user_type", sa.Text(), nullable=True),
        sa.Column("preferred_language", sa.Text(), nullable=True),
        sa.Column("locale", sa.Text(), nullable=True),
        sa.Column("timezone", sa.Text(), nullable=True),
        sa.Column("name_formatted", sa.Text(), nullable=True),
        sa.Column("name_family", sa.Text(), nullable=True),
        sa.Column("name_given", sa.Text(), nullable=True),
        sa.Column("name_middle", sa.Text(), nullable=True),
        sa.Column("name_honorific_prefix", sa.Text(), nullable=True),
        sa.Column("name_honorific_suffix", sa.Text(), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("email_ci", sa.String(length=320), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("multi_valued", sa.JSON(), nullable=False),
        sa.Column("employee_number", sa.Text(), nullable=True),
        sa.Column("cost_center", sa.Text(), nullable=True),
        sa.Column("organization", sa.Text(), nullable=True),
        sa.Column("division", sa.Text(), nullable=True),
        sa.Column("department", sa.Text(), nullable=True),
        sa.Column("manager_id", sa.String(length=256), nullable=True),
        sa.Column("provisioned_by", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_users_account_id_accounts"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("account_id", "user_name_ci", name=op.f("uq_users_account_id_user_name_ci")),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_users_account_id_created_at"), ["account_id", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_users_account_id_email_ci"), ["account_id", "email_ci"], unique=False)
        batch_op.create_index(batch_op.f("ix_users_account_id_external_id"), ["account_id", "external_id"], unique=False)

    op.create_table(
        "projects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("org_identifier", sa.String(length=64), nullable=False),
        sa.Column("identifier", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id", "org_identifier"],
            ["organizations.account_id", "organizations.identifier"],
            name=op.f("fk_projects_account_id_org_identifier_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_projects_account_id_accounts"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("account_id", "org_identifier", "identifier", name=op.f("uq_projects_account_id_org_identifier_identifier")),
    )
    op.create_table(
        "user_attribute_values",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("attribute", sa.String(length=32), nullable=False),
        sa.Column("type_ci", sa.String(length=64), nullable=True),
        sa.Column("value_ci", sa.String(length=512), nullable=True),
        sa.Column("is_primary", sa.Boolean(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_user_attribute_values_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_attribute_values")),
    )
    with op.batch_alter_table("user_attribute_values", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_user_attribute_values_attribute_value_ci"), ["attribute", "value_ci"], unique=False)
        batch_op.create_index(batch_op.f("ix_user_attribute_values_user_id"), ["user_id"], unique=False)

    op.create_table(
        "user_groups",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("org_identifier", sa.String(length=64), nullable=True),
        sa.Column("project_identifier", sa.String(length=64), nullable=True),
        sa.Column("scope", sa.String(length=130), nullable=False),
        sa.Column("identifier", sa.String(length=128), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=False),
        sa.Column("display_name_ci", sa.String(length=256), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("external_id", sa.String(length=256), nullable=True),
        sa.Column("managed_by", sa.String(length=24), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id", "org_identifier", "project_identifier"],
            ["projects.account_id", "projects.org_identifier", "projects.identifier"],
            name=op.f("fk_user_groups_account_id_org_identifier_project_identifier_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["account_id", "org_identifier"],
            ["organizations.account_id", "organizations.identifier"],
            name=op.f("fk_user_groups_account_id_org_identifier_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_user_groups_account_id_accounts"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_groups")),
        sa.UniqueConstraint("account_id", "scope", "identifier", name=op.f("uq_user_groups_account_id_scope_identifier")),
    )
    with op.batch_alter_table("user_groups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_user_groups_account_id_display_name_ci"), ["account_id", "display_name_ci"], unique=False)
        batch_op.create_index(batch_op.f("ix_user_groups_account_id_external_id"), ["account_id", "external_id"], unique=False)
        batch_op.create_index(
            "uq_user_groups_idp_display_name",
            ["account_id", "display_name_ci"],
            unique=True,
            sqlite_where=sa.text("managed_by = 'IDENTITY_PROVIDER'"),
            postgresql_where=sa.text("managed_by = 'IDENTITY_PROVIDER'"),
        )

    op.create_table(
        "group_memberships",
        sa.Column("group_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("added_via", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"], ["user_groups.id"], name=op.f("fk_group_memberships_group_id_user_groups"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_group_memberships_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("group_id", "user_id", name=op.f("pk_group_memberships")),
    )
    with op.batch_alter_table("group_memberships", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_group_memberships_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("group_memberships", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_group_memberships_user_id"))

    op.drop_table("group_memberships")
    with op.batch_alter_table("user_groups", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_user_groups_idp_display_name",
            sqlite_where=sa.text("managed_by = 'IDENTITY_PROVIDER'"),
            postgresql_where=sa.text("managed_by = 'IDENTITY_PROVIDER'"),
        )
        batch_op.drop_index(batch_op.f("ix_user_groups_account_id_external_id"))
        batch_op.drop_index(batch_op.f("ix_user_groups_account_id_display_name_ci"))

    op.drop_table("user_groups")
    with op.batch_alter_table("user_attribute_values", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_user_attribute_values_user_id"))
        batch_op.drop_index(batch_op.f("ix_user_attribute_values_attribute_value_ci"))

    op.drop_table("user_attribute_values")
    op.drop_table("projects")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_account_id_external_id"))
        batch_op.drop_index(batch_op.f("ix_users_account_id_email_ci"))
        batch_op.drop_index(batch_op.f("ix_users_account_id_created_at"))

    op.drop_table("users")
    op.drop_table("organizations")
    op.drop_table("feature_flags")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_events_account_id_resource_type_resource_id"))
        batch_op.drop_index(batch_op.f("ix_audit_events_account_id_occurred_at"))

    op.drop_table("audit_events")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_tokens_account_id"))

    op.drop_table("api_tokens")
    op.drop_table("accounts")
