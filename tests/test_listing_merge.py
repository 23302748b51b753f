"""HTML pages from a file resolve their links like a fetch; a text-dump article seen later in HTML
gains its URL instead of being stored twice (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from sqlmodel import select

from digests import ingest
from digests.db import session_scope
from digests.models import Article, ArticleTag
from digests.sources import listing
from tests.test_ingest import cli  # noqa: F401 - the fixture, used by name

NOW = datetime(2025, 3, 15, 8, 0, tzinfo=UTC)

TEXT = """Production / Belgium

2 articles available in total starting from 21/10/2002. Last article published on 14/03/2025.

Shooting starts on a Flemish thriller

Shooting starts on a Flemish thriller

The director's second feature is a Belgian-Dutch co-production

14/03/2025 | Production | Belgium/Netherlands

A Walloon comedy gets funding

Wallimage backs the project

10/03/2025 | Funding | Belgium
"""

HTML = """<!doctype html><html><body><main>
<h1>Production / Belgium</h1>
<p>2 articles available in total starting from 21/10/2002. Last article published on 14/03/2025.</p>
<article><h2><a href="/en/newsdetail/101/?utm_source=rss&amp;fbclid=abc&amp;xtor=RSS-1&amp;id=7#top">Shooting
 starts on a Flemish thriller</a></h2>
<p>The director's second feature is a Belgian-Dutch co-production</p>
<footer>14/03/2025 | Production | Belgium/Netherlands</footer></article>
<article><h2><a href="../funding/102/?mc_cid=x&amp;mc_eid=y">A Walloon comedy gets funding</a></h2>
<p>Wallimage backs the project</p>
<footer>10/03/2025 | Funding | Belgium</footer></article>
</main></body></html>
"""

BASE = "https://cineuropa.org/en/production/belgium/"
THRILLER = "https://cineuropa.org/en/newsdetail/101?id=7"
COMEDY = "https://cineuropa.org/en/production/funding/102"


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("https://x.org/a/?fbclid=1&id=2", "https://x.org/a?id=2"),
        ("https://x.org/a?xtor=RSS-3&mc_cid=9&mc_eid=8&gclid=7", "https://x.org/a"),
        ("https://x.org/a?at_medium=a&at_campaign=b&page=2", "https://x.org/a?page=2"),
        ("https://x.org/a?ref=home", "https://x.org/a?ref=home"),  # could be content: kept
    ],
)
def test_tracking_parameters_are_stripped(raw, canonical):
    assert ingest.canonical_url(raw) == canonical


def _store(engine, settings, tmp_path, name, text, base_url=None):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return ingest.ingest_file(engine, settings, path, base_url=base_url, now=NOW)


def _rows(engine):
    with session_scope(engine) as s:
        return [(a.url, a.title, a.published) for a in s.exec(select(Article).order_by(Article.published))]


def test_file_with_base_url_resolves_links_and_strips_tracking(engine, settings, tmp_path):
    result = _store(engine, settings, tmp_path, "page.html", HTML, base_url=BASE)
    assert sorted(a.url for a in result.articles) == sorted([THRILLER, COMEDY])


def test_relative_links_without_a_base_become_text_ids_not_paths():
    page = listing.parse_html(HTML)
    assert [a.url for a in page.articles] == [
        listing.text_id("Shooting starts on a Flemish thriller", date(2025, 3, 14)),
        listing.text_id("A Walloon comedy gets funding", date(2025, 3, 10)),
    ]


def test_text_dump_first_then_html_merges_and_gains_the_url(engine, settings, tmp_path):
    first = _store(engine, settings, tmp_path, "page.txt", TEXT)
    assert first.new == 2
    with session_scope(engine) as s:
        before = {a.title: a.id for a in s.exec(select(Article))}
    later = _store(engine, settings, tmp_path, "page.html", HTML, base_url=BASE)
    assert (later.new, later.updated) == (0, 2)
    assert _rows(engine) == [
        (COMEDY, "A Walloon comedy gets funding", date(2025, 3, 10)),
        (THRILLER, "Shooting starts on a Flemish thriller", date(2025, 3, 14)),
    ]
    with session_scope(engine) as s:
        after = {a.title: a.id for a in s.exec(select(Article))}
        tags = {(t.article_id, t.kind, t.value) for t in s.exec(select(ArticleTag))}
    assert after == before  # the same rows: digests already sent keep pointing at them
    assert (before["Shooting starts on a Flemish thriller"], "country", "Netherlands") in tags
    # And the text dump again: it is the same article, still stored once, URL kept.
    again = _store(engine, settings, tmp_path, "page.txt", TEXT)
    assert (again.new, again.updated) == (0, 0)
    assert [url for url, *_ in _rows(engine)] == [COMEDY, THRILLER]


def test_html_first_then_text_dump_is_not_stored_twice(engine, settings, tmp_path):
    _store(engine, settings, tmp_path, "page.html", HTML, base_url=BASE)
    result = _store(engine, settings, tmp_path, "page.txt", TEXT)
    assert (result.new, result.unchanged) == (0, 2)
    assert [url for url, *_ in _rows(engine)] == [COMEDY, THRILLER]


def test_a_different_date_is_a_different_article(engine, settings, tmp_path):
    _store(engine, settings, tmp_path, "page.txt", TEXT)
    _store(engine, settings, tmp_path, "page.html", HTML.replace("10/03/2025", "11/03/2025"), base_url=BASE)
    assert len(_rows(engine)) == 3


def test_cli_file_with_base_url(cli, tmp_path):  # noqa: F811 - pytest fixture
    page = tmp_path / "page.html"
    page.write_text(HTML, encoding="utf-8")
    result = cli("ingest", "--file", str(page), "--base-url", BASE, "--json")
    assert result.exit_code == 0
    assert sorted(json.loads(line)["url"] for line in result.stdout.splitlines()) == sorted(
        [THRILLER, COMEDY]
    )
