"""The activity log records every SCIM request's outcome: the request's id, method, route template,
status, scimType, error detail and app integration on its event, and how long an account keeps such
records.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("request_id", sa.String(length=64)),
    ("method", sa.String(length=8)),
    ("route", sa.String(length=160)),
    ("status", sa.Integer()),
    ("scim_type", sa.String(length=32)),
    ("error_detail", sa.Text()),
    ("integration_id", sa.String(length=36)),
)


def upgrade() -> None:
    for name, type_ in COLUMNS:
        op.add_column("audit_events", sa.Column(name, type_, nullable=True))
    op.create_index(op.f("ix_audit_events_account_id_status"), "audit_events", ["account_id", "status"])
    # Change events newest first, without walking past the many records of requests.
    where = sa.text("action <> 'scim.request'")
    op.create_index("ix_audit_events_changes", "audit_events", ["account_id", "id"], postgresql_where=where, sqlite_where=where)
    op.add_column("accounts", sa.Column("activity_retention_days", sa.Integer(), nullable=False, server_default="90"))


def downgrade() -> None:
    op.execute("DELETE FROM audit_events WHERE action = 'scim.request'")
    op.drop_index("ix_audit_events_changes", table_name="audit_events")
    op.drop_index(op.f("ix_audit_events_account_id_status"), table_name="audit_events")
    # Plain DROP COLUMN (SQLite has it since 3.35), as the other migrations do.
    for name, _ in reversed(COLUMNS):
        op.execute(f"ALTER TABLE audit_events DROP COLUMN {name}")
    op.execute("ALTER TABLE accounts DROP COLUMN activity_retention_days")
