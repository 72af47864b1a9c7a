"""several instances on PostgreSQL share detection: per-brand leases, detection heartbeats

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from listener.storage.tables import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        batch.add_column(sa.Column("detecting_until", UTCDateTime(), nullable=True))
    op.create_table(
        "brand_leases",
        sa.Column("brand_id", sa.Integer(), nullable=False),
        sa.Column("held_by", sa.String(length=200), nullable=True),
        sa.Column("held_until", UTCDateTime(), nullable=True),
        sa.Column("evaluated_by", sa.String(length=200), nullable=True),
        sa.Column("evaluated_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["brand_id"],
            ["brands.id"],
            name=op.f("fk_brand_leases_brand_id_brands"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("brand_id", name=op.f("pk_brand_leases")),
    )


def downgrade() -> None:
    op.drop_table("brand_leases")
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("detecting_until")
