"""An index on `users (account_id, manager_id)`: deleting a user clears the `manager` of everyone
they manage, and without it that lookup read every user of the account.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_users_account_id_manager_id", "users", ["account_id", "manager_id"])


def downgrade() -> None:
    op.drop_index("ix_users_account_id_manager_id", table_name="users")
