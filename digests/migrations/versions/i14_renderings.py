"""shared email renderings: a fan-out's body stored once, each outbox row with only its links

Revision ID: i14_renderings
Revises: i13_follows
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "i14_renderings"
down_revision: str | Sequence[str] | None = "i13_follows"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "emailrendering",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("template", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("article_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    # Plain ADD COLUMN: no table rebuild, so queued rows (and their ids in sent mail) stay as they are.
    op.add_column("outbox", sa.Column("rendering_id", sa.Integer(), nullable=True))
    op.add_column("outbox", sa.Column("links", sa.Text(), nullable=True))
    op.create_index(op.f("ix_outbox_rendering_id"), "outbox", ["rendering_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_outbox_rendering_id"), table_name="outbox")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("links")
        batch_op.drop_column("rendering_id")
    op.drop_table("emailrendering")
