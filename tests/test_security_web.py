"""Attacks on the web pages behind email links, over real HTTP: link scanners, and links that
outlive the address they were mailed to (switched address, old inbox, removed reader's id).

The links are taken from the messages as mailed (outbox rows rendered by the sender's own
message builder, or received over real SMTP), never made by the test.
"""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import text
from sqlmodel import select

from digests import db, emails, queue, renderings
from digests.channels.email import message_for_row
from digests.db import session_scope
from digests.deliver import deliver_once_async
from digests.models import Article, ArticleTag, Outbox, Subscriber, Subscription, utcnow
from digests.web import create_app
from tests.fakes.smtp import SMTPSink
from tests.test_web import running

BASE = "https://news.example.org"
SCANNER_METHODS = ("GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE")


@pytest.fixture
def web_settings(settings):
    return settings.model_copy(update={"public_base_url": BASE})


def links_in(settings, row: Outbox) -> dict[str, str]:
    """purpose -> path?query of every link to our pages in the message built for `row`,
    body and List-Unsubscribe header alike (the last one of each purpose wins)."""
    message = message_for_row(settings, row)
    found = {}
    words = message.get_body(("plain",)).get_content().split() + re.findall(
        r"<([^>]+)>", str(message.get("List-Unsubscribe", ""))
    )
    for word in words:
        if word.startswith(BASE):
            parts = urlsplit(word)
            found[parts.path.strip("/")] = f"{parts.path}?{parts.query}"
    return found


def email_rows(engine, subscriber_id: int) -> list[Outbox]:
    """The reader's email rows with their bodies as the sender builds them (renderings resolved)."""
    with session_scope(engine) as s:
        found = s.exec(
            select(Outbox).where(Outbox.subscriber_id == subscriber_id, Outbox.channel == "email")
            .order_by(Outbox.id)
        ).all()
        renderings.resolve(s, found)
        return found


def subscriber(engine, subscriber_id: int) -> Subscriber | None:
    with session_scope(engine) as s:
        return s.get(Subscriber, subscriber_id)


def chat_reader(engine, settings, chat_id: int, address: str, *, confirm: bool, now) -> int:
    """A chat that asked for email to `address` through the bot's service (and confirmed it)."""
    with session_scope(engine) as s:
        emails.request(s, settings, chat_id=chat_id, address=address, now=now, code="123456")
    if confirm:
        with session_scope(engine) as s:
            assert emails.verify(s, settings, chat_id=chat_id, code="123456", now=now).ok
    with session_scope(engine) as s:
        return emails.by_chat(s, chat_id).id


def digest_for(engine, settings, subscriber_id: int, now) -> Outbox:
    """A real email digest queued for the reader (one Belgian article, the reader follows Belgium)."""
    with session_scope(engine) as s:
        if not s.exec(select(Subscription).where(Subscription.subscriber_id == subscriber_id)).first():
            s.add(Subscription(subscriber_id=subscriber_id, kind="country", value="Belgium"))
        article = Article(url=f"https://example.org/a{now.timestamp()}", title="Shoot in Ghent",
                          published=now.date(), first_seen_at=now + timedelta(seconds=1))
        s.add(article)
        s.flush()
        s.add(ArticleTag(article_id=article.id, kind="country", value="Belgium"))
    later = now + timedelta(seconds=2)
    queue.queue_due(engine, settings, now=later, subscriber_ids=[subscriber_id], force=True)
    return [r for r in email_rows(engine, subscriber_id) if r.digest_key.startswith("digest:")][-1]


# ---- 2. link scanners ---------------------------------------------------------------------------


async def test_no_method_but_post_changes_anything_on_any_page(engine, web_settings):
    now = utcnow()
    pending = chat_reader(engine, web_settings, 601, "pending@example.org", confirm=False, now=now)
    confirm_link = links_in(web_settings, email_rows(engine, pending)[-1])["confirm"]
    reader = chat_reader(engine, web_settings, 602, "reader@example.org", confirm=True, now=now)
    mailed = links_in(web_settings, digest_for(engine, web_settings, reader, now))
    form = {"country": ["France"], "section": ["Funding"], "frequency": "daily"}

    async with running(create_app(web_settings, engine)) as base, httpx.AsyncClient(base_url=base) as http:
        for method in SCANNER_METHODS:
            for path in (confirm_link, mailed["unsubscribe"], mailed["preferences"]):
                r = await http.request(method, path, data=form if method in ("PUT", "PATCH") else None)
                if method in ("GET", "HEAD"):
                    assert r.status_code == 200, (method, path)
                else:
                    allowed = sorted(r.headers["allow"].split(", "))
                    assert r.status_code == 405 and allowed == ["GET", "HEAD", "POST"], (method, path)
        assert subscriber(engine, pending).email_status == "pending"
        after = subscriber(engine, reader)
        assert (after.email_status, after.email_frequency) == ("confirmed", "weekly")
        with session_scope(engine) as s:
            assert emails.terms_of(s, reader) == (["Belgium"], [])
        head = await http.head(mailed["unsubscribe"])
        assert head.status_code == 200 and head.headers["cache-control"] == "no-store"
        # The same links do act on POST, so the checks above could have seen a change.
        assert (await http.post(confirm_link)).status_code == 200
        assert (await http.post(mailed["preferences"], data=form)).status_code == 200
        assert (await http.post(mailed["unsubscribe"])).status_code == 200
    assert subscriber(engine, pending).email_status == "confirmed"
    after = subscriber(engine, reader)
    assert (after.email_status, after.email_frequency) == ("unsubscribed", "daily")


# ---- 3. a link acts only for the address it was mailed to --------------------------------------


async def test_confirmation_link_for_one_address_does_not_confirm_the_next(engine, web_settings):
    now = utcnow()
    chat = chat_reader(engine, web_settings, 611, "first@example.org", confirm=False, now=now)
    old_link = links_in(web_settings, email_rows(engine, chat)[-1])["confirm"]
    with session_scope(engine) as s:
        emails.request(s, web_settings, chat_id=611, address="victim@example.org",
                       now=now + timedelta(minutes=2), code="654321")
    async with running(create_app(web_settings, engine)) as base, httpx.AsyncClient(base_url=base) as http:
        shown = await http.get(old_link)
        assert shown.status_code == 410 and "victim@example.org" not in shown.text
        assert "out of date" in shown.text
        done = await http.post(old_link)
        assert done.status_code == 410 and "Nothing was changed" in done.text
    after = subscriber(engine, chat)
    assert (after.email, after.email_status) == ("victim@example.org", "pending")


async def test_links_mailed_to_an_old_address_neither_show_nor_change_the_new_one(engine, web_settings):
    now = utcnow()
    chat = chat_reader(engine, web_settings, 621, "old@example.org", confirm=True, now=now)
    old = links_in(web_settings, digest_for(engine, web_settings, chat, now))
    # The digest's own page ("view") is bound to the address too.
    assert set(old) == {"unsubscribe", "preferences", "view"}
    later = now + timedelta(minutes=2)
    chat_reader(engine, web_settings, 621, "new@example.org", confirm=True, now=later)
    new = links_in(web_settings, digest_for(engine, web_settings, chat, later + timedelta(minutes=1)))
    async with running(create_app(web_settings, engine)) as base, httpx.AsyncClient(base_url=base) as http:
        for path in old.values():
            r = await http.get(path)
            assert r.status_code == 410 and "new@example.org" not in r.text
        r = await http.post(old["preferences"], data={"country": ["France"], "frequency": "instant"})
        assert r.status_code == 410
        r = await http.post(old["unsubscribe"], content=b"List-Unsubscribe=One-Click")
        assert r.status_code == 410
        after = subscriber(engine, chat)
        assert (after.email, after.email_status) == ("new@example.org", "confirmed")
        assert after.email_frequency == "weekly"
        # The new address's own links work.
        r = await http.get(new["preferences"])
        assert r.status_code == 200 and "new@example.org" in r.text
        assert (await http.post(new["unsubscribe"])).status_code == 200
    assert subscriber(engine, chat).email_status == "unsubscribed"


async def test_a_removed_readers_links_never_reach_a_newcomer(engine, web_settings):
    with session_scope(engine) as s:
        reader = emails.new_reader("gone@example.org", ["Belgium"], [], "weekly")
        gone = emails.add_reader(s, web_settings, reader, confirmed=False).id
    confirm_link = links_in(web_settings, email_rows(engine, gone)[-1])["confirm"]
    with session_scope(engine) as s:
        assert emails.remove_reader(s, "gone@example.org")
    with session_scope(engine) as s:
        reader = emails.new_reader("next@example.org", [], [], "daily")
        newcomer = emails.add_reader(s, web_settings, reader, confirmed=False).id
    assert newcomer != gone  # ids are never handed out twice (SQLite needs AUTOINCREMENT for this)
    async with running(create_app(web_settings, engine)) as base, httpx.AsyncClient(base_url=base) as http:
        for method in ("GET", "POST"):
            r = await http.request(method, confirm_link)
            assert "next@example.org" not in r.text and r.status_code in (200, 410)
    assert subscriber(engine, newcomer).email_status == "pending"


async def test_the_list_unsubscribe_header_as_received_is_bound_too(engine, web_settings):
    now = utcnow()
    chat = chat_reader(engine, web_settings, 631, "inbox@example.org", confirm=False, now=now)
    async with SMTPSink() as sink:
        cfg = web_settings.model_copy(update=sink.settings())
        await deliver_once_async(engine, cfg, worker_id="t")
        (mail,) = sink.to("inbox@example.org")
    header = str(mail.message["List-Unsubscribe"])
    https = next(u for u in re.findall(r"<([^>]+)>", header) if u.startswith(BASE))
    path = https.removeprefix(BASE)
    with session_scope(engine) as s:
        later = now + timedelta(minutes=2)
        emails.request(s, web_settings, chat_id=631, address="other@example.org", now=later, code="111111")
    async with running(create_app(web_settings, engine)) as base, httpx.AsyncClient(base_url=base) as http:
        r = await http.post(path, content=b"List-Unsubscribe=One-Click")
        assert r.status_code == 410
    assert subscriber(engine, chat).email_status == "pending"


def test_the_migration_keeps_every_row_and_stops_id_reuse(tmp_path):
    """An existing SQLite database (initial schema, with readers) upgraded in place."""
    from alembic import command

    url = f"sqlite:///{tmp_path / 'old.db'}"
    cfg = db.alembic_config(url)
    engine = db.get_engine(url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "34ba1a3c9178")
    with engine.begin() as conn:
        for sid, address in ((1, "a@example.org"), (2, "b@example.org")):
            conn.execute(text(
                "INSERT INTO subscriber (id, email, email_status, email_code_attempts, email_frequency,"
                " frequency, timezone, delivery_time, weekly_day, paused, send_empty, created_at)"
                " VALUES (:id, :email, 'confirmed', 0, 'weekly', 'daily', 'UTC', '08:00', 0, 0, 0,"
                " '2026-01-01 00:00:00')"), {"id": sid, "email": address})
            conn.execute(text(
                "INSERT INTO subscription (subscriber_id, kind, value, created_at)"
                " VALUES (:id, 'country', 'Belgium', '2026-01-01 00:00:00')"), {"id": sid})
            conn.execute(text(
                "INSERT INTO outbox (subscriber_id, channel, digest_key, recipient, subject, body, template,"
                " article_count, state, attempts, next_attempt_at, created_at) VALUES (:id, 'email', 'k',"
                " :email, 's', 'b', '', 0, 'queued', 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"),
                {"id": sid, "email": address})
    db.upgrade(url)
    with engine.begin() as conn:
        for table in ("subscription", "outbox"):
            kept = conn.execute(text(f"SELECT subscriber_id FROM {table} ORDER BY 1")).scalars().all()
            assert kept == [1, 2], table
        assert conn.execute(text("PRAGMA foreign_key_check")).all() == []
    with session_scope(engine) as s:
        assert emails.remove_reader(s, "b@example.org")
    with session_scope(engine) as s:
        newcomer = Subscriber(email="c@example.org")
        s.add(newcomer)
        s.flush()
        assert newcomer.id == 3
    engine.dispose()
