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

from digests import catalog
from digests.catalog import COUNTRY, FESTIVAL, SECTION, TAG
from digests.models import Article, ArticleTag, Source
from digests.phrases import search_text
from digests.sources import ParsedArticle, article_json
from digests.sources.listing import TEXT_ID_PREFIX, text_id

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
    festivals: tuple[str, ...] = ()  # "Cannes 2024"

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


TagKey = tuple[str, str, int | None]  # (kind, value, edition)


def _wanted_tags(a: ParsedArticle) -> set[TagKey]:
    wanted: set[TagKey] = (
        {(SECTION, v, None) for v in a.sections}
        | {(COUNTRY, v, None) for v in a.countries}
        | {(TAG, v, None) for v in a.tags}
    )
    festivals: dict[str, int | None] = {}
    for label in a.festivals:
        name, edition = catalog.split_edition(label)
        festivals.setdefault(name, edition)  # one row per festival (the key has no edition)
    return wanted | {(FESTIVAL, name, edition) for name, edition in festivals.items()}


def _tag_rows(article_id: int, a: ParsedArticle) -> list[dict[str, object]]:
    return [
        {"article_id": article_id, "kind": kind, "value": value, "edition": edition}
        for kind, value, edition in sorted(_wanted_tags(a), key=lambda t: (t[0], t[1]))
    ]


def _known_elsewhere(
    session: Session, articles: Sequence[ParsedArticle], existing: dict[str, Article]
) -> None:
    """The same article under its other id: a text dump's `clapper:text/…` row that a page in HTML
    now links (same title and date: the row gains the URL), or a URL row that a text dump repeats.
    Found rows join `existing` under the incoming URL, so they are updated, never stored twice."""
    linked = {
        text_id(a.title, a.published): a.url
        for a in articles
        if a.url not in existing and not a.url.startswith(TEXT_ID_PREFIX)
    }
    for chunk in _chunks(list(linked)):
        for row in session.exec(select(Article).where(col(Article.url).in_(chunk))):
            if linked[row.url] not in existing:
                existing[linked[row.url]] = row  # the update below moves it to the URL
    texts = {a.url: a for a in articles if a.url not in existing and a.url.startswith(TEXT_ID_PREFIX)}
    days = sorted({a.published for a in texts.values()})
    for chunk in _chunks(days):
        stmt = select(Article).where(
            col(Article.published).in_(chunk), col(Article.url).not_like(f"{TEXT_ID_PREFIX}%")
        )
        for row in session.exec(stmt):
            key = text_id(row.title, row.published)
            if key in texts and key not in existing:
                existing[key] = row


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
    _known_elsewhere(session, articles, existing)
    tags: dict[int, set[TagKey]] = {}
    ids = [row.id for row in existing.values()]
    for chunk in _chunks(ids):
        for t in session.exec(select(ArticleTag).where(col(ArticleTag.article_id).in_(chunk))):
            tags.setdefault(t.article_id, set()).add((t.kind, t.value, t.edition))

    fresh: list[ParsedArticle] = []
    tag_rows: list[dict[str, object]] = []
    retag: list[int] = []
    for a in articles:
        row = existing.get(a.url)
        if row is None:
            fresh.append(a)
            continue
        wanted = _wanted_tags(a)
        # An undated item keeps the day it was first stored: re-reading it is not an update.
        published = a.published if a.dated else row.published
        fields_changed = row.url != a.url and not a.url.startswith(TEXT_ID_PREFIX)
        fields_changed |= (row.title, row.summary, row.published, row.kind) != (
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
        if not a.url.startswith(TEXT_ID_PREFIX):
            row.url = a.url
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


def _filtered(stmt, countries: Iterable[str], sections: Iterable[str], festivals: Iterable[str] = ()):
    """Within a kind any chosen value matches; across kinds all must; an empty kind matches all."""
    chosen = (
        ((COUNTRY,), tuple(countries)),
        ((SECTION, TAG), tuple(sections)),
        ((FESTIVAL,), tuple(festivals)),
    )
    for kinds, values in chosen:
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
    festivals: Iterable[str] = (),
    offset: int = 0,
) -> list[ArticleView]:
    """Articles newest first (by published date), with their tags.

    `since`: published on or after; `seen_after`: first seen strictly after (digest watermarks);
    `festivals`: canonical names ("Cannes": every edition).
    """
    stmt = _filtered(select(Article), countries, sections, festivals)
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
    session: Session,
    *,
    countries: Iterable[str] = (),
    sections: Iterable[str] = (),
    limit: int = 10,
    festivals: Iterable[str] = (),
) -> list[ArticleView]:
    """The newest `limit` articles matching the given countries/sections/festivals (the subscription rule)."""
    return articles(session, countries=countries, sections=sections, festivals=festivals, limit=limit)


def _with_tags(session: Session, rows: list[Article]) -> list[ArticleView]:
    by_id: dict[int, tuple[list[str], list[str], list[str]]] = {r.id: ([], [], []) for r in rows}
    slot = {SECTION: 0, COUNTRY: 1, FESTIVAL: 2}
    for chunk in _chunks(list(by_id)):
        stmt = select(ArticleTag).where(col(ArticleTag.article_id).in_(chunk))
        for t in session.exec(stmt):
            if t.kind in slot:
                value = catalog.festival_label(t.value, t.edition) if t.kind == FESTIVAL else t.value
                by_id[t.article_id][slot[t.kind]].append(value)
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
            festivals=tuple(sorted(by_id[r.id][2])),
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
