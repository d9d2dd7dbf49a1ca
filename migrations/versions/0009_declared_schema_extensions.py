"""`extension_schemas`: custom schema extensions an account declares, with their attributes' types,
advertised in /Schemas and used to type-check their values.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "extension_schemas",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("urn_ci", sa.String(length=512), nullable=False),
        sa.Column("urn", sa.String(length=256), nullable=False),
        sa.Column("resource_type", sa.String(length=16), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("declared_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_extension_schemas_account_id_accounts"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("account_id", "urn_ci", name=op.f("pk_extension_schemas")),
    )


def downgrade() -> None:
    op.drop_table("extension_schemas")
