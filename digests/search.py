"""Articles mentioning a phrase, newest first: /search, `clapper articles --match`, follow dry runs.

The database narrows (SQLite FTS5 phrase query, PostgreSQL `phraseto_tsquery` over a stored
tsvector with a GIN index, or a plain LIKE scan where neither exists), then every candidate is
checked in Python with the exact rule of digests/phrases.py, so all three paths give the same
answer. The index holds `article.search_text` (already normalised words), hence no accent or
case handling in SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from digests import phrases, store
from digests.db import session_scope
from digests.models import Article

PAGE = 200  # candidates fetched per round; most rounds are the only one
# SQLite: a word in most articles makes FTS5 hand back every one of them before the newest can be
# picked, so common words are looked for first among the newest articles only, in a plain scan
# that stops early; if that window holds enough matches they are the newest ones overall.
RECENT_WINDOW = 3000


@dataclass(slots=True)
class Found:
    articles: list[store.ArticleView]
    count: int  # matches in the window (only when counting; else len(articles))


def _backend(session: Session) -> str:
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        return "postgresql"
    if bind.dialect.name == "sqlite":
        # The migration creates the FTS5 table only where SQLite was built with FTS5.
        found = session.execute(text(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'article_fts'")).first()
        return "fts5" if found else "plain"
    return "plain"


def _candidates(session: Session, query: str, since: date | None, limit: int, offset: int) -> list[int]:
    """Ids of articles whose words contain `query` (a phrases.key), newest first."""
    backend = _backend(session)
    window = "AND a.published >= :since" if since else ""
    order = f"ORDER BY a.published DESC, a.id DESC LIMIT {int(limit)} OFFSET {int(offset)}"
    params: dict[str, object] = {"since": since} if since else {}
    if backend == "fts5":
        sql = f"""SELECT a.id FROM article_fts JOIN article a ON a.id = article_fts.rowid
                  WHERE article_fts MATCH :q {window} {order}"""
        # The key is letters, digits and spaces only: safe inside an FTS5 phrase string.
        params["q"] = f'"{query}"'
    elif backend == "postgresql":
        sql = f"""SELECT a.id FROM article a
                  WHERE a.search_vector @@ phraseto_tsquery('simple', :q)
                  {window} {order}"""
        params["q"] = query
    else:
        # No %, _ or \ can occur in a key, so it needs no LIKE escaping.
        sql = f"""SELECT a.id FROM article a WHERE (' ' || a.search_text || ' ') LIKE :q
                  {window} {order}"""
        params["q"] = f"% {query} %"
    return [row[0] for row in session.execute(text(sql), params)]


def _recent(session: Session, query: str, needle: tuple[str, ...], limit: int) -> list[int]:
    """Up to `limit` matches among the newest RECENT_WINDOW articles, newest first."""
    rows = session.execute(text(f"""
        SELECT id, title, summary FROM (
            SELECT id, published, title, summary, search_text FROM article
            ORDER BY published DESC, id DESC LIMIT {RECENT_WINDOW}) a
        WHERE (' ' || a.search_text || ' ') LIKE :q
        ORDER BY a.published DESC, a.id DESC LIMIT {PAGE}"""), {"q": f"% {query} %"})
    return [i for i, title, summary in rows if phrases.article_matches(needle, title, summary or "")][:limit]


def search(session: Session, words: str, *, since: date | None = None, limit: int = 10,
           count: bool = False) -> Found:
    """Up to `limit` articles matching `words` by the phrase rule, newest first.

    `since`: published on or after. `count`: also count every match in the window (dry runs).
    """
    query = phrases.key(words)
    if not query:
        return Found([], 0)
    needle = tuple(query.split(" "))
    if not count and since is None and _backend(session) == "fts5":
        recent = _recent(session, query, needle, limit)
        if len(recent) >= limit:
            return Found(store.articles(session, ids=recent), len(recent))
    kept: list[int] = []
    total = 0
    offset = 0
    while True:
        ids = _candidates(session, query, since, PAGE, offset)
        if ids:
            rows = session.exec(select(Article.id, Article.title, Article.summary)
                                .where(col(Article.id).in_(ids))).all()
            good = {i for i, title, summary in rows if phrases.article_matches(needle, title, summary or "")}
            for i in ids:
                if i in good:
                    total += 1
                    if len(kept) < limit:
                        kept.append(i)
        if len(ids) < PAGE or (len(kept) >= limit and not count):
            break
        offset += PAGE
    found = store.articles(session, ids=kept) if kept else []
    return Found(found, total if count else len(found))


MAX_QUERY_CHARS = 200


@dataclass(slots=True)
class SearchResult:
    words: str
    articles: list[store.ArticleView]
    problem: str | None = None  # empty | long | no_words


def find(engine: Engine, words: str, *, limit: int = 10, since: date | None = None) -> SearchResult:
    """/search and the archive box: checked input, then `search` in its own transaction."""
    words = phrases.clean(words)
    if not words:
        return SearchResult(words, [], "empty")
    if len(words) > MAX_QUERY_CHARS:
        return SearchResult(words[:40], [], "long")
    if not phrases.words(words):
        return SearchResult(words, [], "no_words")
    with session_scope(engine) as session:
        return SearchResult(words, search(session, words, since=since, limit=limit).articles)
