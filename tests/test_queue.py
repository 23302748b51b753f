"""Queueing digests on SQLite and PostgreSQL: right articles, watermarks, exactly once."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import select

from digests import queue, renderings, tokens
from digests.compose import Composer, telegram_length
from digests.db import session_scope
from digests.models import Article, ArticleTag, EmailRendering, Outbox, Subscriber, Subscription
from tests.fakes import telegram_rules

T0 = datetime(2025, 11, 20, 12, 0, tzinfo=UTC)
NOW = datetime(2025, 11, 24, 7, 0, tzinfo=UTC)  # Monday 08:00 in Brussels


def add_article(
    engine, title, *, countries=(), sections=("Production",), seen=T0 + timedelta(hours=1), summary=""
):
    with session_scope(engine) as s:
        article = Article(
            url=f"https://example.org/{title.replace(' ', '-')}",
            title=title,
            summary=summary,
            published=seen.date(),
            first_seen_at=seen,
        )
        s.add(article)
        s.flush()
        for c in countries:
            s.add(ArticleTag(article_id=article.id, kind="country", value=c))
        for sec in sections:
            s.add(ArticleTag(article_id=article.id, kind="section", value=sec))
        return article.id


def add_subscriber(engine, follows=(), *, created=T0, **fields) -> int:
    with session_scope(engine) as s:
        sub = Subscriber(created_at=created, **fields)
        s.add(sub)
        s.flush()
        for kind, value in follows:
            s.add(Subscription(subscriber_id=sub.id, kind=kind, value=value))
        return sub.id


def rows(engine, subscriber_id=None) -> list[Outbox]:
    """The queued rows with their bodies as the sender gets them (shared renderings resolved)."""
    with session_scope(engine) as s:
        query = select(Outbox).order_by(Outbox.id)
        if subscriber_id is not None:
            query = query.where(Outbox.subscriber_id == subscriber_id)
        found = list(s.exec(query))
        renderings.resolve(s, found)
        return found


def stored(engine) -> list[tuple]:
    """What the outbox table itself holds for email: (subscriber, body, body_text, rendering, links)."""
    with session_scope(engine) as s:
        return list(s.exec(select(Outbox.subscriber_id, Outbox.body, Outbox.body_text, Outbox.rendering_id,
                                  Outbox.links).where(Outbox.channel == "email").order_by(Outbox.id)))


def subscriber(engine, subscriber_id) -> Subscriber:
    with session_scope(engine) as s:
        return s.get(Subscriber, subscriber_id)


BE = ("country", "Belgium")
FR = ("country", "France")
PROD = ("section", "Production")


@pytest.fixture
def world(engine):
    """Four articles, seven readers in every state that matters."""
    ids = {
        "old": add_article(engine, "Old Belgian news", countries=["Belgium"], seen=T0 - timedelta(days=3)),
        "be": add_article(engine, "Belgian shoot", countries=["Belgium"]),
        "fr": add_article(engine, "French festival", countries=["France"], sections=["Festivals"]),
        "befr": add_article(engine, "Franco-Belgian co-production", countries=["Belgium", "France"]),
    }
    people = {
        "alice": add_subscriber(engine, [BE], telegram_chat_id=101),
        "bob": add_subscriber(engine, [FR, PROD], telegram_chat_id=102),
        "carol": add_subscriber(engine, [], telegram_chat_id=103),
        "dave": add_subscriber(engine, [BE], email="dave@example.org", email_status="confirmed"),
        "erin": add_subscriber(engine, [BE], email="erin@example.org", email_status="pending"),
        "frank": add_subscriber(engine, [BE], telegram_chat_id=106, paused=True),
        "gina": add_subscriber(engine, [BE], telegram_chat_id=107, telegram_blocked_at=T0),
    }
    return ids, people


def test_right_articles_reach_the_right_subscribers(engine, settings, world):
    ids, p = world
    report = queue.queue_due(engine, settings, now=NOW, force=True)
    assert report.digests == 3 and report.by_channel == {"telegram": 2, "email": 1}
    assert report.articles == 3  # the old article predates everyone: never loaded

    (alice,) = rows(engine, p["alice"])
    assert alice.channel == "telegram" and alice.recipient == "101"
    assert alice.digest_key == f"digest:{NOW.isoformat()}#1/1"
    assert "Belgian shoot" in alice.body and "Franco-Belgian co-production" in alice.body
    assert "French festival" not in alice.body and "Old Belgian news" not in alice.body
    assert alice.article_count == 2
    telegram_rules.message_text(alice.body, "HTML")

    (bob,) = rows(engine, p["bob"])  # France AND Production
    assert bob.article_count == 1 and "Franco-Belgian co-production" in bob.body

    (dave,) = rows(engine, p["dave"])
    assert dave.channel == "email" and dave.recipient == "dave@example.org"
    assert dave.subject.startswith("2 new production articles: Belgium")
    assert "Belgian shoot" in dave.body_text and "Belgian shoot" in dave.body

    for name in ("carol", "erin", "frank", "gina"):
        assert rows(engine, p[name]) == [], name

    # Watermarks: advanced for everyone due (carol too: nothing to send is still a digest slot).
    assert subscriber(engine, p["alice"]).last_digest_at == NOW
    assert subscriber(engine, p["carol"]).last_digest_at == NOW
    assert subscriber(engine, p["dave"]).email_last_digest_at == NOW
    assert subscriber(engine, p["dave"]).last_digest_at is None
    assert subscriber(engine, p["erin"]).email_last_digest_at is None
    assert subscriber(engine, p["frank"]).last_digest_at is None
    assert subscriber(engine, p["gina"]).last_digest_at is None


def test_nothing_twice_and_only_new_articles_next_time(engine, settings, world):
    ids, p = world
    first = queue.queue_due(engine, settings, now=NOW, force=True)
    again = queue.queue_due(engine, settings, now=NOW, force=True)  # the same run repeated
    assert first.messages == 3 and again.messages == 0 and again.digests == 0
    later = NOW + timedelta(days=1)
    assert queue.queue_due(engine, settings, now=later, force=True).messages == 0
    add_article(engine, "Second Belgian shoot", countries=["Belgium"], seen=later + timedelta(hours=1))
    add_article(engine, "Not yet seen", countries=["Belgium"], seen=later + timedelta(days=5))
    third = queue.queue_due(engine, settings, now=later + timedelta(hours=2), force=True)
    assert third.messages == 2  # alice (telegram) and dave (email)
    alice = rows(engine, p["alice"])
    assert len(alice) == 2 and alice[-1].article_count == 1
    assert "Second Belgian shoot" in alice[-1].body and ">Belgian shoot<" not in alice[-1].body
    assert "Not yet seen" not in alice[-1].body  # first seen after `now`: the next digest's
    keys = [r.digest_key for r in rows(engine)]
    assert len(keys) == len(set((r.subscriber_id, r.channel, r.digest_key) for r in rows(engine)))


def test_due_check_follows_each_subscribers_local_time(engine, settings):
    add_article(engine, "Belgian shoot", countries=["Belgium"])
    brussels = add_subscriber(engine, [BE], telegram_chat_id=201, created=T0)  # daily 08:00 Brussels
    tokyo = add_subscriber(engine, [BE], telegram_chat_id=202, created=T0, timezone="Asia/Tokyo")
    weekly_mail = add_subscriber(
        engine, [BE], created=T0, email="w@example.org", email_status="confirmed", email_confirmed_at=T0
    )  # weekly on Monday 08:00 Brussels
    before = datetime(2025, 11, 21, 6, 59, tzinfo=UTC)  # Friday 07:59 in Brussels, 15:59 in Tokyo
    report = queue.queue_due(engine, settings, now=before)
    assert [r.subscriber_id for r in rows(engine)] == [tokyo]
    assert report.checked == 3 and report.due == 1
    queue.queue_due(engine, settings, now=before + timedelta(minutes=1))
    assert sorted(r.subscriber_id for r in rows(engine)) == sorted([tokyo, brussels])
    assert rows(engine, weekly_mail) == []
    queue.queue_due(engine, settings, now=NOW)  # Monday 08:00 in Brussels
    assert len(rows(engine, weekly_mail)) == 1
    assert "week of 17 Nov" in rows(engine, weekly_mail)[0].subject


def test_a_crash_before_commit_loses_nothing_and_sends_nothing_twice(engine, settings, world, monkeypatch):
    ids, p = world
    real = queue._insert_rows

    def insert_then_crash(session, rows_):
        real(session, rows_)
        raise RuntimeError("power cut after the insert, before the commit")

    monkeypatch.setattr(queue, "_insert_rows", insert_then_crash)
    with pytest.raises(RuntimeError):
        queue.queue_due(engine, settings, now=NOW, force=True)
    # The whole transaction rolled back: no rows, no watermark moved.
    assert rows(engine) == []
    assert subscriber(engine, p["alice"]).last_digest_at is None
    monkeypatch.setattr(queue, "_insert_rows", real)
    assert queue.queue_due(engine, settings, now=NOW, force=True).messages == 3
    assert len(rows(engine)) == 3


def test_rows_already_queued_under_the_same_key_are_not_queued_again(engine, settings, world):
    ids, p = world
    queue.queue_due(engine, settings, now=NOW, force=True)
    # Someone rewound the watermarks (a restored backup): the same run must not duplicate rows.
    with session_scope(engine) as s:
        for sid in p.values():
            sub = s.get(Subscriber, sid)
            sub.last_digest_at = sub.email_last_digest_at = None
    again = queue.queue_due(engine, settings, now=NOW, force=True)
    assert again.messages == 0 and again.already_queued == 3
    assert len(rows(engine)) == 3


def test_two_runs_at_once_queue_each_digest_once(engine, settings, world):
    ids, p = world
    with session_scope(engine) as s:
        stale = queue.plan(s, settings, now=NOW, composer=Composer(), force=True)
    queue.queue_due(engine, settings, now=NOW + timedelta(seconds=5), force=True)
    report = queue.QueueReport(now=NOW)
    queue.write(engine, settings, stale, now=NOW, report=report)
    assert report.raced == len(stale) > 0 and report.messages == 0
    assert len(rows(engine)) == 3


def test_long_digest_is_queued_in_numbered_parts(engine, settings):
    for i in range(30):
        add_article(engine, f"Shoot {i}", countries=["Belgium"], summary="long summary " * 40)
    sid = add_subscriber(engine, [BE], telegram_chat_id=301)
    queue.queue_due(engine, settings, now=NOW, force=True)
    parts = rows(engine, sid)
    assert len(parts) >= 3
    assert [r.digest_key.split("#")[1] for r in parts] == [
        f"{i}/{len(parts)}" for i in range(1, len(parts) + 1)
    ]
    assert all(telegram_length(r.body) <= 4096 for r in parts)
    assert sum("Shoot " in line for r in parts for line in r.body.splitlines()) == 30


def test_email_links_are_personal(engine, settings):
    settings = settings.model_copy(update={"public_base_url": "https://clapper.example"})
    add_article(engine, "Belgian shoot", countries=["Belgium"])
    a = add_subscriber(engine, [BE], email="a@example.org", email_status="confirmed")
    b = add_subscriber(engine, [BE], email="b@example.org", email_status="confirmed")
    report = queue.queue_due(engine, settings, now=NOW, force=True)
    assert report.renders == 1 and report.cache_hits == 1  # one render shared by both
    for sid, address in ((a, "a@example.org"), (b, "b@example.org")):
        (row,) = rows(engine, sid)
        link = tokens.link(settings, tokens.Recipient(sid, address), "unsubscribe")
        assert link in row.body_text and link.replace("&", "&amp;") in row.body
        token = link.split("token=")[1]
        assert tokens.read_token(settings, token, "unsubscribe").subscriber_id == sid
        assert "CLAPPER-PERSONAL" not in row.body + row.body_text
    # The big body is stored once; each reader's row holds only its own links.
    with session_scope(engine) as s:
        (shared,) = s.exec(select(EmailRendering)).all()
    assert "CLAPPER-PERSONAL-UNSUBSCRIBE-URL" in shared.html and "Belgian shoot" in shared.html
    mine = stored(engine)
    assert [(sid, body, text, rid) for sid, body, text, rid, _ in mine] == [
        (a, "", None, shared.id), (b, "", None, shared.id)
    ]
    for (sid, *_, links), address in zip(mine, ("a@example.org", "b@example.org"), strict=True):
        assert tokens.link(settings, tokens.Recipient(sid, address), "unsubscribe") in links


def test_nothing_new_is_sent_only_when_asked(engine, settings):
    quiet = add_subscriber(engine, [BE], telegram_chat_id=401)
    wants = add_subscriber(engine, [BE], telegram_chat_id=402, send_empty=True)
    follows_nothing = add_subscriber(engine, [], telegram_chat_id=403, send_empty=True)
    report = queue.queue_due(engine, settings, now=NOW, force=True)
    assert report.empty == 1 and report.skipped == 2
    assert rows(engine, quiet) == [] and rows(engine, follows_nothing) == []
    (row,) = rows(engine, wants)
    assert row.template == "telegram/nothing_new.html.j2" and "Nothing new" in row.body
    everyone = settings.model_copy(update={"send_empty_digests": True})
    queue.queue_due(engine, everyone, now=NOW + timedelta(days=1), force=True)
    assert len(rows(engine, quiet)) == 1 and rows(engine, follows_nothing) == []


def test_shared_subscriptions_render_once(engine, settings):
    add_article(engine, "Belgian shoot", countries=["Belgium"])
    add_article(engine, "French shoot", countries=["France"])
    for i in range(40):
        add_subscriber(engine, [BE] if i % 2 else [FR, BE], telegram_chat_id=1000 + i)
    report = queue.queue_due(engine, settings, now=NOW, force=True)
    assert report.digests == 40 and report.subscription_sets == 2
    assert report.renders == 2 and report.cache_hits == 38


def test_subscriber_ids_limit_the_run(engine, settings, world):
    ids, p = world
    report = queue.queue_due(engine, settings, now=NOW, force=True, subscriber_ids=[p["bob"], p["frank"]])
    assert report.digests == 1 and [r.subscriber_id for r in rows(engine)] == [p["bob"]]


def test_instant_subscribers_are_not_rewritten_when_nothing_arrived(engine, settings):
    sid = add_subscriber(engine, [BE], telegram_chat_id=501, frequency="instant")
    queue.queue_due(engine, settings, now=NOW)
    assert subscriber(engine, sid).last_digest_at is None
    add_article(engine, "Belgian shoot", countries=["Belgium"], seen=NOW + timedelta(minutes=1))
    later = NOW + timedelta(minutes=2)
    assert queue.queue_due(engine, settings, now=later).digests == 1
    assert subscriber(engine, sid).last_digest_at == later


def test_text_only_article_in_a_digest(engine, settings):
    with session_scope(engine) as s:
        art = Article(
            url="clapper:text/abc", title="Text page", published=date(2025, 11, 20), first_seen_at=NOW
        )
        s.add(art)
        s.flush()
        s.add(ArticleTag(article_id=art.id, kind="country", value="Belgium"))
    sid = add_subscriber(engine, [BE], telegram_chat_id=601)
    queue.queue_due(engine, settings, now=NOW, force=True)
    (row,) = rows(engine, sid)
    assert "<b>Text page</b>" in row.body and "clapper:text" not in row.body


# --- commands: `clapper digests preview|queue` and `clapper demo` (subprocesses, as people run them) ---


def clapper(args, *, db_url, cwd, extra_env=None):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLAPPER_", "TELEGRAM_", "SMTP_"))}
    env.update({"DATABASE_URL": db_url, "SECRET_KEY": "q" * 32, **(extra_env or {})})
    return subprocess.run(
        [sys.executable, "-c", "from digests.cli import main; main()", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_preview_and_queue_commands(engine, db_url, tmp_path, world):
    ids, p = world
    shown = clapper(["digests", "preview", "--chat", "101"], db_url=db_url, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "Belgian shoot" in shown.stdout and "French festival" not in shown.stdout
    written = clapper(
        ["digests", "preview", "--email", "dave@example.org", "--out", "prev"], db_url=db_url, cwd=tmp_path
    )
    assert written.returncode == 0, written.stderr
    assert (tmp_path / "prev" / "digest.eml").exists() and (tmp_path / "prev" / "digest-email.txt").exists()
    assert rows(engine) == [] and subscriber(engine, p["alice"]).last_digest_at is None  # nothing written
    missing = clapper(["digests", "preview", "--chat", "999"], db_url=db_url, cwd=tmp_path)
    assert missing.returncode == 1 and "No subscriber" in missing.stdout
    queued = clapper(["digests", "queue", "--all"], db_url=db_url, cwd=tmp_path)
    assert queued.returncode == 0, queued.stderr
    assert "queued 3 digest(s)" in " ".join(queued.stdout.split())
    assert len(rows(engine)) == 3


def test_demo_twice_writes_the_digests(db_url, tmp_path):
    import email
    from email import policy

    for _ in range(2):
        run = clapper(["demo"], db_url=db_url, cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        assert "demo-digest.eml" in run.stdout
    out = tmp_path / "out"
    telegram = (out / "demo-digest-telegram.html").read_text()
    telegram_rules.message_text(telegram, "HTML")
    assert "10 new articles" in telegram and "BELGIUM" in telegram
    message = email.message_from_bytes((out / "demo-digest.eml").read_bytes(), policy=policy.default)
    assert message.get_content_type() == "multipart/alternative"
    assert message["Subject"].startswith("10 new production articles: Belgium")
    assert message["To"] == "demo.reader@example.org"
    kinds = [part.get_content_type() for part in message.iter_parts()]
    assert kinds == ["text/plain", "text/html"]


# --- end to end: queued digests through the real senders (PTB client -> fake Bot API, SMTP -> aiosmtpd) ---


async def test_queued_digests_reach_chats_and_inboxes_exactly_once(engine, settings, world):
    from digests.deliver import deliver_once_async
    from tests.fakes.botapi import FakeBotAPI
    from tests.fakes.smtp import SMTPSink

    ids, p = world
    for i in range(25):  # enough for alice's digest to be split into parts
        add_article(engine, f"Brussels shoot {i} <&>", countries=["Belgium"], summary="a long summary " * 30)
    assert queue.queue_due(engine, settings, now=NOW, force=True).digests == 3
    parts = rows(engine, p["alice"])
    assert len(parts) > 1
    async with FakeBotAPI(per_chat_interval=0.05) as api, SMTPSink() as sink:
        live = settings.model_copy(
            update={
                "telegram_bot_token": api.token,
                "telegram_api_base_url": api.base_url,
                "telegram_api_file_url": api.base_file_url,
                "telegram_per_chat_interval": 0.05,
                "public_base_url": "https://clapper.example.org",
                **sink.settings(),
            }
        )
        for _ in range(5):
            await deliver_once_async(engine, live, worker_id="t")
            if all(r.state == "sent" for r in rows(engine)):
                break
        assert api.rejected == []  # Telegram's HTML and length rules accepted every part
        alice = api.messages_for(101)
        assert [m.text for m in alice] == [r.body for r in parts]  # in order, once each
        assert f"(1/{len(parts)})" in alice[0].plain and "<&>" in alice[0].plain
        assert len(api.messages_for(102)) == 1 and api.messages_for(103) == []
        assert {m.chat_id for m in api.sent} == {101, 102}
        [mail] = sink.to("dave@example.org")
        assert mail.subject.startswith("27 new production articles: Belgium")  # 25 + be + befr
        assert sink.to("erin@example.org") == []
    assert all(r.state == "sent" for r in rows(engine))
