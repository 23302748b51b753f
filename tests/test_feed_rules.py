"""Issue 11, part 1, one rule at a time: dates, links, shared links, categories, caps, encodings.

Every parsing rule runs through both readers (the expat fast path and the feedparser fallback);
the storing rules run on SQLite and PostgreSQL."""

from __future__ import annotations

import gzip
import logging
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import Session

from digests import ingest, matching, store
from digests.catalog import SECTION, TAG
from digests.config import Settings
from digests.sources import rss
from digests.sources.http import Fetcher, FetchError
from tests.fixtures.site import FakeSite, Reply
from tests.test_ingest import cli as cli  # the in-process `clapper` runner fixture

NOW = datetime(2025, 3, 20, 8, 0, tzinfo=UTC)


@pytest.fixture(params=["expat", "feedparser"])
def reader(request, monkeypatch):
    if request.param == "feedparser":
        monkeypatch.setattr(rss, "read_xml", lambda raw, base: None)
    return request.param


def _rss(items: str, channel: str = "", attrs: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"{attrs}><channel><title>T</title>'
        f"{channel}{items}</channel></rss>"
    ).encode()


def _item(title: str = "A film", link: str = "https://example.org/a", extra: str = "") -> str:
    return f"<item><title>{title}</title><link>{link}</link>{extra}</item>"


# ----------------------------------------------------------------------------- dates


@pytest.mark.parametrize(
    ("stamp", "day"),
    [
        ("Sat, 01 Mar 2025 00:00:00 +0100", date(2025, 3, 1)),  # 23:00 UTC the day before
        ("Fri, 28 Feb 2025 23:30:00 -0500", date(2025, 2, 28)),  # 04:30 UTC the day after
        ("Sat, 01 Mar 2025 10:00:00", date(2025, 3, 1)),  # RFC 822 without a zone: as written
        ("Sat, 01 Mar 2025 10:00:00 CET", date(2025, 3, 1)),  # a zone name it does not know
        ("2025-03-01T00:30:00+02:00", date(2025, 3, 1)),
        ("2025-03-01", date(2025, 3, 1)),
        ("2025/3/1 14:33:00", date(2025, 3, 1)),
    ],
)
def test_the_day_is_the_one_the_feed_wrote(reader, stamp, day):
    page = rss.parse(_rss(_item(extra=f"<pubDate>{stamp}</pubDate>")), fetched=date(2030, 1, 1))
    assert page.articles[0].published == day
    assert page.articles[0].dated


def test_an_unreadable_date_is_never_invented_and_is_logged(reader, caplog):
    items = _item(extra="<pubDate>sometime next week</pubDate>")
    with caplog.at_level(logging.WARNING, logger="digests.sources.rss"):
        page = rss.parse(_rss(items), fetched=date(2025, 3, 20))
    article = page.articles[0]
    assert not article.dated  # recorded as unknown: the day below is a stand-in
    assert article.published == date(2025, 3, 20)  # no channel date: the day it was first seen
    assert "unreadable date 'sometime next week'" in caplog.text


def test_an_undated_item_takes_the_channel_date(reader):
    channel = "<pubDate>Mon, 10 Mar 2025 09:00:00 +0000</pubDate>"
    page = rss.parse(_rss(_item(), channel=channel), fetched=date(2025, 3, 20))
    assert (page.articles[0].published, page.articles[0].dated) == (date(2025, 3, 10), False)


def test_an_undated_item_keeps_its_first_day_and_is_not_updated(engine, settings, tmp_path):
    feed = tmp_path / "feed.xml"
    feed.write_bytes(_rss(_item() + _item("Dated", "https://example.org/b", "<pubDate>2025-03-01</pubDate>")))
    first = ingest.ingest_file(engine, settings, feed, now=NOW)
    again = ingest.ingest_file(engine, settings, feed, now=NOW + timedelta(days=3))
    assert (first.new, again.new, again.updated, again.unchanged) == (2, 0, 0, 2)
    with Session(engine) as s:
        days = {a.title: a.published for a in store.articles(s)}
    assert days == {"A film": date(2025, 3, 20), "Dated": date(2025, 3, 1)}


# ----------------------------------------------------------------------------- links


def test_a_guid_that_is_not_a_url_is_not_a_link(reader):
    items = (
        "<item><title>Bare number</title><guid>1559104147038</guid></item>"
        "<item><title>Not a permalink</title><guid isPermaLink='false'>https://example.org/p/1</guid></item>"
        "<item><title>Permalink</title><guid>https://example.org/p/2</guid></item>"
        "<item><title>Mail</title><link>mailto:desk@example.org</link></item>"
        "<item><title>Both</title><link>https://example.org/p/3</link><guid>778</guid></item>"
    )
    page = rss.parse(_rss(items), base_url="https://example.org/feed/")
    assert [(a.title, a.url) for a in page.articles] == [
        ("Permalink", "https://example.org/p/2"),
        ("Both", "https://example.org/p/3"),
    ]
    assert page.skipped == 3


def test_relative_links_resolve_against_xml_base_then_the_feed_link_then_the_fetched_url(reader):
    with_base = _rss(
        "<item><title>B</title><link>/b.html</link></item>"
        "<item xml:base='https://cdn.example.net/news/'><title>A</title><link>a.html</link></item>",
        channel="<link>https://www.example.org/home/</link>",
    )
    page = rss.parse(with_base, base_url="https://feeds.example.com/rss")
    assert [a.url for a in page.articles] == [
        "https://www.example.org/b.html",
        "https://cdn.example.net/news/a.html",
    ]
    if reader == "expat":
        # An item's xml:base ends with the item (feedparser lets it leak into the next siblings,
        # one reason well-formed feeds never go through it).
        swapped = _rss(
            "<item xml:base='https://cdn.example.net/news/'><title>A</title><link>a.html</link></item>"
            "<item><title>B</title><link>/b.html</link></item>",
            channel="<link>https://www.example.org/home/</link>",
        )
        assert rss.parse(swapped).articles[1].url == "https://www.example.org/b.html"
    no_channel_link = _rss("<item><title>C</title><link>c/</link></item>")
    assert rss.parse(no_channel_link, base_url="https://feeds.example.com/rss/").articles[0].url == (
        "https://feeds.example.com/rss/c/"
    )
    assert rss.parse(no_channel_link).articles == []  # nothing to resolve against: not a link


def test_atom_relative_links_and_xml_base(reader):
    atom = (
        b'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom" '
        b'xml:base="https://example.org/blog/"><title>F</title>'
        b"<entry><title>One</title><link href='2025/one'/><id>tag:x,1</id>"
        b"<published>2025-03-01T00:00:00+01:00</published></entry>"
        b"<entry><title>Two</title><id>https://example.org/two</id></entry>"
        b"<entry><title>Three</title><id>tag:example.org,3</id></entry></feed>"
    )
    page = rss.parse(atom, fetched=date(2025, 3, 20))
    assert [(a.title, a.url, a.published) for a in page.articles] == [
        ("One", "https://example.org/blog/2025/one", date(2025, 3, 1)),
        ("Two", "https://example.org/two", date(2025, 3, 20)),
    ]


def test_cli_ingest_file_with_base_url(cli, tmp_path):
    feed = tmp_path / "saved.xml"
    feed.write_bytes(_rss("<item><title>Rel</title><link>/news/1/?utm_source=rss</link></item>"))
    run = cli("ingest", "--file", str(feed), "--base-url", "https://example.org/feed/", "--json")
    assert run.exit_code == 0
    assert '"url": "https://example.org/news/1"' in run.stdout
    assert cli("ingest", "--file", str(feed), "--base-url", "example.org").exit_code == 2
    twice = tmp_path / "twice.xml"
    twice.write_bytes(_rss(_item() + _item()))
    assert "1 repeated record(s) merged" in cli("ingest", "--file", str(twice)).stdout
    assert cli("ingest", "--url", "https://example.org/", "--base-url", "https://x.org/").exit_code == 2


# ----------------------------------------------------------------------------- shared links


def test_distinct_items_sharing_a_link_are_kept_by_guid(engine, caplog):
    # A festival feed: every screening links to the one programme page.
    screening = "<item><title>Screening {n}</title><link>https://fest.example/programme</link>{guid}</item>"
    guid = "<guid isPermaLink='false'>scr-{}</guid>"
    items = "".join(screening.format(n=n, guid=guid.format(n)) for n in (1, 2, 3))
    items += screening.format(n="1 again", guid="<guid isPermaLink='false'>scr-1</guid>")  # a true repeat
    items += screening.format(n="no guid", guid="")
    page = rss.parse(_rss(items), fetched=date(2025, 3, 20))
    with caplog.at_level(logging.INFO, logger="digests.ingest"):
        result = ingest.ingest_page(engine, page, name="fest", url="https://fest.example/rss", now=NOW)
    assert (result.new, result.merged) == (3, 2)
    assert [a.url for a in result.articles] == [
        "https://fest.example/programme",
        "https://fest.example/programme#scr-2",
        "https://fest.example/programme#scr-3",
    ]
    assert "fest: 2 records merged into an earlier one with the same link" in caplog.text
    again = ingest.ingest_page(engine, page, name="fest", url="https://fest.example/rss", now=NOW)
    assert (again.new, again.unchanged) == (0, 3)


# ----------------------------------------------------------------------------- categories


def test_categories_go_through_the_catalog(reader):
    cats = "".join(
        f"<category>{c}</category>"
        for c in ("Production", "france", "Drama", "Festivals / Germany", "itunes-ish keyword", "Drama")
    )
    page = rss.parse(_rss(_item(extra=cats)))
    article = page.articles[0]
    assert article.sections == ("Production", "Festivals")
    assert article.countries == ("France", "Germany")
    assert article.tags == ("Drama", "itunes-ish keyword")


def test_itunes_keywords_are_free_tags_too(reader):
    podcast = _rss(
        _item(extra="<itunes:keywords>Documentary, film, Cannes, Belgium, directing</itunes:keywords>"),
        attrs=' xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"',
    )
    article = rss.parse(podcast).articles[0]
    assert (article.sections, article.countries) == (("Documentary",), ("Belgium",))
    assert article.tags == ("film", "Cannes", "directing")


def test_free_tags_are_matched_but_never_listed_as_sections(engine):
    page = rss.parse(
        _rss(_item(extra="<category>Production</category><category>Horror</category><pubDate>2025-03-01</pubDate>"))
    )
    ingest.ingest_page(engine, page, name="f", url="f", now=NOW)
    with Session(engine) as s:
        assert store.tag_counts(s, SECTION) == [("Production", 1)]
        assert store.tag_counts(s, TAG) == [("Horror", 1)]
        assert [a.title for a in store.articles(s, sections=["Horror"])] == ["A film"]
        view = store.articles(s)[0]
    assert view.sections == ("Production",)  # what readers see listed
    assert matching.matches([(SECTION, "Horror")], [(TAG, "Horror")])
    assert not matching.matches([(SECTION, "Comedy")], [(TAG, "Horror")])


# ----------------------------------------------------------------------------- caps


def test_long_summaries_are_cut_at_a_word_and_logged(reader, caplog):
    body = " ".join(f"word{n}" for n in range(20000))  # about 130,000 characters
    with caplog.at_level(logging.INFO, logger="digests.sources.rss"):
        page = rss.parse(_rss(_item(extra=f"<description>&lt;p&gt;{body}&lt;/p&gt;</description>")))
    summary = page.articles[0].summary
    assert len(summary) <= 1000 and summary.endswith("…")
    assert summary[:-1].split(" ")[-1] in body.split(" ")  # whole words only
    assert "1 summaries cut to 1000 characters" in caplog.text
    short = rss.parse(_rss(_item(extra="<description>Short.</description>")), summary_max=1000)
    assert short.articles[0].summary == "Short."


def test_summary_cap_is_a_setting(engine, tmp_path):
    feed = tmp_path / "f.xml"
    feed.write_bytes(_rss(_item(extra="<description>one two three four five six</description>")))
    result = ingest.ingest_file(engine, Settings(_env_file=None, summary_max_chars=12), feed, now=NOW)
    assert result.articles[0].summary == "one two…"


def _fetcher(**kw) -> Fetcher:
    return Fetcher(Settings(_env_file=None, http_timeout=5.0, http_retries=0, **kw))


def test_responses_over_the_size_cap_are_refused(caplog):
    with FakeSite() as site, _fetcher(http_max_bytes=10_000) as fetcher:
        site.route("/big.xml", Reply(body=b"x" * 20_000))
        packed = gzip.compress(b"x" * 50_000)
        site.route("/bomb.xml", Reply(body=packed, headers={"Content-Encoding": "gzip"}))
        site.route("/small.xml", Reply(body=b"y" * 9_000))
        with caplog.at_level(logging.WARNING, logger="digests.sources.http"):
            with pytest.raises(FetchError, match="larger than 10,000 bytes"):
                fetcher.get(site.url("/big.xml"))  # declared by Content-Length
            with pytest.raises(FetchError, match="larger than 10,000 bytes"):
                fetcher.get(site.url("/bomb.xml"))  # small on the wire, 50 kB unpacked
        assert caplog.text.count("refused") == 2
        assert fetcher.get(site.url("/small.xml")).content == b"y" * 9_000


# ----------------------------------------------------------------------------- encodings


def test_stray_latin1_in_a_utf8_feed_keeps_the_utf8_intact(reader):
    doc = (
        b'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>T</title>'
        b"<item><title>Caf\xc3\xa9 de Li\xe8ge \xe2\x80\x94 \xab Premi\xe8re \xbb</title>"
        b"<link>https://example.org/a</link><description>Cr\xc3\xa9dit: Gen\xe8ve</description></item>"
        b"</channel></rss>"
    )
    article = rss.parse(doc).articles[0]
    assert article.title == "Café de Liège — « Première »"
    assert article.summary == "Crédit: Genève"


def test_a_declared_latin1_feed_is_read_as_latin1(reader):
    doc = (
        b'<?xml version="1.0" encoding="ISO-8859-1"?><rss version="2.0"><channel><title>T</title>'
        b"<item><title>Li\xe8ge</title><link>https://example.org/a</link></item></channel></rss>"
    )
    assert rss.parse(doc).articles[0].title == "Liège"
