"""inbound events: bounces, complaints and mailed unsubscribes read by `clapper inbound`

Revision ID: i12a_inbound
Revises: i9b_trust
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "i12a_inbound"
down_revision: str | Sequence[str] | None = "i9b_trust"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inboundevent",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=True),
        sa.Column("outbox_id", sa.Integer(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscriber.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("inboundevent", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_inboundevent_kind"), ["kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_inboundevent_created_at"), ["created_at"], unique=False)
        batch_op.create_index(
            "ix_inbound_event_subscriber_kind", ["subscriber_id", "kind", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("inboundevent", schema=None) as batch_op:
        batch_op.drop_index("ix_inbound_event_subscriber_kind")
        batch_op.drop_index(batch_op.f("ix_inboundevent_created_at"))
        batch_op.drop_index(batch_op.f("ix_inboundevent_kind"))
    op.drop_table("inboundevent")
