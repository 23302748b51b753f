"""Fetching sources over HTTP: timeouts, User-Agent, conditional GET, retries, pagination."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from digests.config import Settings
from digests.sources import ParsedPage

log = logging.getLogger(__name__)

_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_MAX_BACKOFF = 60.0


class FetchError(Exception):
    """A source could not be fetched (after retries); `status` is the last HTTP status, if any."""

    def __init__(self, url: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{url}: {message}")
        self.url = url
        self.status = status


@dataclass(frozen=True, slots=True)
class FetchResult:
    url: str  # after redirects
    status: int
    content: bytes = b""
    content_type: str = ""
    encoding: str | None = None
    etag: str | None = None
    last_modified: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def text(self) -> str:
        return self.content.decode(self.encoding or "utf-8", errors="replace")


class Fetcher:
    """One httpx client for a run; `get` retries 5xx/429/timeouts with exponential backoff."""

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.retries = max(0, settings.http_retries)
        self.backoff = settings.http_backoff
        self.max_bytes = settings.http_max_bytes
        self._sleep = sleep
        self.client = httpx.Client(
            timeout=httpx.Timeout(settings.http_timeout),
            headers={
                "User-Agent": settings.http_user_agent,
                "Accept": "text/html,application/xml;q=0.9,*/*;q=0.8",
            },
            follow_redirects=True,
            transport=transport,
        )

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()

    def get(self, url: str, *, etag: str | None = None, last_modified: str | None = None) -> FetchResult:
        """The document at `url`; status 304 (nothing new) when the validators still match."""
        headers: dict[str, str] = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        attempt = 0
        while True:
            try:
                response, content = self._fetch(url, headers)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                if attempt >= self.retries:
                    raise FetchError(url, f"{reason} (after {attempt + 1} attempts)") from exc
                self._wait(url, attempt, reason, None)
                attempt += 1
                continue
            if response.status_code in _RETRY_STATUSES and attempt < self.retries:
                self._wait(url, attempt, f"HTTP {response.status_code}", response.headers.get("Retry-After"))
                attempt += 1
                continue
            if response.status_code == 304:
                return FetchResult(url=str(response.url), status=304, etag=etag, last_modified=last_modified)
            if response.status_code >= 400:
                raise FetchError(
                    url,
                    f"HTTP {response.status_code} {response.reason_phrase}".strip()
                    + (f" (after {attempt + 1} attempts)" if attempt else ""),
                    response.status_code,
                )
            return FetchResult(
                url=str(response.url),
                status=response.status_code,
                content=content,
                content_type=response.headers.get("Content-Type", ""),
                encoding=response.charset_encoding,
                etag=response.headers.get("ETag"),
                last_modified=response.headers.get("Last-Modified"),
            )

    def _fetch(self, url: str, headers: dict[str, str]) -> tuple[httpx.Response, bytes]:
        """The response and its body, read no further than `max_bytes` (a runaway or hostile server
        must not fill memory)."""
        with self.client.stream("GET", url, headers=headers) as response:
            declared = response.headers.get("Content-Length", "")
            if response.status_code < 300 and declared.isdigit() and int(declared) > self.max_bytes:
                self._too_large(url)
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > self.max_bytes:
                    self._too_large(url)
                chunks.append(chunk)
        return response, b"".join(chunks)

    def _too_large(self, url: str) -> None:
        log.warning(
            "fetch %s: response larger than %d bytes, refused",
            url,
            self.max_bytes,
            extra={"event": "fetch_too_large", "url": url},
        )
        raise FetchError(url, f"response larger than {self.max_bytes:,} bytes (HTTP_MAX_BYTES)")

    def _wait(self, url: str, attempt: int, reason: str, retry_after: str | None) -> None:
        delay = min(self.backoff * 2**attempt, _MAX_BACKOFF)
        if retry_after and retry_after.isdigit():
            delay = min(max(delay, float(retry_after)), _MAX_BACKOFF)
        log.info("fetch %s: %s, retry %d in %.1fs", url, reason, attempt + 1, delay)
        self._sleep(delay)


def paginate(
    fetcher: Fetcher,
    first: ParsedPage,
    *,
    parse: Callable[[FetchResult], ParsedPage],
    consume: Callable[[ParsedPage], int],
    max_pages: int,
) -> int:
    """Follow `next_url` (/p/2/, …) up to `max_pages` pages in all, stopping at a page that adds
    nothing new. `consume` stores a page and returns how many of its articles were new; the first
    page is consumed here too. Returns the number of pages consumed.

    A later page that fails to load ends the walk quietly: page one already succeeded.
    """
    pages = 1
    page = first
    added = consume(page)
    seen = {page.next_url}
    while added and page.next_url and pages < max_pages:
        url = page.next_url
        try:
            result = fetcher.get(url)
            page = parse(result)
        except (FetchError, ValueError) as exc:
            log.warning("pagination stopped at %s: %s", url, exc)
            break
        pages += 1
        added = consume(page)
        if page.next_url in seen:  # a page linking back to itself or an earlier one
            break
        seen.add(page.next_url)
    return pages
