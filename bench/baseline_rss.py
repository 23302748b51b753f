"""The feed parser as it was before issue 11 (commit 3686b07), kept verbatim as the bench's baseline:
feedparser for every document, BeautifulSoup for every summary. Not used by the application."""

from __future__ import annotations

import calendar
import io
import logging
import re
from datetime import UTC, date, datetime

import feedparser
from bs4 import BeautifulSoup

from digests import catalog
from digests.sources import ARTICLE, INTERVIEW, ParsedArticle, ParsedPage

log = logging.getLogger(__name__)

_FEED_MARKERS = re.compile(rb"<(?:rss|feed|rdf:RDF)[\s>]", re.IGNORECASE)


class FeedError(ValueError):
    """The document is not a feed we can read."""


def looks_like_feed(data: bytes | str) -> bool:
    raw = data.encode("utf-8", "replace") if isinstance(data, str) else data
    return bool(_FEED_MARKERS.search(raw[:4096]))


def strip_html(fragment: str) -> str:
    """Plain text of an HTML fragment, whitespace collapsed."""
    if "<" not in fragment and "&" not in fragment:
        return " ".join(fragment.split())
    return " ".join(BeautifulSoup(fragment, "html.parser").get_text(" ").split())


def parse(data: bytes | str, *, base_url: str | None = None, fetched: date | None = None) -> ParsedPage:
    """Every usable entry of a feed; raises FeedError when the document is not a feed at all."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    # A stream, never a str: feedparser would fetch a str that looks like a URL or open it as a path.
    headers = {"content-location": base_url} if base_url else None
    parsed = feedparser.parse(io.BytesIO(raw), response_headers=headers)
    if parsed.bozo and not parsed.entries:
        reason = getattr(parsed, "bozo_exception", None) or "not a feed"
        raise FeedError(f"malformed feed: {reason}")
    if not parsed.entries and not parsed.feed.get("title") and not parsed.get("version"):
        raise FeedError("not a feed: no channel and no entries")
    page = ParsedPage(heading=strip_html(parsed.feed.get("title", "")) or None)
    today = fetched or datetime.now(UTC).date()
    for entry in parsed.entries:
        article = _entry(entry, today)
        if article is None:
            page.skipped += 1
        else:
            page.articles.append(article)
    if parsed.bozo and not page.articles:
        # feedparser's lenient parser salvaged fragments of a broken document, but nothing usable.
        raise FeedError(f"malformed feed: {getattr(parsed, 'bozo_exception', None) or 'no usable entries'}")
    page.total = len(parsed.entries)
    return page


def _entry(entry: feedparser.FeedParserDict, today: date) -> ParsedArticle | None:
    title = strip_html(entry.get("title", ""))
    link = entry.get("link") or (entry.get("id") if str(entry.get("id", "")).startswith("http") else None)
    if not title or not link:
        log.warning("feed: entry without title or link skipped: %r", title or link)
        return None
    summary_html = entry.get("summary") or ""
    if not summary_html and entry.get("content"):
        summary_html = entry["content"][0].get("value", "")
    stamp = entry.get("published_parsed") or entry.get("updated_parsed")
    # feedparser's struct_time is UTC; an undated entry is dated the day we first saw it.
    published = datetime.fromtimestamp(calendar.timegm(stamp), UTC).date() if stamp else today

    sections: list[str] = []
    countries: list[str] = []
    for tag in entry.get("tags") or []:
        for term in re.split(r"\s*[/|,;]\s*", tag.get("term") or tag.get("label") or ""):
            if not term.strip():
                continue
            if country := catalog.lookup_country(term):
                if country not in countries:
                    countries.append(country)
            else:
                section = catalog.canonical_section(term)
                if section not in sections:
                    sections.append(section)
    kind = INTERVIEW if "Interviews" in sections or title.lower().startswith("interview:") else ARTICLE
    return ParsedArticle(
        title=title,
        summary=strip_html(summary_html),
        url=str(link).strip(),
        published=published,
        sections=tuple(sections),
        countries=tuple(countries),
        kind=kind,
    )
