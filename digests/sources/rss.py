"""RSS 2.0 / Atom / RDF feeds. Pure: parses bytes or text, fetches nothing.

Well-formed RSS 2.0, RSS 1.0 (RDF) and Atom 1.0 documents are read with the standard library's
expat parser (`feedxml`), several times faster than feedparser; anything else (broken markup,
undefined entities, Atom 0.3, CDF…) goes through feedparser. Both yield the same `RawEntry`, so
dates, links, categories and caps are decided once, here.
"""

from __future__ import annotations

import calendar
import codecs
import html
import io
import logging
import re
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache
from urllib.parse import urljoin

import feedparser

from digests import catalog
from digests.sources import ARTICLE, INTERVIEW, ParsedArticle, ParsedPage
from digests.sources.feedxml import RawEntry, RawFeed, read_xml

log = logging.getLogger(__name__)

_FEED_MARKERS = re.compile(rb"<(?:rss|feed|rdf:RDF)[\s>]", re.IGNORECASE)
_XML_ENCODING = re.compile(rb"""^(?:\xef\xbb\xbf)?\s*<\?xml[^>]*encoding=["']([A-Za-z0-9._-]+)["']""")
_DROP = re.compile(r"<(script|style)\b.*?</\1\s*>|<!--.*?-->", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*|[!?])[^>]*(?:>|$)")
# Inline markup joins its text to the words around it ("<a>piece</a>." is "piece."); any other tag
# separates words.
_INLINE = frozenset("a abbr b bdi bdo cite code em font i kbd mark q s small span strong sub sup u".split())
_NUMERIC_DAY = re.compile(r"^(\d{4})[/.-](\d{1,2})[/.-](\d{1,2})(?:$|[\sT])")
_TITLE_MAX_CHARS = 100
_ABSOLUTE = re.compile(r"https?://(?:[^/?#\s@]*@)?[^/?#\s@:]+", re.IGNORECASE)  # scheme and a host
_TERM_SPLIT = re.compile(r"\s*[/|,;]\s*")
SUMMARY_MAX_CHARS = 1000
_MAX_TAGS = 20  # free tags per item: an item with 200 keywords is keyword stuffing


class FeedError(ValueError):
    """The document is not a feed we can read."""


def looks_like_feed(data: bytes | str) -> bool:
    raw = data.encode("utf-8", "replace") if isinstance(data, str) else data
    return bool(_FEED_MARKERS.search(raw[:4096]))


def strip_html(fragment: str) -> str:
    """Plain text of an HTML fragment, whitespace collapsed (scripts, styles and comments dropped)."""
    if "<" in fragment:
        fragment = _TAG.sub(_tag_space, _DROP.sub(" ", fragment))
    if "&" in fragment:
        fragment = html.unescape(fragment)
    return " ".join(fragment.split())


def _tag_space(match: re.Match[str]) -> str:
    return "" if match.group(2).lower() in _INLINE else " "


def cut(text: str, limit: int) -> str:
    """`text` in at most `limit` characters, cut at a word boundary with an ellipsis."""
    if limit <= 0 or len(text) <= limit:
        return text
    head = text[: limit - 1]
    space = head.rfind(" ")
    if space > limit // 2:  # one giant "word" (a URL) is cut where it stands
        head = head[:space]
    return head.rstrip(" ,;:.-") + "…"


def _latin1_fallback(exc: UnicodeError) -> tuple[str, int]:
    assert isinstance(exc, UnicodeDecodeError)
    return exc.object[exc.start : exc.end].decode("cp1252", errors="replace"), exc.end


codecs.register_error("clapper-cp1252", _latin1_fallback)


def repair_utf8(raw: bytes) -> bytes:
    """A document that says (or defaults to) UTF-8 but holds stray latin-1/cp1252 bytes: only
    those bytes are re-read as cp1252, so the valid UTF-8 around them stays intact (feedparser
    would re-read the whole document as cp1252 and garble every accented UTF-8 letter)."""
    declared = _XML_ENCODING.match(raw)
    if declared and declared.group(1).lower().replace(b"_", b"-") not in (b"utf-8", b"utf8"):
        return raw
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):  # UTF-16 by its byte-order mark
        return raw
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        fixed = raw.decode("utf-8", errors="clapper-cp1252").encode("utf-8")
        log.warning("feed: invalid UTF-8 bytes read as cp1252", extra={"event": "feed_mixed_encoding"})
        return fixed
    return raw


def parse(
    data: bytes | str,
    *,
    base_url: str | None = None,
    fetched: date | None = None,
    summary_max: int = SUMMARY_MAX_CHARS,
) -> ParsedPage:
    """Every usable entry of a feed; raises FeedError when the document is not a feed at all.

    `base_url` (the fetched URL, or `--base-url`) resolves relative links when neither `xml:base`
    nor the feed's own link does; `fetched` dates the undated entries when the channel has no date.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    raw = repair_utf8(raw)
    feed = read_xml(raw, base_url) or _read_feedparser(raw)
    today = fetched or datetime.now(UTC).date()
    channel_day = next(filter(None, map(feed_day, feed.dates)), None)
    fallback_day = channel_day or today
    # Relative links: xml:base (already applied by the readers), then the feed's own link, then
    # the fetched URL.
    channel_link = _absolute(feed.link, base_url)
    page = ParsedPage(heading=strip_html(feed.title) or None)
    cut_count = 0
    for entry in feed.entries:
        article, was_cut = _article(entry, channel_link or base_url, fallback_day, summary_max)
        if article is None:
            page.skipped += 1
        else:
            page.articles.append(article)
            cut_count += was_cut
    if cut_count:
        log.info(
            "feed: %d summaries cut to %d characters",
            cut_count,
            summary_max,
            extra={"event": "feed_summary_cut", "count": cut_count},
        )
    if feed.bozo and not page.articles:
        # feedparser's lenient parser salvaged fragments of a broken document, but nothing usable.
        raise FeedError(f"malformed feed: {feed.bozo or 'no usable entries'}")
    page.total = len(feed.entries)
    return page


def _read_feedparser(raw: bytes) -> RawFeed:
    # A stream, never a str: feedparser would fetch a str that looks like a URL or open it as a path.
    # No content-location either: feedparser would resolve a bare-number guid against it into a
    # "link"; the fetched URL is applied afterwards, after the feed's own link.
    parsed = feedparser.parse(io.BytesIO(raw))
    reason = str(getattr(parsed, "bozo_exception", "") or "not a feed") if parsed.bozo else ""
    if parsed.bozo and not parsed.entries:
        raise FeedError(f"malformed feed: {reason}")
    if not parsed.entries and not parsed.feed.get("title") and not parsed.get("version"):
        raise FeedError("not a feed: no channel and no entries")
    f = parsed.feed
    atom = str(parsed.get("version", "")).startswith("atom")
    feed = RawFeed(
        title=f.get("title", ""),
        link=f.get("link") or "",
        dates=[_plain_get(f, "published"), _plain_get(f, "updated")],
        bozo=reason,
    )
    for e in parsed.entries:
        # `links` holds real <link> elements only: feedparser copies a permalink guid into
        # `link` even when it is a bare number.
        links = [x.get("href", "") for x in e.get("links") or () if x.get("rel", "alternate") == "alternate"]
        summary = e.get("summary") or ""
        if not summary and e.get("content"):
            summary = e["content"][0].get("value", "")
        stamps = [_plain_get(e, "published_parsed"), _plain_get(e, "updated_parsed")]
        feed.entries.append(
            RawEntry(
                title=e.get("title", ""),
                links=links,
                guid=(e.get("id") or "").strip() or None,
                # Atom has no isPermaLink: an http(s) id stands in for a missing link.
                guid_is_link=bool(e.get("guidislink")) or (atom and not links),
                dates=[_plain_get(e, "published"), _plain_get(e, "updated")],
                parsed_dates=[s for s in stamps if s],
                categories=[t.get("term") or t.get("label") or "" for t in e.get("tags") or ()],
                summary=summary,
            )
        )
    return feed


def _plain_get(d: feedparser.FeedParserDict, key: str):
    # FeedParserDict.get maps a missing "published" to "updated" (with a DeprecationWarning):
    # the two must stay apart, so read the plain dict.
    return dict.get(d, key) or ""


# ----------------------------------------------------------------------------- one entry


def _absolute(url: str | None, base: str | None) -> str | None:
    """`url` as an absolute http(s) URL (resolved against `base`), or None."""
    if not url:
        return None
    url = url.strip()
    if base and not _ABSOLUTE.match(url):
        url = urljoin(base, url)
    return url if _ABSOLUTE.match(url) else None


def _is_url(value: str | None) -> bool:
    return bool(value) and _absolute(value, None) is not None


def _link(entry: RawEntry, base: str | None) -> str | None:
    for href in entry.links:
        if url := _absolute(href, base):
            return url
    # A permalink guid counts only when it already is an absolute URL: "12345" is an id.
    if entry.guid and entry.guid_is_link and _is_url(entry.guid):
        return entry.guid.strip()
    return None


def feed_day(text: str | None) -> date | None:
    """The calendar day a feed wrote, in the feed's own offset (never shifted to UTC)."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        return _sane(parsedate_to_datetime(text).date())  # RFC 822; no zone = as written
    except (TypeError, ValueError, IndexError, OverflowError):
        pass
    try:
        return _sane(datetime.fromisoformat(text.replace("z", "Z")).date())
    except ValueError:
        pass
    if numeric := _NUMERIC_DAY.match(text):  # "2020/1/10 14:33:00" (Chinese forum software)
        try:
            return _sane(date(*map(int, numeric.groups())))
        except ValueError:
            return None
    return _feedparser_day(text)


def _feedparser_day(text: str) -> date | None:
    # feedparser knows many odd formats (W3DTF partials, Korean, Greek, Hungarian…); it gives UTC,
    # so this is only a fallback after the parsers that keep the feed's own offset.
    stamp = feedparser.datetimes._parse_date(text)  # noqa: SLF001 - its one public entry point is parse()
    return _sane(datetime.fromtimestamp(calendar.timegm(stamp), UTC).date()) if stamp else None


def _sane(day: date) -> date | None:
    return day if 1990 <= day.year <= 2100 else None


@lru_cache(maxsize=4096)
def _classify(term: str) -> tuple[str, str]:
    if country := catalog.lookup_country(term):
        return catalog.COUNTRY, country
    if section := catalog.lookup_section(term):
        return catalog.SECTION, section
    cleaned = " ".join(term.split())
    return catalog.TAG, cleaned[:80]


def _tags(categories: list[str]) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    found: dict[str, list[str]] = {catalog.SECTION: [], catalog.COUNTRY: [], catalog.TAG: []}
    for category in categories:
        # feedparser hands a category over HTML-escaped: decode it, then drop any markup, before
        # splitting "France/Belgium" (an entity's ";" or a tag's "/" would split it otherwise).
        for term in _TERM_SPLIT.split(catalog.strip_markup(html.unescape(category))):
            if not term.strip():
                continue
            kind, value = _classify(term)
            bucket = found[kind]
            if value not in bucket and (kind != catalog.TAG or len(bucket) < _MAX_TAGS):
                bucket.append(value)
    return tuple(found[catalog.SECTION]), tuple(found[catalog.COUNTRY]), tuple(found[catalog.TAG])


def _article(
    entry: RawEntry, base: str | None, fallback_day: date, summary_max: int
) -> tuple[ParsedArticle | None, bool]:
    title = strip_html(entry.title)
    link = _link(entry, base)
    summary_html = entry.summary
    if summary_max > 0 and len(summary_html) > summary_max * 20:
        summary_html = summary_html[: summary_max * 20]  # no need to strip megabytes we then drop
    plain = strip_html(summary_html)
    if not title:
        # RSS 2.0 asks for a title or a description: a micro-post has only the latter.
        title = cut(plain, _TITLE_MAX_CHARS)
    if not title or not link:
        log.warning("feed: entry without title or link skipped: %r", title or entry.guid)
        return None, False
    published = next(filter(None, map(feed_day, entry.dates)), None)
    if published is None and entry.parsed_dates:
        published = _sane(datetime.fromtimestamp(calendar.timegm(entry.parsed_dates[0]), UTC).date())
    dated = published is not None
    if not dated:
        unreadable = [d for d in entry.dates if d and d.strip()]
        if unreadable:
            log.warning(
                "feed: unreadable date %r on %r: dated when first seen",
                unreadable[0],
                link,
                extra={"event": "feed_bad_date", "url": link},
            )
        published = fallback_day
    summary = cut(plain, summary_max)
    sections, countries, tags = _tags(entry.categories)
    kind = INTERVIEW if "Interviews" in sections or title.lower().startswith("interview:") else ARTICLE
    article = ParsedArticle(
        title=title,
        summary=summary,
        url=link,
        published=published,
        sections=sections,
        countries=countries,
        kind=kind,
        tags=tags,
        dated=dated,
        guid=entry.guid,
    )
    return article, summary is not plain
