"""Public sign-up, undo of an unsubscribe, a new link for an expired confirmation, and the
schedule on the preferences page: over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlmodel import select

from digests import catalog, emails, readers, tokens, web
from digests.db import session_scope
from digests.models import Outbox, Subscriber, Subscription
from digests.readers import RateLimiter
from tests.test_web import _path, _reader, running

FORM = {"email": "Dana@Example.org", "country": ["belgium", "", "France"], "section": ["Production"]}


@pytest.fixture
def web_settings(settings):
    return settings.model_copy(
        update={"public_base_url": "https://news.example.org", "signup_per_ip_per_hour": 3}
    )


def _mail_to(engine, address: str) -> list[Outbox]:
    with session_scope(engine) as s:
        return list(s.exec(select(Outbox).where(Outbox.recipient == address)).all())


async def test_sign_up_is_double_opt_in_and_says_the_same_for_every_address(engine, web_settings):
    carl = _reader(engine, web_settings, "carl@example.org")  # confirmed already
    async with (
        running(web.create_app(web_settings, engine)) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        form = await http.get("/subscribe")
        assert form.status_code == 200
        # A searchable country list, not 250 checkboxes: only the sections are boxes.
        assert form.text.count('type="checkbox"') == len(catalog.sections())
        assert '<datalist id="all-countries">' in form.text and form.text.count("<option value=") > 240
        assert 'name="website"' in form.text  # the honeypot
        assert (await http.head("/subscribe")).status_code == 200

        sent = await http.post("/subscribe", data={**FORM, "frequency": "daily"})
        assert sent.status_code == 200 and "Check your inbox" in sent.text
        with session_scope(engine) as s:
            dana = s.exec(select(Subscriber).where(Subscriber.email == "dana@example.org")).one()
            assert (dana.email_status, dana.email_frequency) == ("pending", "daily")
            terms = sorted(s.exec(select(Subscription.value).where(Subscription.subscriber_id == dana.id)))
            assert terms == ["Belgium", "France", "Production"]
        mails = _mail_to(engine, "dana@example.org")
        assert len(mails) == 1 and "/confirm?token=" in mails[0].body_text

        # An address already confirmed gets the very same answer and no email.
        again = await http.post("/subscribe", data={**FORM, "email": "carl@example.org"})
        assert again.text == sent.text
        assert _mail_to(engine, "carl@example.org") == []
    with session_scope(engine) as s:
        assert s.get(Subscriber, carl).email_status == "confirmed"


async def test_honeypot_cross_site_and_empty_choices_change_nothing(engine, web_settings):
    async with (
        running(web.create_app(web_settings, engine)) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        trap = await http.post("/subscribe", data={**FORM, "website": "http://spam.example"})
        assert trap.status_code == 200 and "Check your inbox" in trap.text
        forged = await http.post("/subscribe", data=FORM, headers={"Origin": "https://evil.example"})
        assert forged.status_code == 403
        site = await http.post("/subscribe", data=FORM, headers={"Sec-Fetch-Site": "cross-site"})
        assert site.status_code == 403
        empty = await http.post("/subscribe", data={"email": "dana@example.org", "country": ["", ""]})
        assert empty.status_code == 422 and "Choose at least one country, section or name" in empty.text
        bad = await http.post("/subscribe", data={**FORM, "email": "not an address"})
        assert bad.status_code == 422 and "does not look right" in bad.text
        # The form keeps what was typed (escaped).
        assert 'value="belgium"' in bad.text
    with session_scope(engine) as s:
        assert s.exec(select(Subscriber)).all() == []
        assert s.exec(select(Outbox)).all() == []


async def test_sign_up_is_rate_limited_per_ip_and_per_address(engine, web_settings):
    async with (
        running(web.create_app(web_settings, engine)) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        codes = [
            (await http.post("/subscribe", data={**FORM, "email": f"r{i}@example.org"})).status_code
            for i in range(4)
        ]
        assert codes == [200, 200, 200, 429]
    assert len(_mail_to(engine, "r3@example.org")) == 0
    settings = web_settings.model_copy(
        update={"signup_per_ip_per_hour": 100, "signup_per_address_per_day": 2}
    )
    async with running(web.create_app(settings, engine)) as base, httpx.AsyncClient(base_url=base) as http:
        codes = [(await http.post("/subscribe", data=FORM)).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
    # Two sign-ups of a pending address: two confirmation emails, the third attempt none.
    assert len(_mail_to(engine, "dana@example.org")) == 2


def test_rate_limiter_window_slides():
    now = [0.0]
    limiter = RateLimiter(2, 60, clock=lambda: now[0])
    assert [limiter.allow("a"), limiter.allow("a"), limiter.allow("a"), limiter.allow("b")] == [
        True,
        True,
        False,
        True,
    ]
    now[0] = 60.5
    assert limiter.allow("a") is True


async def test_the_unsubscribed_page_offers_undo(engine, web_settings):
    ann = _reader(engine, web_settings)
    async with (
        running(web.create_app(web_settings, engine)) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        done = await http.post(_path(web_settings, ann, "unsubscribe"))
        assert "You're unsubscribed" in done.text and "Undo" in done.text
        undo = re.search(r'<form method="post" action="([^"]+)">', done.text).group(1).replace("&amp;", "&")
        assert undo.startswith("/unsubscribe/undo?token=")
        assert (await http.get(undo)).status_code == 405  # a GET (a link scanner) changes nothing
        with session_scope(engine) as s:
            assert s.get(Subscriber, ann).email_status == "unsubscribed"
        back = await http.post(undo)
        assert back.status_code == 200 and "Welcome back" in back.text
    with session_scope(engine) as s:
        assert s.get(Subscriber, ann).email_status == "confirmed"


async def test_an_expired_confirmation_link_offers_a_new_one(engine, web_settings, monkeypatch):
    pending = _reader(engine, web_settings, "eve@example.org", confirmed=False)
    path = _path(web_settings, pending, "confirm", "eve@example.org")
    monkeypatch.setitem(tokens.MAX_AGE, "confirm", -1)  # every confirmation token is now too old
    async with (
        running(web.create_app(web_settings, engine)) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        old = await http.get(path)
        assert old.status_code == 410 and "has expired" in old.text
        assert (await http.post(path)).status_code == 410  # and it confirms nothing
        renew = re.search(r'<form method="post" action="([^"]+)">', old.text).group(1).replace("&amp;", "&")
        assert len(_mail_to(engine, "eve@example.org")) == 1
        assert (await http.get(renew)).status_code == 200  # shows the button, sends nothing
        assert len(_mail_to(engine, "eve@example.org")) == 1
        fresh = await http.post(renew)
        assert fresh.status_code == 200 and "A new link is on its way" in fresh.text
        forged = await http.post(renew.replace("token=", "token=x"))
        assert forged.status_code == 400
    assert len(_mail_to(engine, "eve@example.org")) == 2
    with session_scope(engine) as s:
        assert s.get(Subscriber, pending).email_status == "pending"


async def test_preferences_set_time_weekday_timezone_and_pause_and_refuse_nothing(engine, web_settings):
    ann = _reader(engine, web_settings)
    path = _path(web_settings, ann, "preferences")
    schedule = {"delivery_time": "07:30", "weekly_day": "4", "timezone": "asia/tokyo", "paused": "on"}
    async with (
        running(web.create_app(web_settings, engine)) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        page = await http.get(path)
        assert 'name="delivery_time" value="08:00"' in page.text and "/feed?token=" in page.text
        saved = await http.post(
            path, data={"country": ["Belgium", "", "Italy"], "section": [], "frequency": "weekly", **schedule}
        )
        assert saved.status_code == 200 and "Saved." in saved.text
        with session_scope(engine) as s:
            row = s.get(Subscriber, ann)
            assert (row.delivery_time, row.weekly_day, row.timezone, row.paused) == (
                "07:30",
                4,
                "Asia/Tokyo",
                True,
            )
        nothing = await http.post(path, data={"frequency": "weekly", **schedule, "paused": ""})
        assert nothing.status_code == 422 and "choose at least one country or section" in nothing.text
        bad = await http.post(
            path, data={"country": ["Belgium"], "frequency": "weekly", **schedule, "timezone": "Mars/Olympus"}
        )
        assert bad.status_code == 422 and "check the timezone" in bad.text
    with session_scope(engine) as s:
        row = s.get(Subscriber, ann)
        assert row.paused is True and row.timezone == "Asia/Tokyo"
        terms = sorted(s.exec(select(Subscription.value).where(Subscription.subscriber_id == ann)))
        assert terms == ["Belgium", "Italy"]


def test_sign_up_never_touches_an_address_that_belongs_to_a_telegram_chat(engine, web_settings):
    with session_scope(engine) as s:
        chat = Subscriber(telegram_chat_id=42, email="tg@example.org", email_status="pending")
        s.add(chat)
        s.flush()
        s.add(Subscription(subscriber_id=chat.id, kind="country", value="Italy"))
        chat_id = chat.id
    with session_scope(engine) as s:
        reader = emails.new_reader("tg@example.org", ["Belgium"], [], "daily")
        assert readers.sign_up(s, web_settings, reader) == "quiet"
    with session_scope(engine) as s:
        terms = list(s.exec(select(Subscription.value).where(Subscription.subscriber_id == chat_id)))
        assert terms == ["Italy"] and s.get(Subscriber, chat_id).email_frequency == "weekly"
    assert _mail_to(engine, "tg@example.org") == []


async def test_sign_up_takes_names_and_phrases_and_may_follow_only_those(engine, web_settings):
    from digests.models import Follow

    async with (
        running(web.create_app(web_settings, engine)) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        form = await http.get("/subscribe")
        assert '<textarea id="phrases" name="phrases"' in form.text
        assert "ignoring case and accents" in form.text  # the rule, in one sentence
        sent = await http.post(
            "/subscribe", data={"email": "eve@example.org", "phrases": "Lukas Dhont\nBe For Films\n"}
        )
        assert sent.status_code == 200 and "Check your inbox" in sent.text
        bad = await http.post("/subscribe", data={"email": "fay@example.org", "phrases": "x"})
        assert bad.status_code == 422 and "2 to 60 characters" in bad.text
        assert "x</textarea>" in bad.text  # what was typed is kept
    with session_scope(engine) as s:
        eve = s.exec(select(Subscriber).where(Subscriber.email == "eve@example.org")).one()
        phrases = sorted(s.exec(select(Follow.phrase).where(Follow.subscriber_id == eve.id)))
        assert phrases == ["Be For Films", "Lukas Dhont"]
        assert s.exec(select(Subscriber).where(Subscriber.email == "fay@example.org")).first() is None
    assert len(_mail_to(engine, "eve@example.org")) == 1
