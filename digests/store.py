"""Article and source queries: upserts, filtered reads, tag counts, sources and their fetch state.

Every function takes the session explicitly and leaves committing to the caller
(`db.session_scope`), so a run can batch many pages into one transaction or roll a dry run back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import delete, func, insert
from sqlmodel import Session, col, select

from digests.catalog import COUNTRY, SECTION, TAG
from digests.models import Article, ArticleTag, Source
from digests.phrases import search_text
from digests.sources import ParsedArticle, article_json

_CHUNK = 500  # bound parameters per IN (…): SQLite allows 32766, but keep statements small


@dataclass(frozen=True, slots=True)
class ArticleView:
    """An article with its tags, as readers see it."""

    id: int
    title: str
    summary: str
    url: str
    published: date
    kind: str
    first_seen_at: datetime
    sections: tuple[str, ...]
    countries: tuple[str, ...]

    def as_json(self) -> dict[str, object]:
        return article_json(self)


@dataclass(slots=True)
class UpsertResult:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    new_ids: list[int] = field(default_factory=list)


def _chunks(items: Sequence, size: int = _CHUNK) -> Iterable[Sequence]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _tag_pairs(a: ParsedArticle) -> set[tuple[str, str]]:
    return (
        {(SECTION, v) for v in a.sections}
        | {(COUNTRY, v) for v in a.countries}
        | {(TAG, v) for v in a.tags}
    )


def _tag_rows(article_id: int, a: ParsedArticle) -> list[dict[str, object]]:
    return [{"article_id": article_id, "kind": k, "value": v} for k, v in sorted(_tag_pairs(a))]


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

    fresh: list[ParsedArticle] = []
    tag_rows: list[dict[str, object]] = []
    retag: list[int] = []
    for a in articles:
        row = existing.get(a.url)
        if row is None:
            fresh.append(a)
            continue
        wanted = _tag_pairs(a)
        # An undated item keeps the day it was first stored: re-reading it is not an update.
        published = a.published if a.dated else row.published
        fields_changed = (row.title, row.summary, row.published, row.kind) != (
            a.title,
            a.summary,
            published,
            a.kind,
        )
        tags_changed = tags.get(row.id, set()) != wanted
        if not (fields_changed or tags_changed):
            result.unchanged += 1
            continue
        row.title, row.summary, row.published, row.kind = a.title, a.summary, published, a.kind
        row.updated_at = now
        session.add(row)
        if tags_changed:
            retag.append(row.id)
            tag_rows.extend(_tag_rows(row.id, a))
        result.updated += 1

    session.flush()
    # New rows go in as plain rows (multi-row INSERT … RETURNING): building an ORM object per
    # article cost more than parsing the feed.
    new_ids: dict[str, int] = {}
    for chunk in _chunks(fresh):
        rows = [
            {
                "url": a.url,
                "title": a.title,
                "summary": a.summary,
                "published": a.published,
                "kind": a.kind,
                "first_seen_at": now,
                "updated_at": now,
                "source_id": source_id,
                # Core INSERTs skip the mapper event that keeps the search index's text.
                "search_text": search_text(a.title, a.summary),
            }
            for a in chunk
        ]
        stmt = insert(Article).returning(col(Article.id), col(Article.url))
        new_ids.update((url, id_) for id_, url in session.execute(stmt, rows))
    for a in fresh:
        tag_rows.extend(_tag_rows(new_ids[a.url], a))
        result.new_ids.append(new_ids[a.url])
    result.new = len(fresh)
    for chunk in _chunks(retag):
        session.execute(delete(ArticleTag).where(col(ArticleTag.article_id).in_(chunk)))
    if tag_rows:
        session.execute(insert(ArticleTag), tag_rows)
    return result


def _filtered(stmt, countries: Iterable[str], sections: Iterable[str]):
    """Within a kind any chosen value matches; across kinds all must; an empty kind matches all."""
    for kinds, values in (((COUNTRY,), tuple(countries)), ((SECTION, TAG), tuple(sections))):
        if values:
            # A section name also matches the free tags of that name (feed categories).
            tagged = select(ArticleTag.article_id).where(
                col(ArticleTag.kind).in_(kinds), col(ArticleTag.value).in_(values)
            )
            stmt = stmt.where(col(Article.id).in_(tagged))
    return stmt


def articles(
    session: Session,
    *,
    countries: Iterable[str] = (),
    sections: Iterable[str] = (),
    since: date | None = None,
    seen_after: datetime | None = None,
    ids: Iterable[int] | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[ArticleView]:
    """Articles newest first (by published date), with their tags.

    `since`: published on or after; `seen_after`: first seen strictly after (digest watermarks).
    """
    stmt = _filtered(select(Article), countries, sections)
    if since is not None:
        stmt = stmt.where(Article.published >= since)
    if seen_after is not None:
        stmt = stmt.where(Article.first_seen_at > seen_after)
    if ids is not None:
        stmt = stmt.where(col(Article.id).in_(list(ids)))
    stmt = stmt.order_by(col(Article.published).desc(), col(Article.id).desc())
    if limit is not None:
        stmt = stmt.limit(limit)
    if offset:
        stmt = stmt.offset(offset)
    rows = list(session.exec(stmt))
    return _with_tags(session, rows)


def latest_articles(
    session: Session, *, countries: Iterable[str] = (), sections: Iterable[str] = (), limit: int = 10
) -> list[ArticleView]:
    """The newest `limit` articles matching the given countries/sections (the subscription rule)."""
    return articles(session, countries=countries, sections=sections, limit=limit)


def _with_tags(session: Session, rows: list[Article]) -> list[ArticleView]:
    by_id: dict[int, tuple[list[str], list[str]]] = {r.id: ([], []) for r in rows}
    for chunk in _chunks(list(by_id)):
        stmt = select(ArticleTag).where(col(ArticleTag.article_id).in_(chunk))
        for t in session.exec(stmt):
            if t.kind in (SECTION, COUNTRY):
                by_id[t.article_id][0 if t.kind == SECTION else 1].append(t.value)
    # Tag rows carry no order; sort so output is stable across databases.
    return [
        ArticleView(
            id=r.id,
            title=r.title,
            summary=r.summary,
            url=r.url,
            published=r.published,
            kind=r.kind,
            first_seen_at=r.first_seen_at,
            sections=tuple(sorted(by_id[r.id][0])),
            countries=tuple(sorted(by_id[r.id][1])),
        )
        for r in rows
    ]


def tag_counts(session: Session, kind: str, since: date | datetime | None = None) -> list[tuple[str, int]]:
    """(value, number of articles) for one tag kind, most first; `since` bounds the published date."""
    stmt = select(ArticleTag.value, func.count()).where(ArticleTag.kind == kind)
    if since is not None:
        day = since.date() if isinstance(since, datetime) else since
        stmt = stmt.join(Article, col(Article.id) == col(ArticleTag.article_id)).where(
            Article.published >= day
        )
    stmt = stmt.group_by(ArticleTag.value).order_by(func.count().desc(), ArticleTag.value)
    return [(value, int(n)) for value, n in session.exec(stmt)]


def count_articles(session: Session) -> int:
    return int(session.exec(select(func.count()).select_from(Article)).one())


# ----------------------------------------------------------------------------- sources


def list_sources(session: Session, *, enabled_only: bool = False) -> list[Source]:
    stmt = select(Source).order_by(Source.name)
    if enabled_only:
        stmt = stmt.where(col(Source.enabled).is_(True))
    return list(session.exec(stmt))


def get_source(session: Session, name: str) -> Source | None:
    return session.exec(select(Source).where(Source.name == name)).first()


def add_source(session: Session, *, name: str, url: str, kind: str = "auto") -> Source:
    """A new source; ValueError when the name is taken or the kind unknown."""
    if kind not in {"auto", "listing", "rss"}:
        raise ValueError(f"unknown source kind {kind!r} (auto, listing or rss)")
    if get_source(session, name) is not None:
        raise ValueError(f"a source named {name!r} already exists")
    source = Source(name=name, url=url, kind=kind)
    session.add(source)
    session.flush()
    return source


def remove_source(session: Session, name: str) -> bool:
    """Delete a source (its articles stay, unlinked); False when there was none."""
    source = get_source(session, name)
    if source is None:
        return False
    session.delete(source)
    return True


def record_success(
    session: Session,
    source_id: int,
    *,
    now: datetime,
    new: int,
    etag: str | None,
    last_modified: str | None,
    not_modified: bool = False,
) -> None:
    source = session.get(Source, source_id)
    if source is None:
        return
    source.last_fetched_at = now
    source.last_success_at = now
    source.last_error = None
    source.error_count = 0
    source.next_fetch_at = None
    source.last_new_articles = new
    if not not_modified:  # a 304 carries no fresh validators; keep the ones that matched
        source.etag = etag
        source.last_modified = last_modified
    session.add(source)


def record_failure(
    session: Session, source_id: int, *, now: datetime, error: str, backoff: Callable[[int], timedelta]
) -> int:
    """Note a failed fetch and when to try again (`backoff(failures in a row)` from now);
    returns the number of failures in a row."""
    source = session.get(Source, source_id)
    if source is None:
        return 0
    source.last_fetched_at = now
    source.last_error = error
    source.last_error_at = now
    source.error_count += 1
    source.next_fetch_at = now + backoff(source.error_count)
    session.add(source)
    return source.error_count
