"""Broadcasts: who gets them, bulk queueing, progress, cancel; 1,000 chats + 1,000 inboxes end to end."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from sqlalchemy import insert
from sqlmodel import select

from digests import broadcast, telegram_html
from digests.db import session_scope
from digests.deliver import run_worker
from digests.models import Announcement, Outbox, Subscriber, utcnow
from tests.fakes.botapi import FakeBotAPI
from tests.fakes.smtp import SMTPSink


def _people(engine, *, chats: int = 0, inboxes: int = 0, start: int = 0) -> None:
    now = utcnow()
    rows = [
        {
            "telegram_chat_id": 10_000 + start + i,
            "chat_type": "private",
            "email_status": "none",
            "created_at": now,
        }
        for i in range(chats)
    ] + [
        {"email": f"reader{start + i}@example.org", "email_status": "confirmed", "created_at": now}
        for i in range(inboxes)
    ]
    with session_scope(engine) as s:
        if rows:
            s.execute(insert(Subscriber), rows)


def _announce(engine, settings, text="Hello <b>readers</b>", channels="both"):
    with session_scope(engine) as s:
        draft = broadcast.create_draft(s, text=text, created_by=1, admin_chat_id=1)
    return broadcast.queue(engine, settings, draft.id, channels=channels)


def test_telegram_html_check():
    assert (
        telegram_html.check("<b>bold</b> <a href='https://x.org'>x</a> &amp; <tg-spoiler>s</tg-spoiler>")
        == []
    )
    assert (
        telegram_html.check('<span class="tg-spoiler">s</span> <pre><code class="language-py">x</code></pre>')
        == []
    )
    problems = telegram_html.check("<div>x</div> <b>y <i>z</b></i> & <a>q</a> &nbsp;")
    text = " | ".join(problems)
    for needle in ("<div>", "closes", "bare '&'", "needs an href", "&nbsp;"):
        assert needle in text, needle
    assert telegram_html.check("x" * 4097)[0].startswith("4097 characters")
    assert telegram_html.from_admin("a < b & c") == ("a &lt; b &amp; c", [])
    assert telegram_html.to_plain('See <a href="https://x.org/?a=1&amp;b=2">this</a>') == (
        "See this (https://x.org/?a=1&b=2)"
    )


def test_who_receives_an_announcement(engine, settings):
    now = utcnow()
    with session_scope(engine) as s:
        s.add_all(
            [
                Subscriber(telegram_chat_id=1, paused=True),  # paused: included
                Subscriber(telegram_chat_id=2, telegram_blocked_at=now),  # blocked: not
                Subscriber(telegram_chat_id=3, email="both@example.org", email_status="confirmed"),
                Subscriber(email="pending@example.org", email_status="pending"),
                Subscriber(email="gone@example.org", email_status="unsubscribed"),
                Subscriber(email="bounced@example.org", email_status="bounced"),
                Subscriber(email="ok@example.org", email_status="confirmed", paused=True),
            ]
        )
    progress = _announce(engine, settings)
    assert progress.total == 4 and progress.queued == 4 and progress.state == "queued"
    with session_scope(engine) as s:
        rows = s.exec(select(Outbox).order_by(Outbox.channel, Outbox.recipient)).all()
    assert [(r.channel, r.recipient) for r in rows] == [
        ("email", "both@example.org"),
        ("email", "ok@example.org"),
        ("telegram", "1"),
        ("telegram", "3"),
    ]
    assert {r.digest_key for r in rows} == {f"announcement:{progress.announcement_id}"}
    assert all(r.announcement_id == progress.announcement_id for r in rows)
    email = rows[0]
    assert email.subject == "Clapper: Hello readers" and "Hello readers" in email.body_text
    assert "<b>readers</b>" in email.body and '<p class="brand" style="' in email.body
    assert "<b>readers</b>" in rows[2].body and rows[2].body.startswith("📣")


def test_links_are_personal_and_a_draft_is_queued_once(engine, settings):
    web = settings.model_copy(update={"public_base_url": "https://news.example.org"})
    _people(engine, inboxes=2)
    with session_scope(engine) as s:
        draft = broadcast.create_draft(s, text="News", created_by=1)
    broadcast.queue(engine, web, draft.id, channels="email")
    with pytest.raises(broadcast.BroadcastError) as again:
        broadcast.queue(engine, web, draft.id, channels="email")
    assert again.value.reason == "not_draft"
    with session_scope(engine) as s:
        rows = s.exec(select(Outbox)).all()
    assert len(rows) == 2
    links = [next(w for w in r.body_text.split() if "/unsubscribe?token=" in w) for r in rows]
    assert links[0] != links[1]
    assert all("clapper.invalid" not in r.body and "clapper.invalid" not in r.body_text for r in rows)
    assert all(f'href="{link}"' in r.body for link, r in zip(links, rows, strict=True))


def test_bad_text_is_refused_before_anything_is_stored(engine, settings):
    with pytest.raises(broadcast.BroadcastError) as bad:
        with session_scope(engine) as s:
            broadcast.create_draft(s, text="<script>x</script>")
    assert bad.value.reason == "invalid_html"
    with pytest.raises(broadcast.BroadcastError):
        with session_scope(engine) as s:
            broadcast.create_draft(s, text="   ")
    with session_scope(engine) as s:
        assert s.exec(select(Announcement)).all() == []


def test_queueing_2000_rows_is_fast_and_cancel_withdraws_the_rest(engine, settings):
    _people(engine, chats=1000, inboxes=1000)
    started = time.perf_counter()
    progress = _announce(engine, settings.model_copy(update={"public_base_url": "https://n.example.org"}))
    elapsed = time.perf_counter() - started
    assert progress.total == 2000
    assert elapsed < 10, f"queueing 2,000 rows took {elapsed:.1f}s"
    with session_scope(engine) as s:  # pretend a worker sent 300 and one failed for good
        ids = s.exec(select(Outbox.id).order_by(Outbox.id).limit(301)).all()
        for i in ids[:300]:
            s.get(Outbox, i).state = "sent"
        s.get(Outbox, ids[300]).state = "dead"
    done = broadcast.cancel(engine, progress.announcement_id)
    assert (done.sent, done.failed, done.cancelled, done.queued) == (300, 1, 1699, 0)
    assert done.state == "cancelled" and done.finished
    with session_scope(engine) as s:
        [(a, p)] = broadcast.history(s)
    assert a.id == progress.announcement_id and p == done


def test_an_announcement_with_nobody_to_reach_is_done_at_once(engine, settings):
    progress = _announce(engine, settings, channels="telegram")
    assert progress.total == 0 and progress.state == "done" and progress.finished


def _fast(settings, api, sink, *, rate):
    return settings.model_copy(
        update={
            **sink.settings(),
            "telegram_bot_token": api.token,
            "telegram_api_base_url": api.base_url,
            "telegram_api_file_url": api.base_file_url,
            "telegram_max_rate": rate,
            "delivery_batch_size": 500,
            "smtp_connections": 4,
        }
    )


async def _wait(predicate, within: float, step: float = 0.05):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await asyncio.to_thread(predicate):
            return True
        await asyncio.sleep(step)
    return False


def _progress(engine, announcement_id):
    with session_scope(engine) as s:
        return broadcast.progress(s, announcement_id)


@pytest.mark.slow
async def test_broadcast_to_1000_chats_and_1000_inboxes_arrives_once_each(engine, settings):
    rate = 400.0
    # The full 1,000 + 1,000 on SQLite; on PostgreSQL 300 + 300 keep the suite fast (the worker
    # settles each row in its own transaction, ~5 ms each there) while exercising the same path.
    n = 300 if engine.dialect.name == "postgresql" else 1000
    _people(engine, chats=n, inboxes=n)
    async with FakeBotAPI(global_rate=rate) as api, SMTPSink() as sink:
        cfg = _fast(settings, api, sink, rate=rate * 0.9)
        progress = _announce(engine, cfg, text="Big <b>news</b>")
        stop = asyncio.Event()
        worker = asyncio.create_task(run_worker(engine, cfg, stop=stop, worker_id="w1", idle_sleep=0.05))
        try:
            assert await _wait(lambda: _progress(engine, progress.announcement_id).finished, within=60)
        finally:
            stop.set()
            await worker
    chats = Counter(m.chat_id for m in api.sent)
    assert len(chats) == n and set(chats.values()) == {1}
    inboxes = Counter(r for m in sink.messages for r in m.rcpt_tos)
    assert len(inboxes) == n and set(inboxes.values()) == {1}
    assert all("Big news" in m.plain for m in api.sent)
    assert not [r for r in api.rejected if r.get("error_code") == 429], "the sender overran the rate limit"
    assert api.max_rate() <= rate
    final = _progress(engine, progress.announcement_id)
    assert (final.sent, final.failed, final.queued, final.state) == (2 * n, 0, 0, "done")


@pytest.mark.slow
async def test_a_broadcast_cancelled_midway_sends_nothing_more(engine, settings):
    rate = 150.0
    _people(engine, chats=1000, inboxes=300)
    async with FakeBotAPI(global_rate=rate * 2) as api, SMTPSink() as sink:
        cfg = _fast(settings, api, sink, rate=rate).model_copy(update={"delivery_batch_size": 50})
        progress = _announce(engine, cfg)
        stop = asyncio.Event()
        worker = asyncio.create_task(run_worker(engine, cfg, stop=stop, worker_id="w1", idle_sleep=0.05))
        try:
            assert await _wait(lambda: len(api.sent) >= 200, within=30)
            cancelled = broadcast.cancel(engine, progress.announcement_id)
            assert cancelled.state == "cancelled" and cancelled.cancelled > 0
            # Rows a worker already held finish; then nothing else may arrive.
            assert await _wait(lambda: _progress(engine, progress.announcement_id).queued == 0, within=30)
            settled = (len(api.sent), len(sink.messages))
            await asyncio.sleep(1.0)
            assert (len(api.sent), len(sink.messages)) == settled
        finally:
            stop.set()
            await worker
    final = _progress(engine, progress.announcement_id)
    delivered = len(api.sent) + len(sink.messages)
    assert final.sent == delivered < 1300
    assert final.sent + final.failed + final.cancelled == 1300
    assert final.cancelled == cancelled.cancelled
    assert len({m.chat_id for m in api.sent}) == len(api.sent)  # no duplicates


@pytest.mark.parametrize(
    "text",
    [
        "plain words",
        "<b>bold</b> and <i>it</i> <u>u</u> <s>s</s> <code>c</code> <pre>p</pre>",
        '<a href="https://x.org/?a=1&amp;b=2">link</a>',
        "<blockquote>quote</blockquote> <tg-spoiler>secret</tg-spoiler>",
        "<div>not telegram</div>",
        "<b>unclosed",
        "<b><i>crossed</b></i>",
        "fish & chips",
        "1 < 2",
        "&nbsp;",
        "&#8212; &lt;tag&gt;",
        "é" * 4096,
        "é" * 4097,
    ],
)
def test_our_check_agrees_with_the_fake_bot_api(text):
    """The check that guards broadcasts says what the fake Bot API (Telegram's rules) says."""
    from tests.fakes import telegram_rules

    try:
        telegram_rules.message_text(text, "HTML")
        accepted = True
    except telegram_rules.Rejected:
        accepted = False
    assert (telegram_html.check(text) == []) == accepted


def test_cli_broadcast_previews_asks_and_queues(db_url, engine, monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from digests.cli import app
    from digests.config import get_settings

    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("SECRET_KEY", "broadcast-test-key-0123456789abcdef-0123")
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    _people(engine, chats=3, inboxes=2)
    (tmp_path / "msg.txt").write_text("New: <b>Czech</b> news")
    (tmp_path / "bad.txt").write_text("<div>x</div>")
    run = CliRunner().invoke
    try:
        r = run(app, ["broadcast", "--file", str(tmp_path / "bad.txt")])
        assert r.exit_code == 1 and "<div>" in r.output
        r = run(app, ["broadcast", "--file", str(tmp_path / "msg.txt")], input="n\n")
        assert (
            r.exit_code == 1
            and "📣 <b>Clapper</b>" in r.output
            and "Subject: Clapper: New: Czech news" in r.output
        )
        assert "Nothing queued" in r.output
        r = run(app, ["broadcast", "--file", str(tmp_path / "msg.txt"), "--channels", "email", "--yes"])
        assert r.exit_code == 0 and "queued for 2 reader(s)" in r.output
        r = run(app, ["announcements"])
        assert r.exit_code == 0 and "email" in r.output
        r = run(app, ["announcements", "--cancel", "1"])
        assert r.exit_code == 0 and "0 sent, 0 failed, 2 withdrawn" in r.output
    finally:
        get_settings.cache_clear()
    with session_scope(engine) as s:
        assert {r.state for r in s.exec(select(Outbox))} == {"cancelled"}
