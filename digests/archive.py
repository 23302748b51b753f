"""The public archive, each reader's own feed, and each email digest's web page (read-only queries).

The archive filters by any tag kind articles carry (country, section, and festival once sources
tag festivals), so a new kind needs no change here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlmodel import Session, col, func, select

from digests import catalog, emails, renderings, store
from digests.models import Article, ArticleTag, Outbox, Subscriber

ARCHIVE_KINDS = ("country", "section", "festival")
PER_PAGE = 30
FEED_SIZE = 50


@dataclass(frozen=True)
class ArchivePage:
    articles: list[store.ArticleView]
    filters: dict[str, str]  # kind -> value, only the kinds asked for
    page: int
    has_next: bool
    choices: dict[str, list[str]]  # kind -> values some article carries (for the filter form)


def tag_values(session: Session) -> dict[str, list[str]]:
    """{kind: sorted values} for the archive's kinds, only those with at least one article."""
    rows = session.exec(
        select(ArticleTag.kind, ArticleTag.value)
        .where(col(ArticleTag.kind).in_(ARCHIVE_KINDS))
        .group_by(ArticleTag.kind, ArticleTag.value)
    ).all()
    found: dict[str, list[str]] = {}
    for kind, value in rows:
        found.setdefault(kind, []).append(value)
    return {k: sorted(found[k], key=str.casefold) for k in ARCHIVE_KINDS if k in found}


def archive_page(session: Session, filters: dict[str, str], page: int = 1) -> ArchivePage:
    """Articles newest first carrying every (kind, value) in `filters`, `PER_PAGE` at a time."""
    page = max(page, 1)
    stmt = select(Article)
    asked = {k: _canonical(k, v) for k, v in filters.items() if k in ARCHIVE_KINDS and v}
    for kind, value in asked.items():
        # Canonical names match exactly (the (kind, value) index); anything else case-insensitively.
        same = (
            ArticleTag.value == value
            if _known(kind, value)
            else func.lower(ArticleTag.value) == value.lower()
        )
        tagged = select(ArticleTag.article_id).where(ArticleTag.kind == kind, same)
        stmt = stmt.where(col(Article.id).in_(tagged))
    stmt = stmt.order_by(col(Article.published).desc(), col(Article.id).desc())
    rows = list(session.exec(stmt.offset((page - 1) * PER_PAGE).limit(PER_PAGE + 1)))
    views = store._with_tags(session, rows[:PER_PAGE])
    return ArchivePage(views, asked, page, len(rows) > PER_PAGE, tag_values(session))


def _canonical(kind: str, value: str) -> str:
    found = catalog.lookup_country(value) if kind == "country" else None
    found = catalog.lookup_section(value) if kind == "section" else found
    return found or value.strip()


def _known(kind: str, value: str) -> bool:
    return kind in ("country", "section") and _canonical(kind, value) == value


def feed_articles(session: Session, subscriber_id: int) -> tuple[Subscriber | None, list[store.ArticleView]]:
    """The reader and the newest articles their digests would carry (the same matching rule)."""
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        return None, []
    countries, sections = emails.terms_of(session, subscriber_id)
    if not countries and not sections:
        return subscriber, []  # following nothing selects nothing, in digests and in the feed
    return subscriber, store.articles(session, countries=countries, sections=sections, limit=FEED_SIZE)


def digest_page(session: Session, subscriber_id: int, digest_key: str) -> str | None:
    """The HTML of one email digest sent to this reader, without its own "view in browser" line."""
    row = session.exec(
        select(Outbox).where(
            Outbox.subscriber_id == subscriber_id,
            Outbox.channel == "email",
            Outbox.digest_key == digest_key,
        )
    ).first()
    if row is None:
        return None
    if renderings.resolve(session, [row]):
        return None  # its shared rendering is gone: no page rather than an empty one
    return re.sub(r"<!--view-->.*?<!--/view-->", "", row.body, flags=re.S)
