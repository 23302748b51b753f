"""delivery workers and their heartbeats

Revision ID: i10_workers
Revises: i9b_trust
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "i10_workers"
down_revision: str | Sequence[str] | None = "i11b_tag_edition"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "deliveryworker",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("channels", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("started_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("heartbeat_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("deliveryworker", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deliveryworker_heartbeat_at"), ["heartbeat_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("deliveryworker", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deliveryworker_heartbeat_at"))
    op.drop_table("deliveryworker")
