"""Whole conversations in a private chat, through the real PTB application and the fake Bot API."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlmodel import select

from bot.app import COMMANDS, build_application, polling
from digests import subscriptions
from digests.catalog import COUNTRY, SECTION, Term
from digests.db import session_scope
from digests.models import Article, ArticleTag, Subscriber
from tests import bot_harness
from tests.bot_harness import Talk

# The harness's fixtures, used here by name.
api, app, bot_settings = bot_harness.api, bot_harness.app, bot_harness.bot_settings

CHAT = 501


def followed(engine, chat_id=CHAT) -> set[str]:
    return {t.value for t in subscriptions.list_subscriptions(engine, chat_id)}


async def test_start_sets_menu_and_offers_popular_countries(app, api, engine):
    me = Talk(api, CHAT)
    reply = await me.say("/start")
    assert "Clapper" in reply.text and reply.parse_mode == "HTML"
    assert "s:c:Belgium" in reply.callback_data() and "p:0" in reply.callback_data()
    assert [c["command"] for c in api.commands] == list(COMMANDS)
    with session_scope(engine) as session:
        row = session.exec(select(Subscriber).where(Subscriber.telegram_chat_id == CHAT)).one()
        assert (row.frequency, row.delivery_time, row.timezone) == ("daily", "08:00", "Europe/Brussels")
    # One tap on a popular country follows it.
    tap = await me.tap(reply, "s:c:Belgium")
    assert tap.answer["text"] == "Now following Belgium"
    assert followed(engine) == {"Belgium"}


async def test_subscribe_with_typos_suggestions_list_and_unsubscribe(app, api, engine):
    me = Talk(api, CHAT)
    reply = await me.say("/subscribe Belgium, frnace, Production")
    assert "Now following: 🌍 Belgium" in reply.plain and "Production" in reply.plain
    assert "frnace" in reply.plain and "did you mean" in reply.plain
    assert reply.callback_data()[0] == "s:c:France"
    assert followed(engine) == {"Belgium", "Production"}

    tap = await me.tap(reply, "s:c:France")
    assert tap.answer["text"] == "Now following France"
    assert followed(engine) == {"Belgium", "France", "Production"}

    again = await me.say("/subscribe belgium FRANCE")
    assert "Already followed: 🌍 Belgium, France" in again.plain and "Now following" not in again.plain

    listing = await me.say("/list")
    assert "Countries: Belgium, France" in listing.plain and "Sections: Production" in listing.plain
    assert "a country and a section" in listing.plain  # the matching rule, written out
    assert {"r:c:Belgium", "r:c:France", "r:s:Production", "ua"} <= set(listing.callback_data())
    tap = await me.tap(listing, "r:c:Belgium")
    assert tap.answer["text"] == "Stopped following Belgium"
    assert "Countries: France\n" in tap.edits[-1]["plain"]
    assert "r:c:Belgium" not in str(tap.edits[-1]["reply_markup"])
    assert followed(engine) == {"France", "Production"}

    gone = await me.say("/unsubscribe Production, Italy, narnia")
    assert "No longer following: 🗂 Production" in gone.plain
    assert "Not followed anyway: 🌍 Italy" in gone.plain and "narnia" in gone.plain
    assert followed(engine) == {"France"}

    ask = await me.say("/unsubscribe all")
    assert ask.callback_data() == ["ua:y", "x"] and followed(engine) == {"France"}
    cancelled = await me.tap(ask, "x")
    assert "Cancelled" in cancelled.edits[-1]["plain"] and followed(engine) == {"France"}
    ask = await me.say("/unsubscribe all")
    done = await me.tap(ask, "ua:y")
    assert "follows nothing now" in done.edits[-1]["plain"] and followed(engine) == set()
    assert "follows nothing yet" in (await me.say("/list")).plain


async def test_aliases_accents_and_separators(app, api, engine):
    me = Talk(api, CHAT)
    reply = await me.say("/subscribe czech republic / Belgique, PRODUCTION + Côte d'Ivoire")
    assert "Czech Republic" in reply.plain and "Ivory Coast" in reply.plain
    assert followed(engine) == {"Czech Republic", "Belgium", "Production", "Ivory Coast"}


async def test_browser_pages_and_toggles(app, api, engine):
    me = Talk(api, CHAT)
    browser = await me.say("/subscribe")
    assert "Choose what to follow" in browser.plain
    assert browser.callback_data()[0] == "t:c:0:Afghanistan" and "p:1" in browser.callback_data()
    page = await me.tap(browser, "p:1")
    rows = page.edits[-1]["reply_markup"]["inline_keyboard"]
    second_page = [b["callback_data"] for row in rows for b in row]
    name = second_page[0].split(":", 3)[3]
    assert second_page[0].startswith("t:c:1:")
    toggled = await me.tap(browser, f"t:c:1:{name}")
    assert toggled.answer["text"] == f"Now following {name}" and followed(engine) == {name}
    labels = [b["text"] for row in toggled.edits[-1]["reply_markup"]["inline_keyboard"] for b in row]
    assert f"✅ {name}" in labels
    await me.tap(browser, "sec")
    await me.tap(browser, "t:s:0:Funding")
    assert followed(engine) == {name, "Funding"}
    off = await me.tap(browser, "t:s:0:Funding")
    assert off.answer["text"] == "Stopped following Funding" and followed(engine) == {name}


async def test_when_digests_come(app, api, engine, bot_settings):
    me = Talk(api, CHAT)
    assert "weekly" in (await me.say("/frequency weekly friday")).plain
    assert "07:30" in (await me.say("/time 7:30")).plain
    assert "America/New_York" in (await me.say("/timezone america/new_york")).plain
    bad = [await me.say(text) for text in ("/frequency hourly", "/time 25:00", "/timezone Mars/Olympus",
                                           "/frequency weekly someday")]
    assert "not a frequency" in bad[0].plain and "not a time" in bad[1].plain
    assert "not a timezone" in bad[2].plain and "not a day" in bad[3].plain
    current = subscriptions.chat_settings(engine, bot_settings, CHAT)
    assert (current.frequency, current.weekly_day, current.delivery_time, current.timezone) == (
        "weekly", "Friday", "07:30", "America/New_York")

    shown = await me.say("/settings")
    assert "Frequency: weekly (on Friday)" in shown.plain and "Time: 07:30" in shown.plain
    tap = await me.tap(shown, "f:instant")
    assert tap.answer["text"] == "Digests: instant" and "Frequency: instant" in tap.edits[-1]["plain"]
    await me.tap(shown, "pz:1")
    assert subscriptions.chat_settings(engine, bot_settings, CHAT).paused
    assert "back on" in (await me.say("/resume")).plain
    assert not subscriptions.chat_settings(engine, bot_settings, CHAT).paused
    assert "paused" in (await me.say("/pause")).plain
    assert subscriptions.chat_settings(engine, bot_settings, CHAT).paused


def _article(session, url, title, published, countries=(), sections=()):
    row = Article(url=url, title=title, published=published, first_seen_at=datetime.now(UTC))
    session.add(row)
    session.flush()
    for value in countries:
        session.add(ArticleTag(article_id=row.id, kind=COUNTRY, value=value))
    for value in sections:
        session.add(ArticleTag(article_id=row.id, kind=SECTION, value=value))


async def test_latest_countries_and_sections_with_counts(app, api, engine):
    today = datetime.now(UTC).date()
    with session_scope(engine) as session:
        _article(session, "https://example.org/a", "Shooting starts in Ghent <b>", today,
                 ["Belgium"], ["Production"])
        _article(session, "https://example.org/b", "Paris fund & co", today, ["France"], ["Funding"])
        _article(session, "clapper:text/123", "Old Belgian news", date(2001, 1, 1), ["Belgium"], ["Funding"])
    me = Talk(api, CHAT)
    latest = await me.say("/latest Belgium")
    assert "Shooting starts in Ghent <b>" in latest.plain and "&lt;b&gt;" in latest.text
    assert '<a href="https://example.org/a">' in latest.text and "Paris" not in latest.plain
    assert "<b>Old Belgian news</b>" in latest.text  # no link for a text-only page
    assert "Nothing yet" in (await me.say("/latest Malta")).plain
    assert "follow" in (await me.say("/latest")).plain.lower()
    await me.say("/subscribe France")
    assert "Paris fund &amp; co" in (await me.say("/latest")).text
    countries = await me.say("/countries")
    assert "Belgium: 1" in countries.plain and "France: 1" in countries.plain
    sections = await me.say("/sections")
    assert "Production: 1" in sections.plain and "Funding: 1" in sections.plain
    assert "Awards: 0" in sections.plain


async def test_stop_deletes_everything_and_start_after_block(app, api, engine, bot_settings):
    me = Talk(api, CHAT)
    await me.say("/subscribe Belgium, Production")
    with session_scope(engine) as session:
        row = session.exec(select(Subscriber).where(Subscriber.telegram_chat_id == CHAT)).one()
        row.telegram_blocked_at = datetime.now(UTC)  # what delivery records on a 403
        session.add(row)
    welcome = await me.say("/start")
    assert "Welcome back" in welcome.plain
    assert subscriptions.chat_settings(engine, bot_settings, CHAT).blocked is False

    ask = await me.say("/stop")
    assert ask.callback_data() == ["stop:y", "x"]
    assert followed(engine) == {"Belgium", "Production"}  # nothing happens before the confirm
    done = await me.tap(ask, "stop:y")
    assert "everything about this chat is deleted" in done.edits[-1]["plain"]
    with session_scope(engine) as session:
        assert session.exec(select(Subscriber).where(Subscriber.telegram_chat_id == CHAT)).first() is None
    # A stale confirm button afterwards does no harm.
    again = await me.tap(ask, "stop:y")
    assert again.answer["text"] == "Done"


async def test_subscriptions_survive_a_restart(api, engine, bot_settings):
    me = Talk(api, CHAT)
    first = build_application(bot_settings, engine)
    async with polling(first, long_poll=1):
        await me.say("/subscribe Belgium, Documentary")
        await me.say("/time 06:45")
    second = build_application(bot_settings, engine)
    async with polling(second, long_poll=1):
        listing = await me.say("/list")
        shown = await me.say("/settings")
    assert "Countries: Belgium" in listing.plain and "Sections: Documentary" in listing.plain
    assert "Time: 06:45" in shown.plain


async def test_cap_on_subscriptions(api, engine, bot_settings):
    capped = bot_settings.model_copy(update={"max_subscriptions": 3})
    async with polling(build_application(capped, engine), long_poll=1):
        me = Talk(api, CHAT)
        reply = await me.say("/subscribe Belgium France Italy Spain Production")
        assert "Not added, this chat already follows 3" in reply.plain and "Spain" in reply.plain
        assert len(followed(engine)) == 3
        tap = await me.tap(reply, "s:c:Malta")
        assert "the most a chat can" in tap.answer["text"] and tap.answer["show_alert"]
    assert followed(engine) == {"Belgium", "France", "Italy"}
    assert Term(SECTION, "Production") not in subscriptions.list_subscriptions(engine, CHAT)


async def test_help_explains_every_command_in_the_menu(app, api):
    me = Talk(api, CHAT)
    reply = await me.say("/help")
    for command in COMMANDS:
        if command not in {"start", "help"}:
            assert f"/{command}" in reply.plain, command
    assert {c["command"] for c in api.commands} >= {"email", "verify"}


async def test_each_unknown_word_gets_its_own_line(app, api):
    reply = await Talk(api, CHAT).say("/subscribe frnace, Prodution")
    lines = [line for line in reply.plain.splitlines() if line.startswith("❓")]
    assert len(lines) == 2 and "frnace" in lines[0] and "Prodution" in lines[1]
