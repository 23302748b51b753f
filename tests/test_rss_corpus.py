"""Real feeds from public repositories (tests/corpus/feeds/SOURCES.md) against expectations written
by hand from reading each file (expected.json): title, link, the feed's own day, sections,
countries and free tags of every item. Each feed is read twice: by the fast expat reader and by the
feedparser fallback, which must agree with the same expectations."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from digests.sources import rss

CORPUS = Path(__file__).parent / "corpus" / "feeds"
EXPECTED = {k: v for k, v in json.loads((CORPUS / "expected.json").read_text("utf-8")).items() if k[0] != "_"}
FETCHED = date(2030, 1, 1)  # far from every feed's dates: an item dated "today" would show


def _as_expected(article: rss.ParsedArticle) -> dict[str, object]:
    return {
        "title": article.title,
        "url": article.url,
        "published": article.published.isoformat(),
        "sections": list(article.sections),
        "countries": list(article.countries),
        "tags": list(article.tags),
    }


def test_the_corpus_is_big_and_varied():
    assert len(EXPECTED) >= 20
    assert sum(len(f["items"]) for f in EXPECTED.values()) >= 60
    assert set(EXPECTED) == {p.name for p in CORPUS.iterdir() if p.suffix not in (".json", ".md")}


@pytest.mark.parametrize("reader", ["expat", "feedparser"])
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_feed_items_come_out_as_written(name, reader, monkeypatch):
    if reader == "feedparser":
        monkeypatch.setattr(rss, "read_xml", lambda raw, base: None)
    page = rss.parse((CORPUS / name).read_bytes(), fetched=FETCHED)
    want = EXPECTED[name]
    assert page.total == want["total"]
    got = [_as_expected(a) for a in page.articles]
    assert got == [{"tags": [], **item} for item in want["items"]]
    for article in page.articles:
        assert article.dated
        assert len(article.summary) <= rss.SUMMARY_MAX_CHARS
