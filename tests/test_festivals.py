"""Festivals have names: tagged "Cannes 2024", followed as "Cannes" (every edition), on both databases."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import select

from digests import catalog, queue, store, subscriptions
from digests.catalog import FESTIVAL, SECTION, Term
from digests.db import session_scope
from digests.ingest import ingest_page
from digests.models import ArticleTag, Outbox, Subscriber, Subscription
from digests.sources import listing
from tests.test_ingest import cli  # noqa: F401 - the fixture, used by name
from tests.test_web import web_settings  # noqa: F401 - the fixture, used by name

NOW = datetime(2025, 11, 24, 7, 0, tzinfo=UTC)  # Monday 08:00 in Brussels

PAGE = """Festivals / France

4 articles available in total starting from 01/01/2023. Last article published on 20/05/2025.

Golden Palm goes to a Belgian drama

The jury crowned the Dardenne brothers' new film

20/05/2025 | Cannes 2025 | Competition | Belgium

A first look at the Croisette line-up

Twenty-two films compete for the Palme

12/04/2024 | Cannes 2024

Berlin opens with a German comedy

The Berlinale's first night

15/02/2024 | Berlinale 2024 | Belgium

Oscar hopes for a French animation

The Academy's shortlist is out

10/01/2023 | Oscars 2023 | France
"""


def _ingest(engine, now=NOW - timedelta(hours=1)):
    page = listing.parse_text(PAGE)
    return ingest_page(engine, page, name="festivals", url="page.txt", now=now)


# ----------------------------------------------------------------------------- catalog (pure)


def test_festival_names_aliases_and_editions():
    assert catalog.resolve("Cannes") == Term(FESTIVAL, "Cannes")
    assert catalog.resolve("cannes 2024") == Term(FESTIVAL, "Cannes")
    assert {catalog.lookup_festival(n) for n in ("Berlinale", "Berlin", "berlinale 2026")} == {"Berlinale"}
    assert {catalog.lookup_festival(n) for n in ("Venice", "Venezia", "Mostra", "Venise 2025")} == {"Venice"}
    assert catalog.split_edition("Venezia 2025") == ("Venice", 2025)
    assert catalog.split_edition("Márgenes 2023") == ("Márgenes", 2023)  # unknown: kept as written
    assert catalog.festival_label("Cannes", 2024) == "Cannes 2024"
    # "Festival" is the section; the event's role picks the section it files under.
    assert catalog.resolve("Festival") == Term(SECTION, "Festivals")
    assert [catalog.event_section(n) for n in ("Cannes", "Oscars", "Producers on the Move")] == [
        "Festivals",
        "Awards",
        "Markets",
    ]
    assert Term(FESTIVAL, "Cannes") in catalog.suggest("Canes")
    assert Term(FESTIVAL, "Berlinale") in catalog.suggest("berlinal")


def test_awards_and_markets_are_events_too():
    page = listing.parse_text(
        "Awards / Europe\n\nA\n\nsummary\n\n01/03/2010 | Oscars 2010\n\n"
        "B\n\nsummary\n\n01/05/2021 | Producers on the Move 2021 | Sweden\n"
    )
    (oscars, pom) = page.articles
    assert (oscars.sections, oscars.festivals) == (("Awards",), ("Oscars 2010",))
    assert (pom.sections, pom.countries, pom.festivals) == (
        ("Markets",),
        ("Sweden",),
        ("Producers on the Move 2021",),
    )


# ----------------------------------------------------------------------------- store


def test_stored_with_edition_shown_as_cannes_2024_and_in_json(engine):
    result = _ingest(engine)
    assert result.new == 4
    with session_scope(engine) as s:
        tags = {
            (t.kind, t.value, t.edition)
            for t in s.exec(select(ArticleTag).where(ArticleTag.kind == FESTIVAL))
        }
        assert tags == {
            (FESTIVAL, "Cannes", 2025),
            (FESTIVAL, "Cannes", 2024),
            (FESTIVAL, "Berlinale", 2024),
            (FESTIVAL, "Oscars", 2023),
        }
        views = store.articles(s)
        assert [v.festivals for v in views] == [
            ("Cannes 2025",),
            ("Cannes 2024",),
            ("Berlinale 2024",),
            ("Oscars 2023",),
        ]
        assert views[0].as_json()["festivals"] == ["Cannes 2025"]
        assert views[0].sections == ("Competition", "Festivals")  # still filed under Festivals
        # "Cannes" is every edition; sections keep finding them all.
        assert [v.title for v in store.articles(s, festivals=["Cannes"])] == [
            "Golden Palm goes to a Belgian drama",
            "A first look at the Croisette line-up",
        ]
        assert len(store.articles(s, sections=["Festivals"])) == 3
        assert len(store.articles(s, festivals=["Cannes"], countries=["Belgium"])) == 1
        assert dict(store.tag_counts(s, FESTIVAL)) == {"Cannes": 2, "Berlinale": 1, "Oscars": 1}
    assert _ingest(engine).unchanged == 4  # the same page again changes nothing


# ----------------------------------------------------------------------------- matching, digests, /latest


def _reader(engine, chat_id, follows):
    with session_scope(engine) as s:
        row = Subscriber(telegram_chat_id=chat_id, created_at=NOW - timedelta(days=2))
        s.add(row)
        s.flush()
        for kind, value in follows:
            s.add(Subscription(subscriber_id=row.id, kind=kind, value=value))
        return row.id


def test_following_cannes_gets_every_edition_in_the_digest(engine, settings):
    cannes = _reader(engine, 11, [(FESTIVAL, "Cannes")])
    belgian_cannes = _reader(engine, 12, [(FESTIVAL, "Cannes"), ("country", "Belgium")])
    _ingest(engine)
    queue.queue_due(engine, settings, now=NOW, force=True)
    with session_scope(engine) as s:
        bodies = {r.subscriber_id: r.body for r in s.exec(select(Outbox))}
    assert "Golden Palm goes to a Belgian drama" in bodies[cannes]
    assert "A first look at the Croisette line-up" in bodies[cannes]
    assert "Berlin opens" not in bodies[cannes] and "Oscar hopes" not in bodies[cannes]
    assert "Cannes 2024" in bodies[cannes] and "Cannes 2025" in bodies[cannes]
    # A festival and a country: one of each, like any two kinds.
    assert "Golden Palm" in bodies[belgian_cannes] and "Croisette" not in bodies[belgian_cannes]


def test_latest_by_festival_name_shows_the_edition(engine, settings):
    _ingest(engine)
    result = subscriptions.latest(engine, 99, "Mostra, cannes")
    assert result.terms == [Term(FESTIVAL, "Cannes"), Term(FESTIVAL, "Venice")]
    assert [a.festivals for a in result.articles] == [("Cannes 2025",), ("Cannes 2024",)]
    assert subscriptions.recent_counts(engine, FESTIVAL, today=date(2025, 5, 25), days=30) == [("Cannes", 1)]


# ----------------------------------------------------------------------------- CLI


def test_cli_articles_by_festival(cli, tmp_path):  # noqa: F811 - pytest fixture
    page = tmp_path / "festivals.txt"
    page.write_text(PAGE, encoding="utf-8")
    assert cli("ingest", "--file", str(page)).exit_code == 0
    result = cli("articles", "--festival", "cannes", "--json")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["festivals"] for r in rows] == [["Cannes 2025"], ["Cannes 2024"]]
    assert list(rows[0]) == ["title", "summary", "url", "published", "sections", "countries", "festivals"]
    assert len(cli("articles", "--festival", "Berlin", "--json").stdout.splitlines()) == 1
    wrong = cli("articles", "--festival", "Canes")
    assert wrong.exit_code == 2 and "Did you mean: Cannes" in wrong.stderr


def test_email_preferences_page_keeps_festivals_it_does_not_show(engine):
    from digests import emails

    reader = _reader(engine, 21, [(FESTIVAL, "Cannes"), ("country", "Belgium")])
    with session_scope(engine) as s:
        emails.set_preferences(s, reader, countries=["France"], sections=[], frequency="daily", limit=2)
    with session_scope(engine) as s:
        kept = {
            (r.kind, r.value)
            for r in s.exec(select(Subscription).where(Subscription.subscriber_id == reader))
        }
    assert kept == {(FESTIVAL, "Cannes"), ("country", "France")}
    with pytest.raises(emails.EmailError) as refused, session_scope(engine) as s:
        emails.set_preferences(
            s, reader, countries=["France", "Spain"], sections=[], frequency="daily", limit=2
        )
    assert refused.value.reason == "too_many_terms"  # the festival counts towards the limit


def test_matching_treats_festival_as_one_more_kind():
    from digests.matching import matches

    cannes_2024 = [("festival", "Cannes"), ("section", "Festivals"), ("country", "France")]
    assert matches([("festival", "Cannes")], cannes_2024)
    assert matches([("section", "Festivals")], cannes_2024)
    assert not matches([("festival", "Berlinale")], cannes_2024)
    assert matches([("festival", "Cannes"), ("festival", "Berlinale")], cannes_2024)  # any within a kind
    assert not matches([("festival", "Cannes"), ("country", "Belgium")], cannes_2024)  # one of each kind


def test_a_bare_festival_name_in_the_country_slot_is_not_a_festival():
    (a,) = listing.parse_text("T\n\nS\n\n01/02/2025 | Production | London\n").articles
    assert (a.sections, a.countries, a.festivals) == (("Production",), (), ())
    (b,) = listing.parse_text("T\n\nS\n\n01/02/2025 | Cannes 2025 | Marché du Film\n").articles
    assert (set(b.sections), b.festivals) == ({"Festivals", "Markets"}, ("Cannes 2025", "Marché du Film"))


def test_digests_for_festival_followers_group_by_festival_and_show_the_edition():
    from digests.compose import ArticleView, Composer, DigestContext, group_articles

    def view(i, title, festivals):
        return ArticleView(
            i,
            f"https://x.org/{i}",
            title,
            date(2025, 5, 20 - i),
            sections=("Festivals",),
            festivals=festivals,
        )

    articles = [
        view(1, "Palm", ("Cannes 2025",)),
        view(2, "Bear", ("Berlinale 2025",)),
        view(3, "Line-up <b>", ("Cannes <2024>",)),
    ]
    followed = ((FESTIVAL, "Cannes"), (FESTIVAL, "Berlinale"))
    by, groups = group_articles(articles, followed)
    assert by == "festival"
    assert [(g.name, [a.id for a in g.articles]) for g in groups] == [("Berlinale", [2]), ("Cannes", [1])] + [
        (None, [3])  # "Cannes <2024>" is not a Cannes label: under "Also new", escaped below
    ]
    ctx = DigestContext(followed=followed)
    telegram = Composer().telegram(articles, ctx).parts[0]
    assert "Cannes 2025" in telegram and "Berlinale 2025" in telegram
    assert "Cannes &lt;2024&gt;" in telegram and "<2024>" not in telegram
    # Telegram's own parser (the fake Bot API's) takes it and shows the names as scraped.
    from tests.fakes import telegram_rules

    assert "Cannes <2024>" in telegram_rules.message_text(telegram, "HTML")
    mail = Composer().email(articles, ctx)
    assert "Cannes 2025" in mail.text and "Cannes &lt;2024&gt;" in mail.html


async def test_preferences_page_shows_and_changes_festivals(engine, web_settings):  # noqa: F811
    import httpx

    from digests import web
    from tests.test_web import _path, _reader, running

    ann = _reader(engine, web_settings)
    with session_scope(engine) as s:
        s.add(Subscription(subscriber_id=ann, kind=FESTIVAL, value="Cannes"))
    path = _path(web_settings, ann, "preferences")

    def follows() -> set[tuple[str, str]]:
        with session_scope(engine) as s:
            return {
                (r.kind, r.value)
                for r in s.exec(select(Subscription).where(Subscription.subscriber_id == ann))
            }

    async with (
        running(web.create_app(web_settings, engine)) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        page = await http.get(path)
        assert 'value="Cannes" checked' in page.text and 'value="Venice">' in page.text
        form = {"country": ["Belgium"], "section": ["Production"], "frequency": "weekly"}
        saved = await http.post(
            path, data={**form, "festivals_shown": "1", "festival": ["Venice", "Berlinale"]}
        )
        assert saved.status_code == 200 and 'value="Venice" checked' in saved.text
        assert follows() == {
            ("country", "Belgium"),
            ("section", "Production"),
            (FESTIVAL, "Venice"),
            (FESTIVAL, "Berlinale"),
        }
        # A form that did not show the festivals (an old page) leaves them alone.
        await http.post(path, data=form)
        assert (FESTIVAL, "Venice") in follows()
        # Showing them with none ticked means none.
        await http.post(path, data={**form, "festivals_shown": "1"})
        assert follows() == {("country", "Belgium"), ("section", "Production")}
        bad = await http.post(path, data={**form, "festivals_shown": "1", "festival": ["Atlantis Fest"]})
        assert bad.status_code == 422  # like any hand-made form with something we do not offer
