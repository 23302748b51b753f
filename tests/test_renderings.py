"""A fan-out's email body stored once: what each reader gets is what a per-reader body gave."""

from __future__ import annotations

import email
import email.policy

import httpx
from sqlalchemy import func
from sqlmodel import select

from digests import outbox, queue, renderings, web
from digests.channels import splice
from digests.db import session_scope
from digests.deliver import deliver_once_async
from digests.models import EmailRendering, Outbox
from tests.fakes.smtp import SMTPSink
from tests.test_queue import BE, NOW, add_article, add_subscriber
from tests.test_web import running

BASE = "https://news.example.org"


def _readers(engine, n: int) -> list[int]:
    return [
        add_subscriber(engine, [BE], email=f"r{i}@example.org", email_status="confirmed") for i in range(n)
    ]


def _links(text: str) -> dict[str, str]:
    return {
        word.split("?")[0].removeprefix(BASE + "/"): word
        for word in text.split()
        if word.startswith(BASE + "/")
    }


async def test_every_reader_gets_their_own_links_and_header_from_one_stored_body(
    engine, settings, monkeypatch
):
    cfg = settings.model_copy(update={"public_base_url": BASE})
    spliced = []
    render = splice.render
    monkeypatch.setattr(splice, "render", lambda *a, **k: spliced.append(a[0].subtype) or render(*a, **k))
    add_article(engine, "Belgian shoot in Ghent", countries=["Belgium"])
    ids = _readers(engine, 4)
    queue.queue_due(engine, cfg, now=NOW, force=True)
    with session_scope(engine) as s:
        assert s.exec(select(func.count()).select_from(EmailRendering)).one() == 1
        assert set(s.exec(select(Outbox.body).where(Outbox.channel == "email"))) == {""}
    with SMTPSink() as sink:
        report = await deliver_once_async(engine, cfg.model_copy(update=sink.settings()), worker_id="w")
    assert report.sent == 4
    seen_tokens = set()
    for received in sink.messages:
        message = email.message_from_bytes(received.raw, policy=email.policy.default)
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        assert "Belgian shoot in Ghent" in text and "Belgian shoot in Ghent" in html
        assert "CLAPPER-PERSONAL" not in text + html
        mine = _links(text)
        assert set(mine) == {"unsubscribe", "preferences", "view"}
        for url in mine.values():
            assert url.replace("&", "&amp;") in html
        # The one-click header is the body's own unsubscribe link, made for this address.
        header = str(message["List-Unsubscribe"])
        assert header.startswith(f"<{mine['unsubscribe']}>")
        seen_tokens.add(mine["unsubscribe"])
    assert len(seen_tokens) == 4  # four readers, four different links
    # Each reader's text and HTML parts came from the one prepared rendering, links spliced in.
    assert sorted(spliced) == ["html"] * 4 + ["plain"] * 4
    with session_scope(engine) as s:
        # Filling the bodies in for sending wrote nothing back.
        assert set(s.exec(select(Outbox.body).where(Outbox.channel == "email"))) == {""}
        assert set(s.exec(select(Outbox.state).where(Outbox.subscriber_id.in_(ids)))) == {"sent"}


async def test_the_view_page_of_a_shared_digest_shows_it_with_the_readers_links(engine, settings):
    cfg = settings.model_copy(update={"public_base_url": BASE})
    add_article(engine, "Walloon fund opens", countries=["Belgium"])
    first, second = _readers(engine, 2)
    queue.queue_due(engine, cfg, now=NOW, force=True)
    with session_scope(engine) as s:
        rows = list(s.exec(select(Outbox).where(Outbox.channel == "email").order_by(Outbox.id)))
        renderings.resolve(s, rows)
    views = [_links(r.body_text)["view"] for r in rows]
    unsubscribes = [_links(r.body_text)["unsubscribe"] for r in rows]
    app = web.create_app(cfg, engine)
    async with running(app) as base, httpx.AsyncClient(base_url=base) as http:
        page = await http.get(views[0].removeprefix(BASE))
        assert page.status_code == 200 and "Walloon fund opens" in page.text
        assert unsubscribes[0].replace("&", "&amp;") in page.text
        assert unsubscribes[1].replace("&", "&amp;") not in page.text
    with session_scope(engine) as s:
        assert set(s.exec(select(Outbox.body).where(Outbox.channel == "email"))) == {""}


def test_a_row_whose_rendering_is_gone_is_settled_dead_and_the_others_still_go(engine, settings):
    cfg = settings.model_copy(update={"public_base_url": BASE})
    add_article(engine, "Flemish series shoot", countries=["Belgium"])
    ids = _readers(engine, 3)
    queue.queue_due(engine, cfg, now=NOW, force=True)
    with session_scope(engine) as s:
        orphan = s.exec(select(Outbox).where(Outbox.subscriber_id == ids[1])).one()
        # A database edited by hand: one row names a rendering nobody has.
        orphan.rendering_id = 999_999
        s.add(orphan)
    claimed = outbox.claim(engine, worker_id="w", limit=10, channels=("email",))
    assert sorted(r.subscriber_id for r in claimed) == [ids[0], ids[2]]
    assert all("Flemish series shoot" in r.body for r in claimed)
    with session_scope(engine) as s:
        dead = s.exec(select(Outbox).where(Outbox.subscriber_id == ids[1])).one()
    assert dead.state == "dead" and "rendering is gone" in dead.last_error
