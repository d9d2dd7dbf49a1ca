"""Groups are listed oldest first (created_at, then id): an index in that order per account lets a
page be read off it, where PostgreSQL sorted every group of the account for each page.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_user_groups_account_id_created_at_id", "user_groups", ["account_id", "created_at", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_user_groups_account_id_created_at_id", table_name="user_groups")
