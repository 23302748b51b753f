"""articletag.edition: the year of a festival tag ("Cannes 2024" is Cannes, edition 2024)

Revision ID: i11b_tag_edition
Revises: i12a_inbound
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "i11b_tag_edition"
down_revision: str | Sequence[str] | None = "i12a_inbound"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("articletag", schema=None) as batch_op:
        batch_op.add_column(sa.Column("edition", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("articletag", schema=None) as batch_op:
        batch_op.drop_column("edition")
