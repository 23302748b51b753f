"""The subscription service on SQLite and PostgreSQL: what a chat follows and when."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import select

from digests import subscriptions as subs
from digests.catalog import COUNTRY, SECTION, Term
from digests.db import session_scope
from digests.models import Article, ArticleTag, Outbox, Source, Subscriber, Subscription
from digests.subscriptions import Chat, InvalidInput

PRIVATE = Chat(10, "private")
GROUP = Chat(-1001234567890123, "supergroup", "Crew")  # chat ids need 64 bits

BE, FR, PROD = Term(COUNTRY, "Belgium"), Term(COUNTRY, "France"), Term(SECTION, "Production")


def test_subscribe_reports_added_already_and_unknown_with_suggestions(engine, settings):
    result = subs.subscribe_text(engine, settings, PRIVATE, "Belgium, frnace production")
    assert result.added == [BE, PROD] and result.total == 2
    assert result.unknown[0].word == "frnace" and result.unknown[0].suggestions[0] == FR
    again = subs.subscribe_text(engine, settings, PRIVATE, "belgique / France")
    assert again.added == [FR] and again.already == [BE] and again.total == 3
    assert subs.list_subscriptions(engine, PRIVATE.id) == [BE, FR, PROD]  # countries first, sorted


def test_group_ids_are_64_bit_and_rows_are_per_chat(engine, settings):
    subs.subscribe(engine, settings, GROUP, [BE])
    subs.subscribe(engine, settings, PRIVATE, [FR])
    assert subs.list_subscriptions(engine, GROUP.id) == [BE]
    assert subs.list_subscriptions(engine, PRIVATE.id) == [FR]
    with session_scope(engine) as session:
        row = session.exec(select(Subscriber).where(Subscriber.telegram_chat_id == GROUP.id)).one()
        assert (row.chat_type, row.chat_title) == ("supergroup", "Crew")


def test_cap_per_chat(engine, settings):
    capped = settings.model_copy(update={"max_subscriptions": 2})
    result = subs.subscribe_text(engine, capped, PRIVATE, "Belgium France Italy Production")
    assert len(result.added) == 2 and len(result.over_limit) == 2 and result.total == 2
    assert len(subs.list_subscriptions(engine, PRIVATE.id)) == 2


def test_too_long_or_too_many_terms_are_refused(engine, settings):
    with pytest.raises(InvalidInput) as long:
        subs.subscribe_text(engine, settings, PRIVATE, "a" * 1001)
    assert long.value.reason == "too_long"
    with pytest.raises(InvalidInput) as many:
        subs.subscribe_text(engine, settings, PRIVATE, " ".join(f"w{i}" for i in range(51)))
    assert many.value.reason == "too_many"
    assert subs.list_subscriptions(engine, PRIVATE.id) == []


def test_unsubscribe_toggle_and_unsubscribe_all(engine, settings):
    subs.subscribe(engine, settings, PRIVATE, [BE, FR, PROD])
    result = subs.unsubscribe_text(engine, PRIVATE.id, "France, Italy, nowhere")
    assert result.removed == [FR] and result.not_followed == [Term(COUNTRY, "Italy")]
    assert result.unknown[0].word == "nowhere" and result.total == 2
    assert subs.toggle(engine, settings, PRIVATE, BE)[0] is False
    assert subs.toggle(engine, settings, PRIVATE, FR)[0] is True
    assert subs.unsubscribe_all(engine, PRIVATE.id) == 2
    assert subs.list_subscriptions(engine, PRIVATE.id) == []
    assert subs.unsubscribe_all(engine, 424242) == 0  # an unknown chat is not an error


@pytest.mark.parametrize(("text", "expected"), [
    ("8:30", "08:30"), ("08:30", "08:30"), ("8h30", "08:30"), ("23.59", "23:59"), ("7", "07:00"),
    ("0:00", "00:00")])
def test_parse_time(text, expected):
    assert subs.parse_time(text) == expected


@pytest.mark.parametrize("text", ["24:00", "12:60", "noon", "", "8:5", "-1", "12:30pm"])
def test_parse_time_refuses(text):
    with pytest.raises(InvalidInput):
        subs.parse_time(text)


def test_parse_timezone():
    assert subs.parse_timezone("europe/brussels") == "Europe/Brussels"
    assert subs.parse_timezone("America/New York") == "America/New_York"
    assert subs.parse_timezone("Brussels") == "Europe/Brussels"
    with pytest.raises(InvalidInput) as bad:
        subs.parse_timezone("Europe/Brusels")
    assert "Europe/Brussels" in bad.value.suggestions
    with pytest.raises(InvalidInput):
        subs.parse_timezone("Mars/Olympus_Mons")


def test_parse_frequency():
    assert subs.parse_frequency("Daily") == ("daily", None)
    assert subs.parse_frequency("weekly fr") == ("weekly", 4)
    for bad in ("hourly", "daily monday", "weekly t", "weekly blursday", "", "weekly monday extra"):
        with pytest.raises(InvalidInput):
            subs.parse_frequency(bad)


def test_settings_defaults_updates_and_pause(engine, settings):
    tuned = settings.model_copy(update={"default_timezone": "Europe/Paris", "default_delivery_time": "07:00"})
    fresh = subs.chat_settings(engine, tuned, PRIVATE.id)
    assert (fresh.frequency, fresh.delivery_time, fresh.timezone) == ("daily", "07:00", "Europe/Paris")
    subs.start(engine, tuned, PRIVATE)
    subs.set_frequency(engine, tuned, PRIVATE, "weekly sunday")
    subs.set_time(engine, tuned, PRIVATE, "18:15")
    current = subs.set_timezone(engine, tuned, PRIVATE, "asia/tokyo")
    assert (current.frequency, current.weekly_day, current.delivery_time, current.timezone) == (
        "weekly", "Sunday", "18:15", "Asia/Tokyo")
    assert subs.set_paused(engine, tuned, PRIVATE, True).paused
    assert not subs.set_paused(engine, tuned, PRIVATE, False).paused
    with pytest.raises(InvalidInput):
        subs.set_time(engine, tuned, PRIVATE, "99:99")
    assert subs.chat_settings(engine, tuned, PRIVATE.id).delivery_time == "18:15"


def test_start_clears_blocked_and_mark_blocked(engine, settings):
    first = subs.start(engine, settings, PRIVATE)
    assert first.is_new and not first.was_blocked
    assert subs.mark_blocked(engine, PRIVATE.id) is True
    assert subs.mark_blocked(engine, PRIVATE.id) is False  # already marked
    assert subs.chat_settings(engine, settings, PRIVATE.id).blocked
    again = subs.start(engine, settings, PRIVATE)
    assert again.was_blocked and not again.is_new
    assert not subs.chat_settings(engine, settings, PRIVATE.id).blocked


def test_stop_deletes_the_chat_its_subscriptions_and_queued_messages(engine, settings):
    subs.subscribe(engine, settings, PRIVATE, [BE, PROD])
    with session_scope(engine) as session:
        sid = session.exec(select(Subscriber.id).where(Subscriber.telegram_chat_id == PRIVATE.id)).one()
        session.add(Outbox(subscriber_id=sid, channel="telegram", digest_key="d#1", recipient="10", body="x"))
    assert subs.stop(engine, PRIVATE.id) is True
    with session_scope(engine) as session:
        assert session.exec(select(Subscriber)).all() == []
        assert session.exec(select(Subscription)).all() == []
        assert session.exec(select(Outbox)).all() == []
    assert subs.stop(engine, PRIVATE.id) is False


def test_stop_keeps_the_email_side_of_a_shared_row(engine, settings):
    subs.subscribe(engine, settings, PRIVATE, [BE])
    with session_scope(engine) as session:
        row = session.exec(select(Subscriber).where(Subscriber.telegram_chat_id == PRIVATE.id)).one()
        row.email, row.email_status = "reader@example.org", "confirmed"
        session.add(row)
    assert subs.stop(engine, PRIVATE.id)
    with session_scope(engine) as session:
        row = session.exec(select(Subscriber)).one()
        assert row.telegram_chat_id is None and row.email == "reader@example.org"


def _article(session, url, published, countries=(), sections=()):
    row = Article(url=url, title=url, published=published)
    session.add(row)
    session.flush()
    for value in countries:
        session.add(ArticleTag(article_id=row.id, kind=COUNTRY, value=value))
    for value in sections:
        session.add(ArticleTag(article_id=row.id, kind=SECTION, value=value))


def test_latest_counts_and_popular(engine, settings):
    today = date(2026, 11, 26)
    with session_scope(engine) as session:
        _article(session, "https://e.org/1", today, ["Belgium"], ["Production"])
        _article(session, "https://e.org/2", today - timedelta(days=1), ["Belgium", "France"], ["Funding"])
        _article(session, "https://e.org/3", today - timedelta(days=2), ["Italy"], ["Production"])
        _article(session, "https://e.org/old", today - timedelta(days=90), ["Malta"], ["Production"])
    # Belgium + Production: production news involving Belgium (the matching rule).
    found = subs.latest(engine, PRIVATE.id, "Belgium Production")
    assert [a.url for a in found.articles] == ["https://e.org/1"]
    assert [a.url for a in subs.latest(engine, PRIVATE.id, "Belgium, France").articles] == [
        "https://e.org/1", "https://e.org/2"]
    unknown_only = subs.latest(engine, PRIVATE.id, "qqqq")
    assert unknown_only.articles == [] and unknown_only.unknown[0].word == "qqqq"
    assert subs.latest(engine, PRIVATE.id).from_subscriptions  # nothing followed: newest of all
    assert len(subs.latest(engine, PRIVATE.id, limit=2).articles) == 2
    subs.subscribe(engine, settings, PRIVATE, [Term(COUNTRY, "Italy")])
    assert [a.url for a in subs.latest(engine, PRIVATE.id).articles] == ["https://e.org/3"]

    assert subs.recent_counts(engine, COUNTRY, today=today) == [("Belgium", 2), ("France", 1), ("Italy", 1)]
    sections = dict(subs.section_counts(engine, today=today))
    assert sections["Production"] == 2 and sections["Funding"] == 1 and sections["Awards"] == 0
    popular = subs.popular_countries(engine, limit=5, today=today)
    assert popular[:3] == ["Belgium", "France", "Italy"] and len(popular) == 5


def test_stats(engine, settings):
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    subs.subscribe(engine, settings, Chat(1), [BE, PROD])
    subs.subscribe(engine, settings, Chat(2), [BE])
    subs.set_paused(engine, settings, Chat(2), True)
    subs.start(engine, settings, Chat(3))
    subs.subscribe(engine, settings, Chat(4), [FR])
    subs.mark_blocked(engine, 4)
    with session_scope(engine) as session:
        session.add(Subscriber(email="a@example.org", email_status="confirmed"))
        session.add(Subscriber(email="b@example.org", email_status="pending"))
        session.add(Source(name="s1", url="https://s1.example/", last_success_at=now, last_new_articles=3))
        session.add(Outbox(channel="telegram", digest_key="a", recipient="1", body="x", state="sent",
                           sent_at=now - timedelta(hours=1)))
        session.add(Outbox(channel="email", digest_key="b", recipient="a@example.org", body="x",
                           state="sent", sent_at=now - timedelta(hours=2)))
        session.add(Outbox(channel="telegram", digest_key="c", recipient="1", body="x", state="sent",
                           sent_at=now - timedelta(days=1)))  # yesterday: not counted
        session.add(Outbox(channel="telegram", digest_key="d", recipient="9", body="x", state="dead",
                           attempts=8, next_attempt_at=now - timedelta(hours=3)))
        session.add(Outbox(channel="telegram", digest_key="e", recipient="9", body="x", state="queued",
                           attempts=2))
    result = subs.stats(engine, now=now)
    assert result.telegram == {"active": 1, "paused": 1, "blocked": 1, "idle": 1}
    assert result.email == {"confirmed": 1, "pending": 1}
    assert result.top_countries == [("Belgium", 2), ("France", 1)]
    assert result.top_sections == [("Production", 1)]
    assert [(s.name, s.last_new_articles) for s in result.sources] == [("s1", 3)]
    assert result.sent_today == {"telegram": 1, "email": 1}
    assert (result.failed_today, result.retrying) == (1, 1)
