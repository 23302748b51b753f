"""The article store as it was before issue 11 (commit 3686b07), kept verbatim as the bench's baseline:
an ORM object per new article. Not used by the application."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import delete, insert
from sqlmodel import Session, col, select

from digests.catalog import COUNTRY, SECTION
from digests.models import Article, ArticleTag
from digests.sources import ParsedArticle
from digests.store import UpsertResult

_CHUNK = 500  # bound parameters per IN (…): SQLite allows 32766, but keep statements small


def _chunks(items: Sequence, size: int = _CHUNK) -> Iterable[Sequence]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _tag_rows(article_id: int, a: ParsedArticle) -> list[dict[str, object]]:
    return [{"article_id": article_id, "kind": SECTION, "value": v} for v in a.sections] + [
        {"article_id": article_id, "kind": COUNTRY, "value": v} for v in a.countries
    ]


# ----------------------------------------------------------------------------- articles


def upsert_articles(
    session: Session, articles: Sequence[ParsedArticle], *, source_id: int | None, now: datetime
) -> UpsertResult:
    """Insert new articles (by URL), update changed ones and their tags; the same input twice adds
    nothing. URLs must already be canonical and unique within `articles`."""
    result = UpsertResult()
    if not articles:
        return result
    existing: dict[str, Article] = {}
    for chunk in _chunks([a.url for a in articles]):
        for row in session.exec(select(Article).where(col(Article.url).in_(chunk))):
            existing[row.url] = row
    tags: dict[int, set[tuple[str, str]]] = {}
    ids = [row.id for row in existing.values()]
    for chunk in _chunks(ids):
        for t in session.exec(select(ArticleTag).where(col(ArticleTag.article_id).in_(chunk))):
            tags.setdefault(t.article_id, set()).add((t.kind, t.value))

    fresh: list[tuple[Article, ParsedArticle]] = []
    tag_rows: list[dict[str, object]] = []
    retag: list[int] = []
    for a in articles:
        row = existing.get(a.url)
        if row is None:
            row = Article(
                url=a.url,
                title=a.title,
                summary=a.summary,
                published=a.published,
                kind=a.kind,
                first_seen_at=now,
                updated_at=now,
                source_id=source_id,
            )
            session.add(row)
            fresh.append((row, a))
            continue
        wanted = {(SECTION, v) for v in a.sections} | {(COUNTRY, v) for v in a.countries}
        fields_changed = (row.title, row.summary, row.published, row.kind) != (
            a.title,
            a.summary,
            a.published,
            a.kind,
        )
        tags_changed = tags.get(row.id, set()) != wanted
        if not (fields_changed or tags_changed):
            result.unchanged += 1
            continue
        row.title, row.summary, row.published, row.kind = a.title, a.summary, a.published, a.kind
        row.updated_at = now
        session.add(row)
        if tags_changed:
            retag.append(row.id)
            tag_rows.extend(_tag_rows(row.id, a))
        result.updated += 1

    session.flush()  # assigns ids to the new rows (one multi-row INSERT … RETURNING)
    for row, a in fresh:
        tag_rows.extend(_tag_rows(row.id, a))
        result.new_ids.append(row.id)
    result.new = len(fresh)
    for chunk in _chunks(retag):
        session.execute(delete(ArticleTag).where(col(ArticleTag.article_id).in_(chunk)))
    if tag_rows:
        session.execute(insert(ArticleTag), tag_rows)
    return result
