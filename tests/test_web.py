"""The web app over real HTTP (uvicorn on a free port): confirm, one-click unsubscribe, preferences."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from sqlmodel import select

from digests import catalog, emails, tokens, web
from digests.db import session_scope
from digests.deliver import deliver_once_async
from digests.models import Outbox, Subscriber, Subscription
from tests.fakes.smtp import SMTPSink, free_port


@contextlib.asynccontextmanager
async def running(app) -> AsyncIterator[str]:
    """The app served by uvicorn on 127.0.0.1 in this event loop; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.02)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
def web_settings(settings):
    return settings.model_copy(update={"public_base_url": "https://news.example.org"})


def _reader(engine, settings, address="ann@example.org", *, confirmed=True) -> int:
    with session_scope(engine) as s:
        sub = emails.add_reader(
            s,
            settings,
            emails.new_reader(address, ["Belgium"], ["Production"], "weekly"),
            confirmed=confirmed,
        )
        return sub.id


def _path(settings, subscriber_id, purpose, address="ann@example.org"):
    reader = tokens.Recipient(subscriber_id, address)
    return "/" + purpose + "?token=" + tokens.make_token(settings, reader, purpose)


def _queue_mail(engine, subscriber_id, address, key):
    with session_scope(engine) as s:
        s.add(
            Outbox(
                subscriber_id=subscriber_id,
                channel="email",
                digest_key=key,
                recipient=address,
                subject=f"Digest {key}",
                body=f"<p>{key}</p>",
                body_text=key,
            )
        )


async def test_one_click_unsubscribe_stops_all_mail(engine, web_settings):
    ann = _reader(engine, web_settings)
    bob = _reader(engine, web_settings, "bob@example.org")
    _queue_mail(engine, ann, "ann@example.org", "digest:1")
    async with SMTPSink() as sink, running(web.create_app(web_settings, engine)) as base:
        cfg = web_settings.model_copy(update=sink.settings())
        await deliver_once_async(engine, cfg, worker_id="t")
        assert len(sink.to("ann@example.org")) == 1
        _queue_mail(engine, ann, "ann@example.org", "digest:2")  # queued, not sent yet
        async with httpx.AsyncClient(base_url=base, follow_redirects=False) as http:
            page = await http.get(_path(web_settings, ann, "unsubscribe"))
            assert page.status_code == 200 and '<form method="post"' in page.text
            assert page.headers["referrer-policy"] == "no-referrer"
            with session_scope(engine) as s:  # a GET (a link scanner) changes nothing
                assert s.get(Subscriber, ann).email_status == "confirmed"
            # What a mail client sends for RFC 8058: a form body, no cookies, no login.
            click = await http.post(
                _path(web_settings, ann, "unsubscribe"),
                content=b"List-Unsubscribe=One-Click",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert click.status_code == 200 and "unsubscribed" in click.text
            again = await http.post(
                _path(web_settings, ann, "unsubscribe"), data={"List-Unsubscribe": "One-Click"}
            )
            assert again.status_code == 200  # idempotent
        with session_scope(engine) as s:
            assert s.get(Subscriber, ann).email_status == "unsubscribed"
            assert s.get(Subscriber, bob).email_status == "confirmed"
            states = {
                r.digest_key: r.state for r in s.exec(select(Outbox).where(Outbox.subscriber_id == ann))
            }
        assert states == {"digest:1": "sent", "digest:2": "cancelled"}
        _queue_mail(engine, bob, "bob@example.org", "digest:3")
        await deliver_once_async(engine, cfg, worker_id="t")
        assert len(sink.to("ann@example.org")) == 1  # nothing more reached ann
        assert len(sink.to("bob@example.org")) == 1


async def test_tampered_or_misused_tokens_get_400_and_change_nothing(engine, web_settings):
    ann = _reader(engine, web_settings)
    ann_reader = tokens.Recipient(ann, "ann@example.org")
    good = tokens.make_token(web_settings, ann_reader, "unsubscribe")
    other = tokens.Recipient(_reader(engine, web_settings, "bob@example.org"), "bob@example.org")
    forged = [
        good[:-2] + ("AA" if not good.endswith("AA") else "BB"),  # altered signature
        tokens.make_token(web_settings, ann_reader, "preferences"),  # another purpose
        tokens.make_token(web_settings.model_copy(update={"secret_key": "k" * 32}), other, "unsubscribe"),
        good.replace(good.split(".")[0], tokens.make_token(web_settings, other, "unsubscribe").split(".")[0]),
        "",
    ]
    async with (
        running(web.create_app(web_settings, engine)) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        for token in forged:
            for method in ("GET", "POST"):
                r = await http.request(method, "/unsubscribe", params={"token": token})
                assert r.status_code == 400, (token, method)
                assert "We could not use this link" in r.text and "Nothing was changed" in r.text
        r = await http.post("/preferences", params={"token": good}, data={"frequency": "daily"})
        assert r.status_code == 400
        r = await http.get("/healthz")
        assert r.status_code == 200 and r.text == "ok"
        assert (await http.get("/nope")).status_code == 404
    with session_scope(engine) as s:
        assert {x.email_status for x in s.exec(select(Subscriber))} == {"confirmed"}
        assert s.get(Subscriber, ann).email_frequency == "weekly"


async def test_confirm_link_needs_the_button_and_respects_a_later_unsubscribe(engine, web_settings):
    pending = _reader(engine, web_settings, "carl@example.org", confirmed=False)
    with session_scope(engine) as s:
        mail = s.exec(select(Outbox).where(Outbox.subscriber_id == pending)).one()
    link = next(w for w in mail.body_text.split() if "/confirm?token=" in w)
    path = link.removeprefix("https://news.example.org")
    async with (
        running(web.create_app(web_settings, engine)) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        r = await http.get(path)
        assert r.status_code == 200 and "Yes, confirm my address" in r.text
        with session_scope(engine) as s:
            assert s.get(Subscriber, pending).email_status == "pending"
        r = await http.post(path)
        assert r.status_code == 200 and "carl@example.org is confirmed" in r.text
        with session_scope(engine) as s:
            assert s.get(Subscriber, pending).email_status == "confirmed"
        await http.post(_path(web_settings, pending, "unsubscribe", "carl@example.org"))
        r = await http.post(path)  # the old confirmation link cannot undo the unsubscribe
        assert r.status_code == 409
    with session_scope(engine) as s:
        assert s.get(Subscriber, pending).email_status == "unsubscribed"


async def test_preferences_change_countries_sections_and_frequency(engine, web_settings):
    ann = _reader(engine, web_settings)
    path = _path(web_settings, ann, "preferences")
    async with (
        running(web.create_app(web_settings, engine)) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        r = await http.get(path)
        assert r.status_code == 200
        assert 'value="Belgium" checked' in r.text and 'value="Production" checked' in r.text
        assert 'value="weekly" selected' in r.text
        r = await http.post(
            path,
            data={"country": ["France", "Czech Republic"], "section": ["Funding"], "frequency": "daily"},
        )
        assert r.status_code == 200 and "Saved." in r.text
        assert 'value="France" checked' in r.text and 'value="Belgium" checked' not in r.text
        with session_scope(engine) as s:
            terms = sorted(s.exec(select(Subscription.value).where(Subscription.subscriber_id == ann)).all())
            assert terms == ["Czech Republic", "France", "Funding"]
            assert s.get(Subscriber, ann).email_frequency == "daily"
        # Countries are typed now: an unknown one is explained and changes nothing.
        r = await http.post(path, data={"country": ["Atlantis"], "frequency": "daily"})
        assert r.status_code == 422 and "one of the countries is not one we know" in r.text
        # A hand-made form with something we do not offer changes nothing.
        r = await http.post(path, data={"frequency": "hourly"})
        assert r.status_code == 400
        r = await http.post(path, data={"country": list(catalog.countries())[:120], "frequency": "weekly"})
        assert r.status_code == 422 and "Not saved: you can follow at most 100" in r.text
    with session_scope(engine) as s:
        terms = sorted(s.exec(select(Subscription.value).where(Subscription.subscriber_id == ann)).all())
        assert terms == ["Czech Republic", "France", "Funding"]
        assert s.get(Subscriber, ann).email_frequency == "daily"


async def test_unsubscribe_for_a_deleted_reader_is_still_a_200(engine, web_settings):
    ann = _reader(engine, web_settings)
    with session_scope(engine) as s:
        emails.remove_reader(s, "ann@example.org")
    async with (
        running(web.create_app(web_settings, engine)) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        r = await http.post(_path(web_settings, ann, "unsubscribe"), content=b"List-Unsubscribe=One-Click")
        assert r.status_code == 200 and "no longer on our list" in r.text
