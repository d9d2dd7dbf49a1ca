"""Records of SCIM requests can stand for many: successful reads of one token, route and status are
summarized in one record per write of the activity log, with their count in `requests` (1 for every
other event).

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("audit_events", sa.Column("requests", sa.Integer(), nullable=False, server_default=sa.text("1")))


def downgrade() -> None:
    # A summary becomes one record of its first request, as the previous version would read it.
    op.execute("ALTER TABLE audit_events DROP COLUMN requests")
