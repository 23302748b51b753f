"""The HTTP fetcher against a real server on 127.0.0.1: validators, retries, timeouts, pagination."""

from __future__ import annotations

from datetime import date

import pytest

from digests.config import Settings
from digests.sources import listing
from digests.sources.http import Fetcher, FetchError, paginate
from tests.fixtures.site import Card, FakeSite, Reply, listing_html

LAST_MODIFIED = "Wed, 12 Mar 2025 09:00:00 GMT"


@pytest.fixture
def site():
    with FakeSite() as s:
        yield s


def _settings(**kw) -> Settings:
    base = dict(
        http_timeout=5.0, http_retries=3, http_backoff=0.5, http_user_agent="ClapperTest/1.0 (+tests)"
    )
    return Settings(_env_file=None, **{**base, **kw})


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def fetcher(sleeps):
    # Backoff delays are recorded, not slept: the test checks them instead of waiting them out.
    with Fetcher(_settings(), sleep=sleeps.append) as f:
        yield f


def test_user_agent_and_conditional_get(site, fetcher):
    site.route(
        "/feed.xml",
        Reply(body=b"<rss/>", etag='"v1"', last_modified=LAST_MODIFIED, content_type="application/rss+xml"),
    )
    first = fetcher.get(site.url("/feed.xml"))
    assert (first.status, first.content, first.etag, first.last_modified) == (
        200,
        b"<rss/>",
        '"v1"',
        LAST_MODIFIED,
    )
    assert first.content_type == "application/rss+xml"
    assert site.requests[0].headers["User-Agent"] == "ClapperTest/1.0 (+tests)"
    assert "If-None-Match" not in site.requests[0].headers

    again = fetcher.get(site.url("/feed.xml"), etag=first.etag, last_modified=first.last_modified)
    assert again.not_modified and again.content == b""
    assert again.etag == '"v1"' and again.last_modified == LAST_MODIFIED  # the validators that matched
    sent = site.requests[1].headers
    assert sent["If-None-Match"] == '"v1"' and sent["If-Modified-Since"] == LAST_MODIFIED

    # A changed document (new ETag) comes back in full.
    site.route("/feed.xml", Reply(body=b"<rss>2</rss>", etag='"v2"'))
    changed = fetcher.get(site.url("/feed.xml"), etag='"v1"')
    assert changed.status == 200 and changed.content == b"<rss>2</rss>" and changed.etag == '"v2"'


def test_5xx_then_success_is_retried_with_exponential_backoff(site, fetcher, sleeps):
    site.route("/list/", Reply(503), Reply(502), Reply(body="<html>ok</html>"))
    result = fetcher.get(site.url("/list/"))
    assert result.status == 200 and result.text == "<html>ok</html>"
    assert site.hits("/list/") == 3
    assert sleeps == [0.5, 1.0]


def test_retry_after_is_honoured(site, fetcher, sleeps):
    site.route("/busy", Reply(429, headers={"Retry-After": "3"}), Reply(body="fine"))
    assert fetcher.get(site.url("/busy")).text == "fine"
    assert sleeps == [3.0]


def test_5xx_forever_gives_up_after_the_retries(site, fetcher, sleeps):
    site.route("/down", Reply(500))
    with pytest.raises(FetchError, match="HTTP 500") as err:
        fetcher.get(site.url("/down"))
    assert err.value.status == 500
    assert site.hits("/down") == 4  # one try + HTTP_RETRIES
    assert sleeps == [0.5, 1.0, 2.0]


def test_404_is_not_retried(site, fetcher, sleeps):
    with pytest.raises(FetchError, match="HTTP 404") as err:
        fetcher.get(site.url("/missing"))
    assert err.value.status == 404
    assert site.hits("/missing") == 1 and sleeps == []


def test_timeout_is_retried_then_reported(site, sleeps):
    site.route("/slow", Reply(body="late", delay=1.5))
    with Fetcher(_settings(http_timeout=0.2, http_retries=1), sleep=sleeps.append) as fetcher:
        with pytest.raises(FetchError, match="Timeout") as err:
            fetcher.get(site.url("/slow"))
    assert err.value.status is None
    assert site.hits("/slow") == 2 and sleeps == [0.5]


def test_timeout_then_success(site, sleeps):
    site.route("/flaky", Reply(body="late", delay=1.5), Reply(body="quick"))
    with Fetcher(_settings(http_timeout=0.3, http_retries=2), sleep=sleeps.append) as fetcher:
        assert fetcher.get(site.url("/flaky")).text == "quick"


def test_connection_refused_is_a_fetch_error(sleeps):
    with FakeSite() as gone:
        url = gone.url("/")
    with Fetcher(_settings(http_retries=0), sleep=sleeps.append) as fetcher:
        with pytest.raises(FetchError, match="ConnectError"):
            fetcher.get(url)


def _pages(site: FakeSite, count: int) -> None:
    for n in range(1, count + 1):
        path = "/production/" if n == 1 else f"/production/p/{n}/"
        cards = [
            Card(f"Page {n} article {i}", f"/news/{n}-{i}/", day=date(2025, 3, 10 - n)) for i in range(3)
        ]
        nxt = f"/production/p/{n + 1}/" if n < count else None
        site.route(
            path, Reply(body=listing_html("Production / France", cards, next_href=nxt, total=3 * count))
        )


def _walk(site: FakeSite, fetcher: Fetcher, *, max_pages: int, known: set[str]) -> tuple[int, list[str]]:
    seen: list[str] = []

    def parse(result):
        return listing.parse(result.text, base_url=result.url)

    def consume(page):
        urls = [a.url for a in page.articles]
        seen.extend(urls)
        new = [u for u in urls if u not in known]
        known.update(urls)
        return len(new)

    first = parse(fetcher.get(site.url("/production/")))
    return paginate(fetcher, first, parse=parse, consume=consume, max_pages=max_pages), seen


def test_pagination_follows_p2_up_to_the_limit(site, fetcher):
    _pages(site, 4)
    pages, seen = _walk(site, fetcher, max_pages=3, known=set())
    assert pages == 3
    assert seen[0] == site.url("/news/1-0/") and seen[-1] == site.url("/news/3-2/")
    assert len(seen) == 9
    assert site.hits("/production/p/2/") == 1 and site.hits("/production/p/3/") == 1
    assert site.hits("/production/p/4/") == 0


def test_pagination_stops_at_a_page_that_adds_nothing_new(site, fetcher):
    _pages(site, 4)
    known = {site.url(f"/news/2-{i}/") for i in range(3)}  # page 2 was stored by an earlier run
    pages, _seen = _walk(site, fetcher, max_pages=10, known=known)
    assert pages == 2
    assert site.hits("/production/p/3/") == 0


def test_pagination_stops_quietly_when_a_later_page_fails(site, fetcher):
    _pages(site, 3)
    site.route("/production/p/2/", Reply(404))
    pages, seen = _walk(site, fetcher, max_pages=5, known=set())
    assert pages == 1 and len(seen) == 3
