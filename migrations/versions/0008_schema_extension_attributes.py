"""Custom schema extensions (Entra's "Edit attribute list", Okta's custom attributes): their values on
users and groups (`extensions`, {urn: {name: value}} as sent), index rows for users' values (so
`user_attribute_values.attribute` grows to hold "urn:name"), and `extension_attributes`, the ones
each account has received, recorded once each.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Added, not rebuilt: SQLite keeps the triggers on `users` (see migration 0006).
    op.add_column("users", sa.Column("extensions", sa.JSON(), nullable=False, server_default="{}"))
    op.add_column("user_groups", sa.Column("extensions", sa.JSON(), nullable=False, server_default="{}"))
    # Index rows of extension attributes are named by their "urn:name", up to 256 characters lower-cased.
    with op.batch_alter_table("user_attribute_values") as batch:
        batch.alter_column("attribute", existing_type=sa.String(length=32), type_=sa.String(length=512), existing_nullable=False)
    op.create_table(
        "extension_attributes",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("resource_type", sa.String(length=16), nullable=False),
        sa.Column("key_ci", sa.String(length=1024), nullable=False),
        sa.Column("urn", sa.String(length=256), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("discovered_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_extension_attributes_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("account_id", "resource_type", "key_ci", name=op.f("pk_extension_attributes")),
    )


def downgrade() -> None:
    op.drop_table("extension_attributes")
    op.execute("DELETE FROM user_attribute_values WHERE attribute LIKE 'urn:%'")
    with op.batch_alter_table("user_attribute_values") as batch:
        batch.alter_column("attribute", existing_type=sa.String(length=512), type_=sa.String(length=32), existing_nullable=False)
    # Plain DROP COLUMN (SQLite has it since 3.35): a batch rebuild of `users` would drop its triggers.
    for table in ("user_groups", "users"):
        op.execute(f"ALTER TABLE {table} DROP COLUMN extensions")
