"""API sources: cursors, reach and engagement, backfill, source alerts

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cursor", sa.Text(), nullable=True))
    with op.batch_alter_table("mentions", schema=None) as batch_op:
        for name in ("author_reach", "points", "likes", "reposts", "replies"):
            batch_op.add_column(sa.Column(name, sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column("backfill", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.alter_column("brand_id", existing_type=sa.Integer(), nullable=True)
        batch_op.alter_column(
            "detector", existing_type=sa.String(length=40), type_=sa.String(length=240)
        )


def downgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.alter_column(
            "detector", existing_type=sa.String(length=240), type_=sa.String(length=40)
        )
        batch_op.alter_column("brand_id", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("mentions", schema=None) as batch_op:
        batch_op.drop_column("backfill")
        for name in ("replies", "reposts", "likes", "points", "author_reach"):
            batch_op.drop_column(name)
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.drop_column("cursor")
