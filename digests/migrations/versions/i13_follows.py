"""phrase follows and full-text search

Revision ID: i13_follows
Revises: i12a_inbound

Adds the `follow` table, `article.search_text` (title and summary as phrases compare, written by
the mapper events in digests/models.py and filled here for articles stored before), and a
full-text index over it: an FTS5 external-content table kept in step by triggers on SQLite, a
stored generated tsvector column with a GIN index on PostgreSQL. Without FTS5 (a SQLite built without it) search falls back to a plain scan.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

from digests.phrases import search_text

revision: str = "i13_follows"
down_revision: str | Sequence[str] | None = "i10_workers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SQLITE_FTS = [
    "CREATE VIRTUAL TABLE article_fts USING fts5(search_text, content='article', content_rowid='id')",
    """CREATE TRIGGER article_fts_insert AFTER INSERT ON article BEGIN
        INSERT INTO article_fts(rowid, search_text) VALUES (new.id, new.search_text); END""",
    """CREATE TRIGGER article_fts_delete AFTER DELETE ON article BEGIN
        INSERT INTO article_fts(article_fts, rowid, search_text) VALUES ('delete', old.id, old.search_text); END""",
    """CREATE TRIGGER article_fts_update AFTER UPDATE OF search_text ON article BEGIN
        INSERT INTO article_fts(article_fts, rowid, search_text) VALUES ('delete', old.id, old.search_text);
        INSERT INTO article_fts(rowid, search_text) VALUES (new.id, new.search_text); END""",
    "INSERT INTO article_fts(article_fts) VALUES ('rebuild')",
]


def _has_fts5(conn) -> bool:
    try:
        return bool(conn.exec_driver_sql("SELECT sqlite_compileoption_used('ENABLE_FTS5')").scalar())
    except sa.exc.DBAPIError:
        return False


def upgrade() -> None:
    op.create_table(
        "follow",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("phrase", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscriber.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subscriber_id", "key", name="uq_follow"),
    )
    with op.batch_alter_table("follow", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_follow_subscriber_id"), ["subscriber_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_follow_key"), ["key"], unique=False)

    # add_column needs no table rebuild on SQLite: keep it outside batch mode so the article
    # table (and its foreign keys from articletag) is left as it is.
    op.add_column("article", sa.Column("search_text", sa.Text(), nullable=False, server_default=""))

    conn = op.get_bind()
    article = sa.table("article", sa.column("id"), sa.column("title"), sa.column("summary"),
                       sa.column("search_text"))
    rows = conn.execute(sa.select(article.c.id, article.c.title, article.c.summary)).all()
    for start in range(0, len(rows), 1000):
        conn.execute(
            article.update().where(article.c.id == sa.bindparam("aid")).values(search_text=sa.bindparam("st")),
            [{"aid": r.id, "st": search_text(r.title, r.summary or "")} for r in rows[start : start + 1000]],
        )

    if conn.dialect.name == "sqlite":
        if _has_fts5(conn):
            for statement in _SQLITE_FTS:
                conn.exec_driver_sql(statement)
    elif conn.dialect.name == "postgresql":
        # Stored, so a phrase query's recheck reads positions instead of re-parsing every row.
        conn.exec_driver_sql(
            "ALTER TABLE article ADD COLUMN search_vector tsvector "
            "GENERATED ALWAYS AS (to_tsvector('simple', search_text)) STORED"
        )
        conn.exec_driver_sql("CREATE INDEX ix_article_search ON article USING gin (search_vector)")


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        for name in ("article_fts_insert", "article_fts_delete", "article_fts_update"):
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
        conn.exec_driver_sql("DROP TABLE IF EXISTS article_fts")
    elif conn.dialect.name == "postgresql":
        conn.exec_driver_sql("DROP INDEX IF EXISTS ix_article_search")
        conn.exec_driver_sql("ALTER TABLE article DROP COLUMN IF EXISTS search_vector")
    with op.batch_alter_table("article", schema=None) as batch_op:
        batch_op.drop_column("search_text")
    with op.batch_alter_table("follow", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_follow_key"))
        batch_op.drop_index(batch_op.f("ix_follow_subscriber_id"))
    op.drop_table("follow")
