"""users.active may be unassigned: a SCIM `remove` of `active` leaves it without a value
(RFC 7644 §3.5.2.2), which does not deactivate the user.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.alter_column("active", existing_type=sa.Boolean(), nullable=True)


def downgrade() -> None:
    op.execute(sa.text("UPDATE users SET active = TRUE WHERE active IS NULL"))
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.alter_column("active", existing_type=sa.Boolean(), nullable=False)
