"""Lists are read in their order (created_at, then id) off an index per account.

Groups had none: PostgreSQL sorted every group of the account for each page. Users had one on
(account_id, created_at), over tombstones too; every list leaves those out, so a page's rows were
read from the table to be told apart, and a deep page (`startIndex=50001`, an Okta import paging
through) read 50,000 of them. The index now holds the order's id and only the users lists show:
a page's ids come from the index alone.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LISTED = sa.text("deprovisioned_at IS NULL")


def upgrade() -> None:
    op.create_index("ix_user_groups_account_id_created_at_id", "user_groups", ["account_id", "created_at", "id"], unique=False)
    op.create_index(
        "ix_users_listed", "users", ["account_id", "created_at", "id"], unique=False, postgresql_where=_LISTED, sqlite_where=_LISTED
    )
    op.drop_index("ix_users_account_id_created_at", table_name="users")


def downgrade() -> None:
    op.create_index("ix_users_account_id_created_at", "users", ["account_id", "created_at"], unique=False)
    op.drop_index("ix_users_listed", table_name="users")
    op.drop_index("ix_user_groups_account_id_created_at_id", table_name="user_groups")
