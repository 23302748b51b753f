"""/archive, /view and /feed over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta

import feedparser
import httpx

from digests import archive, emails, queue, tokens, web
from digests.compose import Composer, DigestContext
from digests.db import session_scope
from digests.models import Article, ArticleTag, Outbox
from tests.test_web import _reader, running

ATOM = "{http://www.w3.org/2005/Atom}"


def _articles(engine, n: int = 40) -> None:
    """n articles, newest has id n; Belgium every other one, France the rest; the 5th a festival."""
    with session_scope(engine) as s:
        for i in range(1, n + 1):
            s.add(
                Article(
                    id=i,
                    url=f"https://news.example/{i}?a=1&b=2",
                    title=f"Shoot {i} <starts> & “wraps”",
                    summary=f"Summary {i}",
                    published=date(2026, 1, 1) + timedelta(days=i),
                )
            )
        s.flush()
        for i in range(1, n + 1):
            s.add(ArticleTag(article_id=i, kind="country", value="Belgium" if i % 2 else "France"))
            s.add(ArticleTag(article_id=i, kind="section", value="Production" if i % 4 else "Funding"))
            if i == 5:
                s.add(ArticleTag(article_id=i, kind="festival", value="Berlinale"))


async def test_archive_pages_newest_first_and_filters_by_country_section_and_festival(engine, settings):
    _articles(engine, 40)
    app = web.create_app(settings, engine)
    async with running(app) as base, httpx.AsyncClient(base_url=base) as http:
        first = await http.get("/archive")
        assert first.status_code == 200
        # 30 a page, newest first: 40 … 11, then 10 … 1 on page 2.
        assert first.text.index("Shoot 40 &lt;starts&gt; &amp; “wraps”") < first.text.index("Shoot 39 ")
        assert "Shoot 11 " in first.text and "Shoot 10 " not in first.text
        assert 'href="/archive?page=2"' in first.text and "Newer" not in first.text
        second = await http.get("/archive?page=2")
        assert "Shoot 10 " in second.text and "Shoot 1 " in second.text and "Shoot 11 " not in second.text
        assert 'href="/archive"' in second.text and "Older" not in second.text

        belgium = await http.get("/archive", params={"country": "belgium", "section": "Production"})
        titles = [f"Shoot {i} " for i in range(1, 41)]
        shown = [t for t in titles if t in belgium.text]
        # Odd ids are Belgian; multiples of 4 are Funding (never odd): all 20 Belgian ones.
        assert shown == [f"Shoot {i} " for i in range(1, 41, 2)]
        festival = await http.get("/archive", params={"festival": "Berlinale"})
        assert [t for t in titles if t in festival.text] == ["Shoot 5 "]
        assert '<datalist id="archive-festival">' in first.text
        assert (await http.get("/archive?country=Narnia")).text.count("Shoot ") == 0
        # HEAD is a GET without body; POST is not a method of this page.
        assert (await http.head("/archive")).status_code == 200
        assert (await http.post("/archive")).status_code == 405


async def test_each_email_digest_links_to_its_own_page(engine, settings):
    web_settings = settings.model_copy(update={"public_base_url": "https://news.example.org"})
    ann = _reader(engine, web_settings)
    bob = _reader(engine, web_settings, "bob@example.org")
    digest = Composer().email(
        [], DigestContext(followed=(("country", "Belgium"),), frequency="weekly", has_links=True)
    )
    item = queue.Planned(ann, "email", "ann@example.org", None, ())
    item.email = digest
    rows = queue.message_rows(item, web_settings, now=datetime(2026, 11, 30, 8, tzinfo=UTC))
    with session_scope(engine) as s:
        s.add(Outbox(**rows[0]))
    view_url = next(line for line in rows[0]["body_text"].splitlines() if "/view?" in line).split(": ", 1)[1]
    assert view_url.startswith("https://news.example.org/view?token=")
    app = web.create_app(web_settings, engine)
    async with running(app) as base, httpx.AsyncClient(base_url=base) as http:
        path = view_url.removeprefix("https://news.example.org")
        page = await http.get(path)
        assert page.status_code == 200 and "Nothing new" in page.text
        assert "View in your browser" not in page.text  # the page does not link to itself
        assert page.headers["referrer-policy"] == "no-referrer"
        # Bob's token cannot open Ann's digest; a forged one is refused.
        bob_path = path.replace(
            path.split("token=")[1].split("&")[0],
            tokens.make_token(web_settings, tokens.Recipient(bob, "bob@example.org"), "view"),
        )
        assert (await http.get(bob_path)).status_code == 404
        assert (await http.get(path.replace("token=", "token=x"))).status_code == 400


async def test_each_reader_has_a_signed_atom_feed_of_their_selection(engine, settings):
    _articles(engine, 12)
    ann = _reader(engine, settings)  # Belgium + Production
    token = tokens.make_token(settings, tokens.Recipient(ann, "ann@example.org"), "feed")
    app = web.create_app(settings, engine)
    async with running(app) as base, httpx.AsyncClient(base_url=base) as http:
        answer = await http.get(f"/feed?token={token}")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("application/atom+xml")
        root = ET.fromstring(answer.content)  # well-formed XML despite <, & and quotes in titles
        titles = [e.findtext(f"{ATOM}title") for e in root.iter(f"{ATOM}entry")]
        # Belgian (odd) and Production (not a multiple of 4): every odd id, newest first.
        assert titles == [f"Shoot {i} <starts> & “wraps”" for i in (11, 9, 7, 5, 3, 1)]
        parsed = feedparser.parse(answer.content)
        assert not parsed.bozo and parsed.entries[0].link == "https://news.example/11?a=1&b=2"
        assert (await http.get(f"/feed?token={token}x")).status_code == 400
        other = tokens.make_token(settings, tokens.Recipient(ann, "ann@example.org"), "preferences")
        assert (await http.get(f"/feed?token={other}")).status_code == 400


def test_a_reader_following_nothing_has_an_empty_feed(engine, settings):
    _articles(engine, 4)
    ann = _reader(engine, settings)
    with session_scope(engine) as s:
        emails.set_preferences(s, ann, countries=[], sections=[], frequency="weekly")
    with session_scope(engine) as s:
        subscriber, articles = archive.feed_articles(s, ann)
    assert subscriber is not None and articles == []


async def test_the_archive_search_box_finds_names_by_the_phrase_rule(engine, settings):
    with session_scope(engine) as s:
        for i, (title, country) in enumerate(
            [
                ("Lukas Dhont’s next film shoots in Ghent", "Belgium"),
                ("Girlfriend wraps in Lyon", "France"),
                ("A girl and her dog: José Ortuño produces", "Spain"),
                ("Party Girl starts in Antwerp", "Belgium"),
            ],
            start=1,
        ):
            s.add(Article(id=i, url=f"https://news.example/{i}", title=title, summary="",
                          published=date(2026, 2, i)))
            s.flush()
            s.add(ArticleTag(article_id=i, kind="country", value=country))
    app = web.create_app(settings, engine)
    async with running(app) as base, httpx.AsyncClient(base_url=base) as http:
        names = await http.get("/archive", params={"q": "lukas DHONT"})
        assert names.status_code == 200
        assert "Articles mentioning “lukas DHONT”" in names.text
        assert "next film shoots in Ghent" in names.text and "Girlfriend" not in names.text
        # Whole words, accents ignored, newest first; the country filter narrows the answer.
        girl = await http.get("/archive", params={"q": "girl"})
        assert "Girlfriend" not in girl.text
        assert girl.text.index("Party Girl starts") < girl.text.index("A girl and her dog")
        narrowed = await http.get("/archive", params={"q": "girl", "country": "Belgium"})
        assert "Party Girl starts" in narrowed.text and "her dog" not in narrowed.text
        assert "her dog" in (await http.get("/archive", params={"q": "jose ortuno"})).text
        none = await http.get("/archive", params={"q": "Animas"})
        assert "No articles mentioning “Animas” yet." in none.text
        assert 'name="q"' in (await http.get("/archive")).text
