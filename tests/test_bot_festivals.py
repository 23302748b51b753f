"""Following festivals from the bot: names, aliases, typos, /festivals and its browser."""

from __future__ import annotations

from datetime import UTC, date, datetime

from digests import subscriptions
from digests.catalog import FESTIVAL, Term
from digests.db import session_scope
from digests.models import Article, ArticleTag
from tests import bot_harness
from tests.bot_harness import Talk

api, app, bot_settings = bot_harness.api, bot_harness.app, bot_harness.bot_settings

CHAT = 601


def followed(engine, chat_id=CHAT) -> list[Term]:
    return subscriptions.list_subscriptions(engine, chat_id)


def _article(engine, title, published, festival, edition):
    with session_scope(engine) as s:
        row = Article(
            url=f"https://example.org/{title.replace(' ', '-')}",
            title=title,
            published=published,
            first_seen_at=datetime.now(UTC),
        )
        s.add(row)
        s.flush()
        s.add(ArticleTag(article_id=row.id, kind="section", value="Festivals"))
        s.add(ArticleTag(article_id=row.id, kind=FESTIVAL, value=festival, edition=edition))


async def test_subscribe_cannes_aliases_and_list(app, api, engine):
    me = Talk(api, CHAT)
    reply = await me.say("/subscribe Cannes, Berlin, mostra")
    assert "Now following: 🎬 Cannes, Berlinale, Venice" in reply.plain
    assert followed(engine) == [
        Term(FESTIVAL, "Berlinale"),
        Term(FESTIVAL, "Cannes"),
        Term(FESTIVAL, "Venice"),
    ]
    again = await me.say("/subscribe Venezia 2025, Festival de Cannes")
    assert "Already followed: 🎬 Venice, Cannes" in again.plain
    listing = await me.say("/list")
    assert "Festivals: Berlinale, Cannes, Venice (every edition)" in listing.plain
    assert "r:f:Cannes" in listing.callback_data()
    tap = await me.tap(listing, "r:f:Berlinale")
    assert tap.answer["text"] == "Stopped following Berlinale"


async def test_typo_gets_a_festival_suggestion(app, api, engine):
    me = Talk(api, CHAT)
    reply = await me.say("/subscribe Canes")
    assert "Canes" in reply.plain and "did you mean" in reply.plain and "Cannes" in reply.plain
    assert "s:f:Cannes" in reply.callback_data()
    tap = await me.tap(reply, "s:f:Cannes")
    assert tap.answer["text"] == "Now following Cannes"
    assert followed(engine) == [Term(FESTIVAL, "Cannes")]


async def test_festivals_lists_recent_counts_and_toggles(app, api, engine):
    today = datetime.now(UTC).date()
    _article(engine, "Palme winner", today, "Cannes", today.year)
    _article(engine, "Croisette line-up", today, "Cannes", today.year)
    _article(engine, "Golden Bear", today, "Berlinale", today.year)
    _article(engine, "Old Lido news", date(2001, 9, 1), "Venice", 2001)  # not lately
    me = Talk(api, CHAT)
    reply = await me.say("/festivals")
    assert "Cannes: 2" in reply.plain and "Berlinale: 1" in reply.plain and "Venice" not in reply.plain
    assert reply.plain.index("Cannes: 2") < reply.plain.index("Berlinale: 1")
    assert "t:f:0:Cannes" in reply.callback_data()
    on = await me.tap(reply, "t:f:0:Cannes")
    assert on.answer["text"] == "Now following Cannes" and followed(engine) == [Term(FESTIVAL, "Cannes")]
    labels = [b["text"] for row in on.edits[-1]["reply_markup"]["inline_keyboard"] for b in row]
    assert "✅ Cannes" in labels
    off = await me.tap(reply, "t:f:0:Cannes")
    assert off.answer["text"] == "Stopped following Cannes" and followed(engine) == []
    latest = await me.say("/latest Cannes")
    assert f"Cannes {today.year}" in latest.plain and "Golden Bear" not in latest.plain


async def test_browser_reaches_the_festivals(app, api, engine):
    me = Talk(api, CHAT)
    browser = await me.say("/subscribe")
    assert "fes" in browser.callback_data()
    page = await me.tap(browser, "fes")
    data = [b["callback_data"] for row in page.edits[-1]["reply_markup"]["inline_keyboard"] for b in row]
    assert data[:3] == ["t:f:0:Cannes", "t:f:0:Berlinale", "t:f:0:Venice"] and "sec" in data
