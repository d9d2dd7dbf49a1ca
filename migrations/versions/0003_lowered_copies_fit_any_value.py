"""The lower-cased copies (`users.user_name_ci`, `users.email_ci`, `user_groups.display_name_ci`)
are twice as wide as their sources: str.lower() turns "İ" into two characters, so a valid userName
of 200 "İ" did not fit its copy and PostgreSQL refused the row.

On PostgreSQL widening a VARCHAR rewrites neither the table nor its indexes. Downgrading cuts a
longer copy to the old width.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column, width before, width after, nullable)
COLUMNS = (
    ("users", "user_name_ci", 256, 512, False),
    ("users", "email_ci", 320, 640, True),
    ("user_groups", "display_name_ci", 256, 512, False),
)


def _resize(table: str, *, narrow: bool) -> None:
    with op.batch_alter_table(table, schema=None) as batch_op:
        for name, column, before, after, nullable in COLUMNS:
            if name == table:
                old, new = (after, before) if narrow else (before, after)
                batch_op.alter_column(column, existing_type=sa.String(length=old), type_=sa.String(length=new), existing_nullable=nullable)


def upgrade() -> None:
    for table in ("users", "user_groups"):
        _resize(table, narrow=False)


def downgrade() -> None:
    for table, column, before, _, _ in COLUMNS:
        op.execute(sa.text(f"UPDATE {table} SET {column} = substr({column}, 1, {before}) WHERE length({column}) > {before}"))
    for table in ("users", "user_groups"):
        _resize(table, narrow=True)
