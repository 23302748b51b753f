"""/archive (public), /view (one email digest as a page) and /feed (a reader's Atom feed).

Read-only: every route here answers GET (and HEAD); nothing changes state.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from urllib.parse import urlencode

from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from digests import archive, catalog, emails, search, tokens
from digests.config import Settings
from digests.db import session_scope
from digests.web import _HEADERS, page


def _page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    return int(raw) if raw.isdigit() and 0 < int(raw) < 100_000 else 1


SEARCH_LIMIT = 30  # the search box shows the newest matches; narrower words find older ones


def _within(article, filters: dict[str, str]) -> bool:
    """Whether `article` carries every tag the archive's filters ask for."""
    have = {
        "country": set(article.countries),
        "section": set(article.sections),
        "festival": {catalog.split_edition(label)[0] for label in article.festivals},
    }
    return all(value in have.get(kind, set()) for kind, value in filters.items())


def routes(settings: Settings, engine: Engine) -> list[Route]:
    base = settings.public_base_url.rstrip("/")

    def claim_for(request: Request, purpose: str) -> tokens.Claim:
        return tokens.read_token(settings, request.query_params.get("token", ""), purpose)

    async def archive_page(request: Request) -> Response:
        filters = {k: request.query_params.get(k, "").strip() for k in archive.ARCHIVE_KINDS}
        number = _page_number(request)
        words = request.query_params.get("q", "").strip()

        def read() -> archive.ArchivePage:
            with session_scope(engine) as session:
                return archive.archive_page(session, filters, number)

        found = await run_in_threadpool(read)
        searched = None
        if words:
            # The search box: the phrase rule of /search, narrowed by the filters beside it.
            searched = await run_in_threadpool(search.find, engine, words, limit=SEARCH_LIMIT)
            searched.articles = [a for a in searched.articles if _within(a, found.filters)]

        def link(page_no: int) -> str:
            query = {**found.filters, "page": str(page_no)} if page_no > 1 else dict(found.filters)
            return "/archive" + ("?" + urlencode(query) if query else "")

        if searched is not None:
            return page(
                "archive", found=found, searched=searched, words=words, previous_url=None, next_url=None
            )
        return page(
            "archive",
            found=found,
            searched=None,
            words="",
            previous_url=link(found.page - 1) if found.page > 1 else None,
            next_url=link(found.page + 1) if found.has_next else None,
        )

    async def view(request: Request) -> Response:
        try:
            claim = claim_for(request, "view")
        except tokens.InvalidToken as exc:
            return page("invalid", 400, reason=str(exc))
        key = request.query_params.get("key", "")

        def read() -> str | None:
            with session_scope(engine) as session:
                # Only while the row still holds the address this digest was mailed to.
                if tokens.load(session, settings, claim) is None:
                    return None
                return archive.digest_page(session, claim.subscriber_id, key)

        try:
            body = await run_in_threadpool(read)
        except tokens.StaleToken:
            return page("stale", 410)
        if body is None:
            return page("digest_gone", 404, archive_url="/archive")
        return HTMLResponse(body, headers=_HEADERS)

    async def feed(request: Request) -> Response:
        try:
            claim = claim_for(request, "feed")
        except tokens.InvalidToken as exc:
            return page("invalid", 400, reason=str(exc))
        subscriber_id = claim.subscriber_id

        def read():
            with session_scope(engine) as session:
                if tokens.load(session, settings, claim) is None:
                    return None, []
                return archive.feed_articles(session, subscriber_id)

        try:
            subscriber, articles = await run_in_threadpool(read)
        except tokens.StaleToken:
            return page("stale", 410)
        if subscriber is None:
            return page("gone")
        newest = max((a.first_seen_at for a in articles), default=subscriber.created_at)
        xml = emails.render(
            "web/feed.xml.j2",
            feed_id=f"{base}/feed/{subscriber_id}",
            self_url=f"{base}{request.url.path}?token={request.query_params['token']}",
            archive_url=f"{base}/archive",
            updated=_iso(newest),
            entries=[(a, _iso(datetime.combine(a.published, time(), UTC))) for a in articles],
        )
        headers = {k: v for k, v in _HEADERS.items() if k != "Content-Security-Policy"}
        return Response(xml, media_type="application/atom+xml; charset=utf-8", headers=headers)

    return [
        Route("/archive", archive_page, methods=["GET", "HEAD"]),
        Route("/view", view, methods=["GET", "HEAD"]),
        Route("/feed", feed, methods=["GET", "HEAD"]),
    ]


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
