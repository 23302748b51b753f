"""/email, /verify, /email off through the real PTB client, the fake Bot API and real SMTP."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlmodel import select

from bot.app import build_application, polling
from digests import emails
from digests.db import session_scope
from digests.deliver import deliver_once_async
from digests.models import EmailCodeLog, utcnow
from tests.fakes.botapi import FakeBotAPI
from tests.fakes.smtp import SMTPSink


@pytest.fixture
async def world(engine, settings):
    async with FakeBotAPI(per_chat_interval=None) as api, SMTPSink() as sink:
        cfg = settings.model_copy(
            update={
                **sink.settings(),
                "telegram_bot_token": api.token,
                "telegram_api_base_url": api.base_url,
                "telegram_api_file_url": api.base_file_url,
            }
        )
        async with polling(build_application(cfg, engine), long_poll=1) as app:
            yield api, sink, cfg, app


async def say(api, chat_id: int, text: str, **kwargs) -> str:
    """Send `text` as the user and return the bot's answer (plain text)."""
    before = len(api.messages_for(chat_id))
    api.push_message(chat_id, text, **kwargs)
    found = await api.wait_messages(chat_id, before + 1, within=10)
    return found[before].plain


async def code_from_mail(engine, cfg, sink, address: str) -> str:
    await deliver_once_async(engine, cfg, worker_id="t")
    mail = sink.to(address)[-1]
    return re.search(r"/verify (\d{6})", mail.message.get_body(("plain",)).get_content()).group(1)


async def test_double_opt_in_from_the_bot(engine, world):
    api, sink, cfg, _app = world
    answer = await say(api, 501, "/email Reader@Example.org")
    assert "I sent a 6-digit code to reader@example.org" in answer
    code = await code_from_mail(engine, cfg, sink, "reader@example.org")
    with session_scope(engine) as s:
        assert emails.by_chat(s, 501).email_status == "pending"
    wrong = "000000" if code != "000000" else "111111"
    assert "4 attempts left" in await say(api, 501, f"/verify {wrong}")
    assert "Confirmed: email digests go to reader@example.org weekly" in await say(
        api, 501, f"/verify {code}"
    )
    with session_scope(engine) as s:
        assert emails.by_chat(s, 501).email_status == "confirmed"
    assert "go to reader@example.org weekly" in await say(api, 501, "/email")
    assert "now come daily" in await say(api, 501, "/email Daily")
    with session_scope(engine) as s:
        assert emails.by_chat(s, 501).email_frequency == "daily"
    assert "go to reader@example.org daily" in await say(api, 501, "/email")
    assert "already confirmed" in await say(api, 501, "/email reader@example.org")
    assert "are off" in await say(api, 501, "/email off")
    with session_scope(engine) as s:
        sub = emails.by_chat(s, 501)
        assert sub.email is None and sub.email_status == "none"
    assert "No email address" in await say(api, 501, "/email off")
    assert "No email address" in await say(api, 501, "/email weekly")


async def test_wrong_codes_are_limited_and_codes_expire(engine, world):
    api, sink, cfg, _app = world
    await say(api, 502, "/email limit@example.org")
    code = await code_from_mail(engine, cfg, sink, "limit@example.org")
    wrong = "000000" if code != "000000" else "111111"
    answers = [await say(api, 502, f"/verify {wrong}") for _ in range(emails.MAX_ATTEMPTS)]
    assert "1 attempt left" in answers[-2] and "Too many wrong codes" in answers[-1]
    assert "Too many wrong codes" in await say(api, 502, f"/verify {code}")  # even the right one now
    with session_scope(engine) as s:
        assert emails.by_chat(s, 502).email_status == "pending"

    await say(api, 503, "/email late@example.org")
    code = await code_from_mail(engine, cfg, sink, "late@example.org")
    with session_scope(engine) as s:
        sub = emails.by_chat(s, 503)
        sub.email_code_expires_at = utcnow() - timedelta(seconds=1)
        s.add(sub)
    assert "expired" in await say(api, 503, f"/verify {code}")
    # A fresh one, once the minute between two codes to one address is over.
    with session_scope(engine) as s:
        for event in s.exec(select(EmailCodeLog)).all():
            event.at -= timedelta(minutes=2)
            s.add(event)
    assert "I sent a 6-digit code" in await say(api, 503, "/email late@example.org")
    fresh = await code_from_mail(engine, cfg, sink, "late@example.org")
    assert "Confirmed" in await say(api, 503, f"/verify {fresh}")
    assert len(sink.to("late@example.org")) == 2


async def test_bad_input_gets_a_clear_answer(engine, world):
    api, _sink, _cfg, _app = world
    assert "does not look like an email address" in await say(api, 504, "/email not-an-address")
    assert "/verify 123456" in await say(api, 504, "/verify")
    assert "no code to check" in await say(api, 504, "/verify 123456")
    assert "private chat" in await say(api, -100200, "/email team@example.org", user_id=7, chat_type="group")
    await say(api, 505, "/email taken@example.org")
    assert "already receives Clapper" in await say(api, 506, "/email TAKEN@example.org")
    assert "Please wait" in await say(api, 505, "/email taken@example.org")  # no flood of codes
    assert "does not look like" in await say(api, 504, "/email " + "x" * 400 + "@example.org")
