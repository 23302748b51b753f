"""Feeds: RSS 2.0 and Atom through feedparser; HTML stripped; categories through the catalog."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from digests.sources import rss

FIXTURES = Path(__file__).parent / "fixtures"


def test_rss2_feed():
    page = rss.parse((FIXTURES / "feed-rss2.xml").read_bytes(), fetched=date(2025, 3, 20))
    assert page.heading == "Cineuropa - Production"
    assert page.skipped == 0
    first, interview, festival, untitled = page.articles
    assert first.title == "Céline Devaux wraps her second feature"
    assert first.url == "https://cineuropa.org/en/newsdetail/470001/?utm_source=rss&utm_medium=feed"
    assert first.summary == (
        "The French animator-turned-director shot for eight weeks between Marseille & Liège. "
        "A Sacrebleu production"
    )
    assert first.published == date(2025, 3, 12)
    assert first.sections == ("Production",)
    assert first.countries == ("France", "Belgium")
    assert first.kind == "article"

    assert interview.kind == "interview"
    assert interview.sections == ("Interviews",)
    assert interview.countries == ("Netherlands",)
    assert interview.summary == "“I wanted the sea to be a character”"
    # 23:30 at UTC-2 is the next day in UTC, but readers see the day the feed wrote.
    assert interview.published == date(2025, 3, 11)
    assert interview.dated

    # No date: the channel's (lastBuildDate), flagged as a stand-in. Unknown categories are free
    # tags, not sections.
    assert festival.published == date(2025, 3, 12)
    assert not festival.dated
    assert festival.sections == ()
    assert festival.tags == ("Toronto 2024", "Platform")
    assert festival.countries == ()

    # RSS asks for a title or a description: a micro-post is titled by its text.
    assert untitled.title == "An item without a title is titled by its description."
    assert untitled.url == "https://cineuropa.org/en/newsdetail/000000/"


def test_atom_feed():
    page = rss.parse((FIXTURES / "feed-atom.xml").read_text(encoding="utf-8"))
    assert page.heading == "Film Industry News"
    fund, box = page.articles
    assert fund.title == "Czech fund backs three co-productions"
    assert fund.url == "https://Example.org/news/czech-fund/#top"
    assert fund.summary == "The State Cinema Fund supports films with Slovakia."
    assert fund.published == date(2025, 3, 10)  # published wins over updated
    assert fund.sections == ("Funding",)
    assert fund.countries == ("Czech Republic", "Slovakia")

    assert box.summary == "Admissions rose by a third."
    assert box.published == date(2025, 3, 9)
    assert box.sections == ("Box Office",)
    assert box.countries == ("Spain",)


@pytest.mark.parametrize(
    "data",
    [
        b"<html><body><p>Not a feed</p></body></html>",
        b"<?xml version='1.0'?><rss version='2.0'><channel><item><title>Broken</titl></item>",
        b"",
        "https://example.org/feed.xml",  # never fetched: parse reads data only
    ],
)
def test_malformed_feed_raises_a_clear_error(data):
    with pytest.raises(rss.FeedError, match="malformed feed|not a feed"):
        rss.parse(data)


def test_empty_but_valid_feed_is_not_an_error():
    page = rss.parse(b"<?xml version='1.0'?><rss version='2.0'><channel><title>Quiet</title></channel></rss>")
    assert page.articles == [] and page.heading == "Quiet"


def test_strip_html():
    assert rss.strip_html("<p>a<br/>b &amp; <em>c</em></p>") == "a b & c"
    assert rss.strip_html("  plain   text ") == "plain text"


def test_looks_like_feed():
    assert rss.looks_like_feed((FIXTURES / "feed-atom.xml").read_bytes())
    assert rss.looks_like_feed("<?xml version='1.0'?>\n<rss version='2.0'>")
    assert not rss.looks_like_feed("<html><body>rss is great</body></html>")
