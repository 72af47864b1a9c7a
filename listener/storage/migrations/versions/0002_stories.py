"""stories

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stories",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("fingerprint", sa.BigInteger(), nullable=True),
        sa.Column("band0", sa.Integer(), nullable=True),
        sa.Column("band1", sa.Integer(), nullable=True),
        sa.Column("band2", sa.Integer(), nullable=True),
        sa.Column("band3", sa.Integer(), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stories")),
    )
    with op.batch_alter_table("stories", schema=None) as batch_op:
        batch_op.create_index("ix_stories_band0", ["band0"], unique=False)
        batch_op.create_index("ix_stories_band1", ["band1"], unique=False)
        batch_op.create_index("ix_stories_band2", ["band2"], unique=False)
        batch_op.create_index("ix_stories_band3", ["band3"], unique=False)
        batch_op.create_index("ix_stories_url", ["url"], unique=False)

    with op.batch_alter_table("mentions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("story_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("domain", sa.String(length=255), nullable=True))
        batch_op.create_index("ix_mentions_story_id", ["story_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_mentions_story_id_stories"),
            "stories",
            ["story_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("mentions", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_mentions_story_id_stories"), type_="foreignkey")
        batch_op.drop_index("ix_mentions_story_id")
        batch_op.drop_column("domain")
        batch_op.drop_column("story_id")

    with op.batch_alter_table("stories", schema=None) as batch_op:
        batch_op.drop_index("ix_stories_url")
        batch_op.drop_index("ix_stories_band3")
        batch_op.drop_index("ix_stories_band2")
        batch_op.drop_index("ix_stories_band1")
        batch_op.drop_index("ix_stories_band0")

    op.drop_table("stories")
