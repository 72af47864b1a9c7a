"""who acknowledged an alert (and why), who created a silence

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("acked_by", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("ack_note", sa.Text(), nullable=True))
    with op.batch_alter_table("silences") as batch:
        batch.add_column(sa.Column("created_by", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("silences") as batch:
        batch.drop_column("created_by")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("ack_note")
        batch.drop_column("acked_by")
