"""Ingest end to end on SQLite and PostgreSQL: canonical URLs, dedup, updates, failing sources, CLI."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from digests import ingest, store
from digests.catalog import COUNTRY, SECTION
from digests.config import SAMPLE_LISTING, get_settings
from digests.models import Article, ArticleTag, Source
from digests.sources import ParsedArticle, ParsedPage
from tests.fixtures.site import Card, FakeSite, Reply, listing_html

FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2025, 3, 15, 8, 0, tzinfo=UTC)
JSON_KEYS = ["title", "summary", "url", "published", "sections", "countries"]


# ----------------------------------------------------------------------------- canonical URLs (pure)


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("https://Cineuropa.ORG/en/newsdetail/1/", "https://cineuropa.org/en/newsdetail/1"),
        ("https://cineuropa.org/en/newsdetail/1#comments", "https://cineuropa.org/en/newsdetail/1"),
        (
            "https://cineuropa.org/en/newsdetail/1/?utm_source=rss&id=7&UTM_Medium=x",
            "https://cineuropa.org/en/newsdetail/1?id=7",
        ),
        ("HTTP://example.org:80/a//", "http://example.org/a"),
        ("https://example.org:8443/a/", "https://example.org:8443/a"),
        ("https://example.org", "https://example.org/"),
        ("https://example.org/?q=a+b&empty=", "https://example.org/?q=a+b&empty="),
        ("clapper:text/abc", "clapper:text/abc"),
    ],
)
def test_canonical_url(raw, canonical):
    assert ingest.canonical_url(raw) == canonical


def test_normalise_dedups_variants_of_one_url_first_wins():
    a = ParsedArticle("First", "s", "https://x.org/a/?utm_campaign=1#top", date(2025, 1, 1))
    b = replace(a, title="Second", url="https://X.org/a")
    c = replace(a, title="Other", url="https://x.org/b/")
    out = ingest.normalise([a, b, c])
    assert [(x.title, x.url) for x in out] == [("First", "https://x.org/a"), ("Other", "https://x.org/b")]


def test_detect_format():
    assert ingest.detect_format((FIXTURES / "feed-atom.xml").read_bytes()) == "rss"
    assert ingest.detect_format(b"<html><body></body></html>", "application/rss+xml") == "rss"
    assert ingest.detect_format(SAMPLE_LISTING.read_bytes()) == "listing"
    assert ingest.detect_format((FIXTURES / "listing-production-france.html").read_bytes()) == "listing"


def test_failure_backoff_doubles_and_is_capped():
    assert ingest.failure_backoff(1, 30) == timedelta(minutes=30)
    assert ingest.failure_backoff(3, 30) == timedelta(minutes=120)
    assert ingest.failure_backoff(40, 30) == timedelta(hours=24)


# ----------------------------------------------------------------------------- store


def _tags(engine) -> dict[str, set[tuple[str, str]]]:
    with Session(engine) as s:
        titles = {a.id: a.title for a in s.exec(select(Article))}
        out: dict[str, set[tuple[str, str]]] = {t: set() for t in titles.values()}
        for t in s.exec(select(ArticleTag)):
            out[titles[t.article_id]].add((t.kind, t.value))
    return out


def test_same_page_twice_adds_nothing(engine, settings):
    first = ingest.ingest_file(engine, settings, SAMPLE_LISTING, now=NOW)
    assert (first.new, first.updated, first.unchanged, first.found) == (10, 0, 0, 10)
    second = ingest.ingest_file(engine, settings, SAMPLE_LISTING, now=NOW + timedelta(hours=1))
    assert (second.new, second.updated, second.unchanged) == (0, 0, 10)
    with Session(engine) as s:
        rows = s.exec(select(Article)).all()
        assert len(rows) == 10
        assert {r.first_seen_at for r in rows} == {NOW}  # a second sighting is not "new" again
        assert len(s.exec(select(ArticleTag)).all()) == 10 + 20  # ten sections, twenty country tags
    assert _tags(engine)["Charlotte Rampling is Hannah for Andrea Pallaoro"] == {
        (SECTION, "Production"),
        (COUNTRY, "Italy"),
        (COUNTRY, "Belgium"),
        (COUNTRY, "France"),
    }


def test_changed_summary_and_tags_update_the_row(engine, settings):
    html = (FIXTURES / "listing-production-france.html").read_text(encoding="utf-8")
    base = "https://cineuropa.org/en/production/france/"
    page = ingest.parse_document(html, base_url=base, now=NOW)
    assert ingest.ingest_page(engine, page, name="t", url=base, now=NOW).new == 5

    edited = html.replace("shot for eight weeks", "shot for nine weeks").replace(
        "France/Belgium</span>", "France/Belgium/Luxembourg</span>"
    )
    later = NOW + timedelta(days=1)
    result = ingest.ingest_page(
        engine, ingest.parse_document(edited, base_url=base, now=NOW), name="t", url=base, now=later
    )
    assert (result.new, result.updated, result.unchanged) == (0, 1, 4)
    with Session(engine) as s:
        row = s.exec(select(Article).where(Article.url == "https://cineuropa.org/en/newsdetail/470001")).one()
        assert "nine weeks" in row.summary
        assert row.updated_at == later and row.first_seen_at == NOW
    assert _tags(engine)[row.title] == {
        (SECTION, "Production"),
        (SECTION, "Funding"),
        (COUNTRY, "France"),
        (COUNTRY, "Belgium"),
        (COUNTRY, "Luxembourg"),
    }


def test_html_links_are_stored_canonical(engine, settings):
    html = (FIXTURES / "listing-production-france.html").read_text(encoding="utf-8")
    page = ingest.parse_document(html, base_url="https://cineuropa.org/en/production/france/", now=NOW)
    ingest.ingest_page(engine, page, name="t", url="x", now=NOW)
    with Session(engine) as s:
        urls = sorted(a.url for a in s.exec(select(Article)))
    assert urls[0] == "https://cineuropa.org/en/interview/470002"
    assert "https://cineuropa.org/en/newsdetail/470001" in urls  # no utm_*, no fragment, no slash


def test_dry_run_stores_nothing(engine, settings):
    result = ingest.ingest_file(engine, settings, SAMPLE_LISTING, dry_run=True, now=NOW)
    assert result.new == 10
    with Session(engine) as s:
        assert store.count_articles(s) == 0


def test_queries_follow_the_matching_rule(engine, settings):
    ingest.ingest_file(engine, settings, SAMPLE_LISTING, now=NOW)
    ingest.ingest_file(engine, settings, FIXTURES / "listing-variants.txt", now=NOW)
    with Session(engine) as s:
        everything = store.latest_articles(s, limit=100)
        assert len(everything) == 15
        assert [a.published for a in everything] == sorted((a.published for a in everything), reverse=True)
        assert len(store.latest_articles(s)) == 10

        italy = store.latest_articles(s, countries=["Italy"])
        assert [a.title for a in italy] == [
            "Matteo Rovere on set with Romulus and Remus, The First King",
            "Charlotte Rampling is Hannah for Andrea Pallaoro",
        ]
        # within a kind: any value; across kinds: all
        either = store.latest_articles(s, countries=["Italy", "Spain"], limit=100)
        assert len(either) == 3
        funded = store.latest_articles(s, countries=["Belgium"], sections=["Funding"], limit=100)
        assert [a.title for a in funded] == ["Three Belgian-French films get regional support"]
        assert store.latest_articles(s, countries=["Italy"], sections=["Funding"]) == []
        assert [a.title for a in store.latest_articles(s, sections=["Platform"])] == [
            "Canadian debut wins the Platform prize"
        ]

        since = store.articles(s, since=date(2024, 1, 1))
        assert len(since) == 3 and all(a.published >= date(2024, 1, 1) for a in since)

        counts = dict(store.tag_counts(s, COUNTRY))
        assert counts["Belgium"] == 11 and counts["Czech Republic"] == 1
        assert store.tag_counts(s, COUNTRY)[0] == ("Belgium", 11)
        assert dict(store.tag_counts(s, COUNTRY, date(2024, 1, 1))) == {
            "Belgium": 1,
            "France": 1,
            "Poland": 1,
            "Czech Republic": 1,
        }
        assert dict(store.tag_counts(s, SECTION, datetime(2024, 1, 1, tzinfo=UTC)))["Festivals"] == 1

        interview = next(a for a in everything if a.kind == "interview")
        assert interview.as_json() == {
            "title": "Marta Nowak • Director of Quiet Waters",
            "summary": "“We shot everything on the island, in winter, with a crew of nine”",
            "url": interview.url,
            "published": "2024-09-12",
            "sections": ["Interviews"],
            "countries": ["Czech Republic", "Poland"],
        }


def test_sources_add_list_remove(engine):
    with Session(engine) as s:
        store.add_source(s, name="b", url="https://b.example/feed", kind="rss")
        store.add_source(s, name="a", url="https://a.example/list/")
        with pytest.raises(ValueError, match="already exists"):
            store.add_source(s, name="a", url="https://other.example/")
        with pytest.raises(ValueError, match="unknown source kind"):
            store.add_source(s, name="c", url="https://c.example/", kind="atom")
        s.commit()
        assert [x.name for x in store.list_sources(s)] == ["a", "b"]
        assert store.remove_source(s, "a") and not store.remove_source(s, "a")
        s.commit()
        assert [x.name for x in store.list_sources(s)] == ["b"]


# ----------------------------------------------------------------------------- sources over HTTP


FEED = (FIXTURES / "feed-rss2.xml").read_bytes()


@pytest.fixture
def site():
    with FakeSite() as s:
        page1 = [
            Card(f"Belgian story {i}", f"/news/{i}/?utm_source=list", "Summary", date(2025, 3, 10))
            for i in range(3)
        ]
        page2 = [Card(f"Older story {i}", f"/news/old-{i}/", "Summary", date(2025, 2, 1)) for i in range(2)]
        s.route(
            "/production/",
            Reply(
                body=listing_html("Production / Belgium", page1, next_href="/production/p/2/"), etag='"L1"'
            ),
        )
        s.route("/production/p/2/", Reply(body=listing_html("Production / Belgium", page2)))
        s.route(
            "/feed.xml",
            Reply(
                body=FEED, content_type="application/rss+xml", last_modified="Wed, 12 Mar 2025 09:00:00 GMT"
            ),
        )
        s.route("/garbage", Reply(body="<html><body><p>We are down for maintenance.</p></body></html>"))
        s.route("/slow", Reply(body="late", delay=1.0))
        yield s


@pytest.fixture
def fast(settings):
    return settings.model_copy(update={"http_timeout": 0.3, "http_retries": 1, "http_backoff": 0.01})


def _add(engine, site, **sources):
    with Session(engine) as s:
        for name, (path, kind) in sources.items():
            store.add_source(s, name=name, url=site.url(path), kind=kind)
        s.commit()


def _source(engine, name) -> Source:
    with Session(engine) as s:
        return store.get_source(s, name)


def test_a_failing_source_does_not_stop_the_others(engine, fast, site, caplog):
    _add(
        engine,
        site,
        a_missing=("/nowhere", "auto"),
        b_listing=("/production/", "auto"),
        c_garbage=("/garbage", "auto"),
        d_feed=("/feed.xml", "auto"),
        e_slow=("/slow", "auto"),
    )
    with caplog.at_level(logging.WARNING, logger="digests.ingest"):
        report = ingest.run_sources(engine, fast, now=NOW)
    by = {r.name: r for r in report.results}
    assert [r.name for r in report.results] == ["a_missing", "b_listing", "c_garbage", "d_feed", "e_slow"]
    assert (by["b_listing"].ok, by["b_listing"].new, by["b_listing"].pages) == (True, 5, 2)
    # Four: the title-less item is titled by its description.
    assert (by["d_feed"].ok, by["d_feed"].new) == (True, 4)
    assert report.new == 9 and not report.all_failed
    assert "HTTP 404" in by["a_missing"].error
    assert "not a listing page" in by["c_garbage"].error
    assert "Timeout" in by["e_slow"].error
    assert {r.name for r in report.failed} == {"a_missing", "c_garbage", "e_slow"}
    assert sum("failed" in r.getMessage() for r in caplog.records) == 3

    missing, listing_src, feed = (
        _source(engine, "a_missing"),
        _source(engine, "b_listing"),
        _source(engine, "d_feed"),
    )
    assert missing.error_count == 1 and "404" in missing.last_error and missing.last_error_at == NOW
    assert missing.next_fetch_at == NOW + timedelta(minutes=fast.ingest_every_minutes)
    assert missing.last_success_at is None
    assert listing_src.last_success_at == NOW and listing_src.etag == '"L1"' and listing_src.error_count == 0
    assert listing_src.last_new_articles == 5
    assert feed.last_modified == "Wed, 12 Mar 2025 09:00:00 GMT"
    with Session(engine) as s:
        assert store.count_articles(s) == 9
        stored = {a.url for a in s.exec(select(Article))}
    assert site.url("/news/0") in stored  # canonical: no utm_*, no trailing slash

    # Next run, before the failing ones may retry: they are deferred; the listing answers 304.
    later = NOW + timedelta(minutes=5)
    again = ingest.run_sources(engine, fast, now=later)
    by = {r.name: r for r in again.results}
    assert by["a_missing"].deferred and by["c_garbage"].deferred and by["e_slow"].deferred
    assert by["b_listing"].not_modified and by["b_listing"].new == 0
    assert by["d_feed"].new == 0 and by["d_feed"].unchanged == 4
    assert site.hits("/nowhere") == 1
    assert any(r.headers.get("If-None-Match") == '"L1"' for r in site.requests if r.path == "/production/")
    assert any(
        r.headers.get("If-Modified-Since") == "Wed, 12 Mar 2025 09:00:00 GMT"
        for r in site.requests
        if r.path == "/feed.xml"
    )

    # Once due again it fails again: the wait doubles.
    much_later = NOW + timedelta(hours=1)
    ingest.run_sources(engine, fast, names=None, now=much_later)
    missing = _source(engine, "a_missing")
    assert missing.error_count == 2
    assert missing.next_fetch_at == much_later + timedelta(minutes=2 * fast.ingest_every_minutes)

    # Once it works, the error state is cleared.
    site.route("/nowhere", Reply(body=FEED, content_type="application/rss+xml"))
    report = ingest.run_sources(
        engine, fast, names=["a_missing"], now=much_later
    )  # named: runs despite backoff
    assert report.results[0].ok
    missing = _source(engine, "a_missing")
    assert (missing.error_count, missing.last_error, missing.next_fetch_at) == (0, None, None)


def test_every_source_failing_is_all_failed(engine, fast, site):
    _add(engine, site, one=("/nowhere", "auto"), two=("/garbage", "listing"))
    report = ingest.run_sources(engine, fast, now=NOW)
    assert report.all_failed and report.new == 0
    assert not ingest.IngestReport().all_failed  # no sources: nothing failed


def test_unknown_source_name_raises(engine, fast):
    with pytest.raises(KeyError):
        ingest.run_sources(engine, fast, names=["nope"], now=NOW)


def test_page_of_parse_document_rejects_garbage():
    with pytest.raises(ingest.ParseError):
        ingest.parse_document(b"just some words", fmt="listing")
    with pytest.raises(ingest.ParseError, match="malformed feed|not a feed"):
        ingest.parse_document(b"just some words", fmt="rss")
    assert isinstance(ingest.parse_document(SAMPLE_LISTING.read_bytes()), ParsedPage)


# ----------------------------------------------------------------------------- CLI


@pytest.fixture
def cli(db_url, tmp_path, monkeypatch):
    """Run `clapper …` in-process against the test database; logging restored afterwards."""
    from digests.cli import app

    monkeypatch.chdir(tmp_path)  # no developer .env
    monkeypatch.setenv("DATABASE_URL", db_url)
    # `clapper demo` signs its sample email's links; PostgreSQL needs a key for that.
    monkeypatch.setenv("SECRET_KEY", "ingest-test-key-0123456789abcdef-012345")
    monkeypatch.setenv("HTTP_TIMEOUT", "0.3")
    monkeypatch.setenv("HTTP_RETRIES", "0")
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps tables to the terminal width
    get_settings.cache_clear()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)

    yield run
    root.handlers[:] = handlers
    root.setLevel(level)
    get_settings.cache_clear()


def test_cli_ingest_exit_code_only_when_every_source_failed(cli, site):
    assert cli("ingest").exit_code == 0  # no sources at all
    assert cli("sources", "add", "broken", site.url("/nowhere")).exit_code == 0
    result = cli("ingest")
    assert result.exit_code == 1
    assert "HTTP 404" in result.stdout
    assert cli("sources", "add", "feed", site.url("/feed.xml"), "--kind", "rss").exit_code == 0
    result = cli("ingest")
    assert result.exit_code == 0, result.stdout
    assert cli("ingest", "--source", "broken").exit_code == 1
    assert cli("ingest", "--source", "feed").exit_code == 0
    assert cli("ingest", "--source", "nope").exit_code == 2
    listed = cli("sources", "list")
    assert "broken" in listed.stdout and "feed" in listed.stdout
    assert cli("sources", "remove", "broken").exit_code == 0
    assert cli("sources", "remove", "broken").exit_code == 1
    assert cli("sources", "add", "feed", site.url("/feed.xml")).exit_code == 2  # taken


def test_cli_ingest_json_has_exactly_the_keys(cli):
    result = cli("ingest", "--file", str(SAMPLE_LISTING), "--json")
    assert result.exit_code == 0
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 10
    assert all(list(r) == JSON_KEYS for r in rows)
    assert rows[0] == {
        "title": "Bartosz Konopka’s The Mute starts filming",
        "summary": (
            "The second feature film by the Oscar-nominated director is a Polish-Belgian co-production"
        ),
        "url": rows[0]["url"],
        "published": "2017-09-29",
        "sections": ["Production"],
        "countries": ["Poland", "Belgium"],
    }

    result = cli("articles", "--country", "the netherlands", "--json")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["published"] for r in rows] == ["2017-09-20", "2017-08-24"]
    assert all(list(r) == JSON_KEYS and "Netherlands" in r["countries"] for r in rows)
    assert (
        cli("articles", "--section", "production", "--since", "2017-09-01", "--json").stdout.count("\n") == 4
    )
    bad = cli("articles", "--country", "Belgum")
    assert bad.exit_code == 2 and "Belgium" in bad.stderr


def test_cli_ingest_file_errors_and_dry_run(cli, tmp_path):
    junk = tmp_path / "junk.txt"
    junk.write_text("nothing here\n")
    assert cli("ingest", "--file", str(junk)).exit_code == 1
    assert cli("ingest", "--file", str(tmp_path / "missing.txt")).exit_code == 1
    assert cli("ingest", "--file", str(SAMPLE_LISTING), "--url", "http://x").exit_code == 2
    dry = cli("ingest", "--file", str(SAMPLE_LISTING), "--dry-run")
    assert dry.exit_code == 0 and "dry run" in dry.stdout
    assert cli("articles", "--json").stdout == ""
    rss = cli("ingest", "--file", str(FIXTURES / "feed-atom.xml"), "--format", "rss", "--json")
    assert rss.exit_code == 0 and len(rss.stdout.splitlines()) == 2


def test_cli_demo_shows_the_ten_articles(cli):
    result = cli("demo")
    assert result.exit_code == 0
    out = result.stdout
    assert "10 articles found" in out
    for title_start in ("Bartosz Konopka", "Two young female directors", "Charlotte Rampling"):
        assert title_start in out
    assert "Production" in out and "Netherlands" in out
    again = cli("demo")
    assert "0 new" in again.stdout and "10 already known" in again.stdout


def test_decode_uses_the_declared_charset_then_utf8_then_the_page():
    latin = "<html><head><meta charset='iso-8859-1'></head><body>Liège</body></html>".encode("latin-1")
    assert "Liège" in ingest.decode(latin)
    assert ingest.decode("Liège".encode("latin-1"), "iso-8859-1") == "Liège"
    assert ingest.decode("Liège".encode()) == "Liège"


def test_losing_an_insert_race_is_retried_once(engine, fast, site, monkeypatch):
    from sqlalchemy.exc import IntegrityError

    _add(engine, site, feed=("/feed.xml", "rss"))
    real = store.upsert_articles
    calls: list[int] = []

    def racing(session, articles, **kw):
        calls.append(len(articles))
        if len(calls) == 1:
            # What a concurrent ingest does to us: it commits the same article first, and our
            # insert then violates the unique URL.
            with Session(engine) as other:
                real(other, articles[:1], source_id=None, now=NOW)
                other.commit()
            raise IntegrityError("INSERT INTO article", {}, Exception("duplicate key value"))
        return real(session, articles, **kw)

    monkeypatch.setattr(store, "upsert_articles", racing)
    report = ingest.run_sources(engine, fast, now=NOW)
    assert report.results[0].ok and len(calls) == 2
    assert (report.results[0].new, report.results[0].unchanged) == (3, 1)
    with Session(engine) as s:
        assert store.count_articles(s) == 4


def test_cli_ingest_url(cli, site):
    feed = cli("ingest", "--url", site.url("/feed.xml"), "--json")
    assert feed.exit_code == 0 and len(feed.stdout.splitlines()) == 4
    listing_run = cli("ingest", "--url", site.url("/production/"))
    assert listing_run.exit_code == 0 and "2 pages" in listing_run.stdout
    assert len(cli("articles", "--json").stdout.splitlines()) == 9
    missing = cli("ingest", "--url", site.url("/nowhere"))
    assert missing.exit_code == 1 and "HTTP 404" in missing.stderr
    assert cli("ingest", "--url", site.url("/feed.xml"), "--format", "atom").exit_code == 2
