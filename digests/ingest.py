"""Ingest: fetch or read a source, parse it, normalise URLs, dedup, upsert; record fetch state.

`run_sources` is what the scheduler and `clapper ingest` call: one failing source (404, garbage,
timeout) is logged and recorded on its row, and the others still run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from bs4 import UnicodeDammit
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session

from digests import catalog, store
from digests.config import Settings
from digests.models import Source
from digests.sources import ParsedArticle, ParsedPage, listing, rss
from digests.sources.http import Fetcher, FetchError, FetchResult, paginate

log = logging.getLogger(__name__)

Format = Literal["auto", "listing", "rss"]
FORMATS: tuple[str, ...] = ("auto", "listing", "rss")
_MAX_BACKOFF = timedelta(hours=24)


class ParseError(ValueError):
    """The document is neither a listing page nor a feed we can read."""


@dataclass(slots=True)
class SourceResult:
    name: str
    url: str
    ok: bool = True
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    pages: int = 0
    skipped_records: int = 0
    merged: int = 0  # records that repeated an earlier one's URL (and guid) and were folded into it
    not_modified: bool = False  # 304: nothing new since the last fetch
    deferred: bool = False  # backing off after repeated failures; not fetched this run
    error: str | None = None
    heading: str | None = None
    total: int | None = None
    articles: list[ParsedArticle] = field(default_factory=list)  # as found, canonical URLs

    @property
    def found(self) -> int:
        return len(self.articles)


@dataclass(slots=True)
class IngestReport:
    results: list[SourceResult] = field(default_factory=list)

    @property
    def new(self) -> int:
        return sum(r.new for r in self.results)

    @property
    def updated(self) -> int:
        return sum(r.updated for r in self.results)

    @property
    def failed(self) -> list[SourceResult]:
        return [r for r in self.results if not r.ok]

    @property
    def all_failed(self) -> bool:
        """Every source that was tried failed (the CLI's non-zero exit)."""
        tried = [r for r in self.results if not r.deferred]
        return bool(tried) and all(not r.ok for r in tried)


# ----------------------------------------------------------------------------- normalise (pure)


def canonical_url(url: str) -> str:
    """One spelling per article: lower-case scheme and host, no default port, no fragment, no
    utm_* parameters, no trailing slash (except the root). Non-web ids pass through unchanged."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return url
    scheme = parts.scheme.lower()
    host = parts.hostname.lower()
    if parts.port and (scheme, parts.port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{parts.port}"
    if parts.username:
        host = f"{parts.username}{':' + parts.password if parts.password else ''}@{host}"
    path = parts.path or "/"
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    query = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not k.lower().startswith("utm_")
    ]
    return urlunsplit((scheme, host, path, urlencode(query, doseq=True), ""))


def normalise(articles: Iterable[ParsedArticle]) -> list[ParsedArticle]:
    """Canonical URLs, tidy text, clean tags, and each URL once (first wins: listings are newest
    first). Whatever parser produced them, what reaches the store is plain text."""
    return normalise_counted(articles)[0]


def normalise_counted(articles: Iterable[ParsedArticle]) -> tuple[list[ParsedArticle], int]:
    """`normalise`, plus how many records were merged into an earlier one with the same URL.

    Feed items that share a link but carry distinct guids (a festival feed linking every
    screening to one programme page) stay distinct: the first keeps the plain URL, each later one
    is keyed `URL#guid` (the link still opens the same page)."""
    guids: dict[str, str | None] = {}
    out: list[ParsedArticle] = []
    merged = 0
    for a in articles:
        url = canonical_url(catalog.clean_text(a.url))
        if url in guids:
            first_guid = guids[url]
            if a.guid and first_guid and a.guid != first_guid:
                url = f"{url}#{quote(a.guid, safe='')}"
            if url in guids:
                merged += 1
                continue
        guids[url] = a.guid
        out.append(
            replace(
                a,
                url=url,
                title=catalog.clean_text(a.title),
                summary=catalog.clean_text(a.summary),
                sections=catalog.clean_tags(a.sections),
                countries=catalog.clean_tags(a.countries),
                tags=catalog.clean_tags(a.tags),
            )
        )
    return out, merged


def detect_format(data: bytes | str, content_type: str = "") -> str:
    ctype = content_type.lower()
    if any(t in ctype for t in ("rss", "atom", "/xml", "+xml")) or rss.looks_like_feed(data):
        return "rss"
    return "listing"


def parse_document(
    data: bytes | str,
    *,
    fmt: str = "auto",
    content_type: str = "",
    base_url: str | None = None,
    now: datetime | None = None,
    encoding: str | None = None,
    summary_max: int = rss.SUMMARY_MAX_CHARS,
) -> ParsedPage:
    """A listing page or a feed, whichever `fmt` says (or `data` looks like).

    `encoding` is the charset the server declared, if any (feeds declare their own)."""
    fetched = (now or datetime.now(UTC)).date()
    kind = detect_format(data, content_type) if fmt == "auto" else fmt
    if kind == "rss":
        try:
            return rss.parse(data, base_url=base_url, fetched=fetched, summary_max=summary_max)
        except rss.FeedError as exc:
            raise ParseError(str(exc)) from exc
    text = decode(data, encoding) if isinstance(data, bytes) else data
    page = listing.parse(text, base_url=base_url, fetched=fetched)
    if not page.articles and page.total is None:
        raise ParseError("no articles and no article count found: not a listing page")
    return page


def decode(data: bytes, declared: str | None = None) -> str:
    """Text of a page: the declared charset, else UTF-8, else whatever the page itself says
    (<meta charset>) or looks like."""
    for encoding in (declared, "utf-8"):
        if encoding:
            try:
                return data.decode(encoding)
            except (UnicodeDecodeError, LookupError):
                continue
    return UnicodeDammit(data, is_html=True).unicode_markup or data.decode("utf-8", errors="replace")


def failure_backoff(failures: int, every_minutes: int) -> timedelta:
    """Wait before the next try: the usual interval, doubled for each further failure, at most a day."""
    base = timedelta(minutes=max(1, every_minutes))
    # The exponent is capped before multiplying: timedelta overflows long before 2**40.
    return min(base * 2 ** min(max(0, failures - 1), 16), _MAX_BACKOFF)


# ----------------------------------------------------------------------------- store


def _store(
    session: Session, result: SourceResult, page: ParsedPage, *, source_id: int | None, now: datetime
) -> int:
    known = {x.url for x in result.articles}  # an article repeated on the next page counts once
    normalised, merged = normalise_counted(page.articles)
    if merged:
        log.info(
            "%s: %d records merged into an earlier one with the same link",
            result.name,
            merged,
            extra={"event": "ingest_merged", "source": result.name, "merged": merged},
        )
    articles = [a for a in normalised if a.url not in known]
    result.merged += merged
    up = store.upsert_articles(session, articles, source_id=source_id, now=now)
    result.articles.extend(articles)
    result.new += up.new
    result.updated += up.updated
    result.unchanged += up.unchanged
    result.skipped_records += page.skipped
    result.pages += 1
    if result.heading is None:
        result.heading, result.total = page.heading, page.total
    return up.new


def ingest_page(
    engine: Engine,
    page: ParsedPage,
    *,
    name: str,
    url: str,
    dry_run: bool = False,
    now: datetime | None = None,
) -> SourceResult:
    """Store one parsed page (dry run: report what would change, write nothing)."""
    now = now or datetime.now(UTC)
    result = SourceResult(name=name, url=url)
    with Session(engine, expire_on_commit=False) as session:
        _store(session, result, page, source_id=None, now=now)
        session.rollback() if dry_run else session.commit()
    return result


def ingest_file(
    engine: Engine,
    settings: Settings,
    path: str | Path,
    *,
    fmt: str = "auto",
    dry_run: bool = False,
    now: datetime | None = None,
    base_url: str | None = None,
) -> SourceResult:
    """A saved listing page (HTML or text) or feed; `base_url` is where it was saved from (relative
    links resolve against it). Raises OSError/ParseError: the caller asked for it."""
    path = Path(path)
    page = parse_document(
        path.read_bytes(), fmt=fmt, now=now, base_url=base_url, summary_max=settings.summary_max_chars
    )
    return ingest_page(engine, page, name=path.name, url=str(path), dry_run=dry_run, now=now)


def ingest_url(
    engine: Engine,
    settings: Settings,
    url: str,
    *,
    fmt: str = "auto",
    dry_run: bool = False,
    now: datetime | None = None,
    source: Source | None = None,
    fetcher: Fetcher | None = None,
) -> SourceResult:
    """Fetch and store one URL (following listing pagination). With `source`, send its validators
    and record the outcome on its row. Raises FetchError/ParseError for the caller to handle."""
    now = now or datetime.now(UTC)
    result = SourceResult(name=source.name if source else url, url=url)
    own = fetcher is None
    fetcher = fetcher or Fetcher(settings)
    try:
        conditional = source is not None and not dry_run
        first = fetcher.get(
            url,
            etag=source.etag if conditional else None,
            last_modified=source.last_modified if conditional else None,
        )
        with Session(engine, expire_on_commit=False) as session:
            if first.not_modified:
                result.not_modified = True
            else:
                kind = fmt if fmt != "auto" else detect_format(first.content, first.content_type)

                def parse(r: FetchResult) -> ParsedPage:
                    return parse_document(
                        r.content,
                        fmt=kind,
                        content_type=r.content_type,
                        base_url=r.url,
                        now=now,
                        encoding=r.encoding,
                        summary_max=settings.summary_max_chars,
                    )

                def consume(p: ParsedPage) -> int:
                    return _store(session, result, p, source_id=source.id if source else None, now=now)

                page = parse(first)
                if kind == "listing":
                    paginate(
                        fetcher, page, parse=parse, consume=consume, max_pages=settings.listing_max_pages
                    )
                else:
                    consume(page)
            if source is not None and not dry_run:
                store.record_success(
                    session,
                    source.id,
                    now=now,
                    new=result.new,
                    etag=first.etag,
                    last_modified=first.last_modified,
                    not_modified=first.not_modified,
                )
            session.rollback() if dry_run else session.commit()
    finally:
        if own:
            fetcher.close()
    return result


def run_sources(
    engine: Engine,
    settings: Settings,
    *,
    names: Sequence[str] | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
    fetcher: Fetcher | None = None,
    on_result: Callable[[SourceResult], None] | None = None,
) -> IngestReport:
    """Ingest every enabled source (or the named ones, even if disabled or backing off).

    Never raises for one bad source: its error goes in the report, the log and its row.
    """
    now = now or datetime.now(UTC)
    report = IngestReport()
    with Session(engine, expire_on_commit=False) as session:
        if names:
            sources = []
            for name in names:
                found = store.get_source(session, name)
                if found is None:
                    raise KeyError(f"no source named {name!r}")
                sources.append(found)
        else:
            sources = store.list_sources(session, enabled_only=True)
    own = fetcher is None
    fetcher = fetcher or Fetcher(settings)
    try:
        for source in sources:
            result = _run_one(
                engine, settings, source, now=now, dry_run=dry_run, fetcher=fetcher, forced=bool(names)
            )
            report.results.append(result)
            if on_result:
                on_result(result)
    finally:
        if own:
            fetcher.close()
    log.info(
        "ingest: %d sources, %d new, %d updated, %d failed",
        len(report.results),
        report.new,
        report.updated,
        len(report.failed),
        extra={
            "event": "ingest_done",
            "new": report.new,
            "updated": report.updated,
            "failed": len(report.failed),
        },
    )
    return report


def _run_one(
    engine: Engine,
    settings: Settings,
    source: Source,
    *,
    now: datetime,
    dry_run: bool,
    fetcher: Fetcher,
    forced: bool,
) -> SourceResult:
    if not forced and source.next_fetch_at is not None and source.next_fetch_at > now:
        log.info("source %s: backing off until %s", source.name, source.next_fetch_at.isoformat())
        return SourceResult(name=source.name, url=source.url, deferred=True)

    def attempt() -> SourceResult:
        return ingest_url(
            engine,
            settings,
            source.url,
            fmt=source.kind,
            dry_run=dry_run,
            now=now,
            source=source,
            fetcher=fetcher,
        )

    try:
        try:
            result = attempt()
        except (IntegrityError, OperationalError):
            # Another ingest (a manual `clapper ingest` beside the scheduler) stored the same new
            # article between our read and our insert (PostgreSQL: unique violation; SQLite WAL:
            # a stale snapshot, "database is locked"); a second pass sees it as known.
            log.info("source %s: concurrent insert, retrying once", source.name)
            result = attempt()
    except Exception as exc:  # noqa: BLE001 - one bad source must never stop the others
        error = str(exc) if isinstance(exc, FetchError | ParseError) else f"{type(exc).__name__}: {exc}"
        failures = 0
        if not dry_run:
            with Session(engine, expire_on_commit=False) as session:
                failures = store.record_failure(
                    session,
                    source.id,
                    now=now,
                    error=error,
                    backoff=lambda n: failure_backoff(n, settings.ingest_every_minutes),
                )
                session.commit()
        log.warning(
            "source %s failed (%d in a row): %s",
            source.name,
            failures,
            error,
            exc_info=not isinstance(exc, FetchError | ParseError),
            extra={"event": "source_failed", "source": source.name, "error": error},
        )
        return SourceResult(name=source.name, url=source.url, ok=False, error=error)
    log.info(
        "source %s: %d found, %d new, %d updated%s",
        source.name,
        result.found,
        result.new,
        result.updated,
        " (not modified)" if result.not_modified else "",
        extra={"event": "source_done", "source": source.name, "new": result.new, "updated": result.updated},
    )
    return result
