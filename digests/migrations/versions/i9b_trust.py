"""subscriber ids never reused on SQLite (AUTOINCREMENT); emailcodelog for the code-email limits

Revision ID: i9b_trust
Revises: 34ba1a3c9178
Create Date: 2026-12-01 21:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "i9b_trust"
down_revision: str | Sequence[str] | None = "34ba1a3c9178"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _dependents(connection, parent: str) -> list[str]:
    """Tables whose foreign keys lead (directly or through others) to `parent`, parents first."""
    tables = [
        row[0]
        for row in connection.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    refs = {
        t: {row[2] for row in connection.exec_driver_sql(f'PRAGMA foreign_key_list("{t}")')} for t in tables
    }
    order: list[str] = []
    frontier = [parent]
    while frontier:
        found = [t for t in tables if t not in order and t != parent and refs[t] & set(frontier)]
        order += found
        frontier = found
    return order


def _recreate_subscriber_with_autoincrement() -> None:
    connection = op.get_bind()
    # The batch recreate drops the old table, and with foreign keys on (they are, and the pragma
    # cannot change inside the migration's transaction) that DROP cascades to every child row.
    # So the children are kept aside and put back once the new table stands.
    dependents = _dependents(connection, "subscriber")
    for table in dependents:
        connection.exec_driver_sql(f'CREATE TEMP TABLE "_keep_{table}" AS SELECT * FROM "{table}"')
    with op.batch_alter_table(
        "subscriber", recreate="always", table_kwargs={"sqlite_autoincrement": True}
    ) as batch_op:
        batch_op.alter_column("id", existing_type=sa.Integer(), autoincrement=True)
    for table in reversed(dependents):
        connection.exec_driver_sql(f'DELETE FROM "{table}"')  # what SET NULL left behind
    for table in dependents:
        connection.exec_driver_sql(f'INSERT INTO "{table}" SELECT * FROM "_keep_{table}"')
        connection.exec_driver_sql(f'DROP TABLE "_keep_{table}"')


def upgrade() -> None:
    op.create_table(
        "emailcodelog",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("address_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=True),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("emailcodelog", schema=None) as batch_op:
        batch_op.create_index("ix_emailcodelog_address_at", ["address_hash", "at"], unique=False)
        batch_op.create_index("ix_emailcodelog_chat_at", ["chat_id", "at"], unique=False)
    # PostgreSQL sequences never hand out an id twice; only SQLite needs the rebuild.
    if op.get_bind().dialect.name == "sqlite":
        _recreate_subscriber_with_autoincrement()


def downgrade() -> None:
    # AUTOINCREMENT stays: giving ids back out is never wanted.
    with op.batch_alter_table("emailcodelog", schema=None) as batch_op:
        batch_op.drop_index("ix_emailcodelog_chat_at")
        batch_op.drop_index("ix_emailcodelog_address_at")
    op.drop_table("emailcodelog")
