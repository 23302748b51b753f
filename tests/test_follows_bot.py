"""Phrase follows and /search in a private chat, through the real PTB application and the fake
Bot API, down to the delivered digest with its "why" line."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from digests import follows, queue
from digests.db import session_scope
from digests.deliver import deliver_once_async
from digests.models import Article, ArticleTag
from tests import bot_harness
from tests.bot_harness import Talk

api, app, bot_settings = bot_harness.api, bot_harness.app, bot_harness.bot_settings

CHAT = 613


def soon() -> datetime:
    """A minute from now: first seen after the reader's row exists (computed per test, not at import)."""
    return datetime.now(UTC) + timedelta(minutes=1)


def add_article(engine, url, title, summary="", *, countries=(), sections=(), published=None,
                seen=None) -> int:
    with session_scope(engine) as session:
        row = Article(url=url, title=title, summary=summary, published=published or date.today(),
                      first_seen_at=seen or soon())
        session.add(row)
        session.flush()
        for c in countries:
            session.add(ArticleTag(article_id=row.id, kind="country", value=c))
        for s in sections:
            session.add(ArticleTag(article_id=row.id, kind="section", value=s))
        return row.id


def stories(engine) -> None:
    add_article(engine, "https://example.org/ortuno", "José Ortuño joins Be For Films",
                "The Spanish producer heads sales.", countries=["Spain"], sections=["Sales"])
    add_article(engine, "https://example.org/girlfriend", "Girlfriend premieres in Annecy",
                countries=["France"])
    add_article(engine, "https://example.org/ghent", "A new shoot in Ghent", countries=["Belgium"])
    add_article(engine, "https://example.org/old", "Ortuño's first film, remembered",
                countries=["Spain"], published=date.today() - timedelta(days=90))


async def test_follow_dry_run_whole_words_terms_list_search_and_the_digest(app, api, engine, bot_settings):
    me = Talk(api, CHAT)
    assert "Now following: 🌍 Belgium" in (await me.say("/subscribe Belgium")).plain
    stories(engine)

    # Accent- and case-insensitive; the 90-day-old article is outside the 30-day dry run.
    reply = await me.say("/follow jose ortuno")
    assert "Now following “jose ortuno”." in reply.plain
    assert "1 article in the last 30 days" in reply.plain
    assert "José Ortuño joins Be For Films" in reply.plain

    # Whole words: "Girl" is not in "Girlfriend".
    reply = await me.say('/follow "Girl"')
    assert "Now following “Girl”." in reply.plain
    assert "No article mentioned it lately; I'll watch for it." in reply.plain

    # A country is offered as the subscription instead; a typo of one gets a suggestion.
    reply = await me.say("/follow belgium")
    assert "Belgium is a country you can subscribe to" in reply.plain
    assert reply.callback_data() == ["s:c:Belgium"]
    reply = await me.say("/follow Belgum")
    assert "Now following “Belgum”" in reply.plain and "did you mean Belgium?" in reply.plain
    assert reply.callback_data() == ["s:c:Belgium"]
    # A festival name too (every edition), by an alias.
    reply = await me.say("/follow berlino")
    assert "Berlinale is a festival you can subscribe to" in reply.plain
    assert reply.callback_data() == ["s:f:Berlinale"]
    assert "too short" in (await me.say("/follow x")).plain
    assert [f.phrase for f in follows.listed_chat(engine, CHAT)] == ["jose ortuno", "Girl", "Belgum"]

    listing = await me.say("/list")
    assert "Names and phrases: “jose ortuno”, “Girl”, “Belgum”" in listing.plain
    [typo] = [f for f in follows.listed_chat(engine, CHAT) if f.phrase == "Belgum"]
    assert f"rf:{typo.id}" in listing.callback_data() and "r:c:Belgium" in listing.callback_data()
    tap = await me.tap(listing, f"rf:{typo.id}")
    assert tap.answer["text"] == "Stopped following Belgum"
    assert "Belgum" not in tap.edits[-1]["plain"] and "“Girl”" in tap.edits[-1]["plain"]
    forged = await me.tap(listing, "rf:999999")
    assert forged.answer["text"] == "This button no longer works. Send the command again."

    found = await me.say("/search ORTUNO")
    assert "“ORTUNO”: 2 articles, newest first" in found.plain
    assert found.plain.index("José Ortuño joins") < found.plain.index("first film, remembered")
    assert "No article mentions “girl”" in (await me.say("/search girl")).plain

    # The digest: Belgium by the tag rule, Spain only through the phrase, with its why line.
    report = queue.queue_due(engine, bot_settings, now=soon() + timedelta(minutes=1), force=True)
    assert report.digests == 1
    sent = await deliver_once_async(engine, bot_settings, worker_id="t")
    assert sent.sent == 1
    digest = api.messages_for(CHAT)[-1].plain
    assert "A new shoot in Ghent" in digest and "José Ortuño joins Be For Films" in digest
    assert "Girlfriend" not in digest and "remembered" not in digest
    assert "· Spain · you follow jose ortuno" in digest
    ghent = digest[digest.index("A new shoot in Ghent"):].split("\n")[1]
    assert "you follow" not in ghent

    gone = await me.say("/unfollow all")
    assert "Stopped following “jose ortuno”, “Girl”." in gone.plain
    assert follows.listed_chat(engine, CHAT) == []
