"""Attacks through the bot's /email and /verify (real PTB client, fake Bot API, real SMTP):
mailing codes to someone's inbox in a loop, renewing /verify guesses, and addresses the SMTP
path cannot carry (also through the CSV import and the operator's add).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from digests import email_limits, emails, importer, preview
from digests.db import session_scope
from digests.deliver import deliver_once_async
from digests.models import EmailCodeLog, Outbox, Subscriber, utcnow
from tests import bot_harness
from tests.bot_harness import Talk
from tests.fakes.smtp import SMTPSink

api, app, bot_settings = bot_harness.api, bot_harness.app, bot_harness.bot_settings


@pytest.fixture
async def world(api, app, bot_settings):
    """The bot running (the harness's), plus a real SMTP server the delivery worker sends to."""
    async with SMTPSink() as sink:
        yield api, sink, bot_settings.model_copy(update=sink.settings())


async def say(api, chat_id: int, text: str) -> str:
    return (await Talk(api, chat_id).say(text)).plain


def minutes_pass(engine, minutes: float) -> None:
    """Move every logged code email and wrong code back in time, as if `minutes` had passed."""
    with session_scope(engine) as s:
        for event in s.exec(select(EmailCodeLog)).all():
            event.at -= timedelta(minutes=minutes)
            s.add(event)


def codes_queued_to(engine, address: str) -> int:
    with session_scope(engine) as s:
        rows = s.exec(select(Outbox).where(Outbox.recipient == address)).all()
    return sum(r.digest_key.startswith("confirm:") for r in rows)


# ---- 4. the code-email limit belongs to the address -------------------------------------------


async def test_email_off_and_asking_again_do_not_reset_the_limit(engine, world):
    api, sink, cfg = world
    victim = "victim@example.org"
    assert "I sent a 6-digit code" in await say(api, 701, f"/email {victim}")
    await deliver_once_async(engine, cfg, worker_id="t")  # before /email off withdraws it
    assert "are off" in await say(api, 701, "/email off")
    assert "Please wait" in await say(api, 701, f"/email {victim}")
    assert codes_queued_to(engine, victim) == 1
    # A minute later one more code may go, up to the daily cap, whatever the chat does between.
    for _ in range(email_limits.PER_ADDRESS_PER_DAY - 1):
        minutes_pass(engine, 2)
        await say(api, 701, "/email off")
        assert "I sent a 6-digit code" in await say(api, 701, f"/email {victim}")
        await deliver_once_async(engine, cfg, worker_id="t")
    minutes_pass(engine, 2)
    await say(api, 701, "/email off")
    assert "enough codes for today" in await say(api, 701, f"/email {victim}")
    await deliver_once_async(engine, cfg, worker_id="t")
    assert len(sink.to(victim)) == email_limits.PER_ADDRESS_PER_DAY
    # The next day the address may be asked for again.
    minutes_pass(engine, 24 * 60)
    assert "I sent a 6-digit code" in await say(api, 701, f"/email {victim}")


async def test_another_chat_or_stop_does_not_restart_the_clock_of_an_address(engine, world):
    api, sink, cfg = world
    assert "I sent a 6-digit code" in await say(api, 711, "/email shared@example.org")
    await deliver_once_async(engine, cfg, worker_id="t")
    assert "are off" in await say(api, 711, "/email off")
    assert "Please wait" in await say(api, 712, "/email shared@example.org")
    with session_scope(engine) as s:  # what /stop does: the chat's row is gone altogether
        s.delete(emails.by_chat(s, 711))
    assert "Please wait" in await say(api, 711, "/email shared@example.org")
    await deliver_once_async(engine, cfg, worker_id="t")
    assert len(sink.to("shared@example.org")) == 1


async def test_one_chat_cannot_mail_many_inboxes(engine, world):
    api, _sink, _cfg = world
    for n in range(email_limits.PER_CHAT_PER_DAY):
        assert "I sent a 6-digit code" in await say(api, 721, f"/email inbox{n}@example.org")
        minutes_pass(engine, 2)
    assert "enough codes for today" in await say(api, 721, "/email one.more@example.org")
    assert codes_queued_to(engine, "one.more@example.org") == 0


async def test_verify_guesses_are_not_renewed_by_asking_again(engine, world):
    api, _sink, _cfg = world
    await say(api, 731, "/email guess@example.org")
    answers = [await say(api, 731, "/verify 000000") for _ in range(emails.MAX_ATTEMPTS)]
    # (one in a million: the code really is 000000, and the first guess confirms)
    if "Confirmed" in answers[0]:
        pytest.skip("the random code was the guessed one")
    assert "Too many wrong codes" in answers[-1]
    minutes_pass(engine, 2)
    assert "are off" in await say(api, 731, "/email off")
    assert "Too many wrong codes were tried" in await say(api, 731, "/email guess@example.org")
    assert "Too many wrong codes were tried" in await say(api, 732, "/email guess@example.org")
    assert codes_queued_to(engine, "guess@example.org") == 1
    with session_scope(engine) as s:
        assert emails.by_chat(s, 732) is None or emails.by_chat(s, 732).email is None


# ---- 6. only addresses the SMTP path can carry ------------------------------------------------


async def test_non_ascii_addresses_are_refused_and_idna_domains_are_carried(engine, world):
    api, sink, cfg = world
    answer = await say(api, 741, "/email ünï@exämple.org")
    assert "plain letters, digits and punctuation (ASCII)" in answer
    with session_scope(engine) as s:
        assert s.exec(select(Subscriber).where(Subscriber.email.is_not(None))).all() == []
        assert s.exec(select(Outbox)).all() == []
    answer = await say(api, 741, "/email Ann@Exämple.org")
    assert "I sent a 6-digit code to ann@xn--exmple-cua.org" in answer
    await deliver_once_async(engine, cfg, worker_id="t")
    (mail,) = sink.to("ann@xn--exmple-cua.org")
    assert mail.rcpt_tos == ["ann@xn--exmple-cua.org"]
    with session_scope(engine) as s:
        assert {r.state for r in s.exec(select(Outbox)).all()} == {"sent"}


def test_smtputf8_setting_lets_non_ascii_local_parts_in(engine, settings):
    with pytest.raises(emails.EmailError) as refused, session_scope(engine) as s:
        emails.request(s, settings, chat_id=751, address="ünï@exämple.org", now=utcnow())
    assert refused.value.reason == "not_ascii"
    utf8 = settings.model_copy(update={"smtp_utf8": True})
    with session_scope(engine) as s:
        sent = emails.request(s, utf8, chat_id=751, address="Ünï@exämple.org", now=utcnow())
    assert sent.address == "ünï@exämple.org"


def test_import_and_operator_add_accept_only_what_smtp_carries(engine, settings):
    csv_text = "email,countries\nünï@exämple.org,Belgium\nann@exämple.org,Belgium\nbob@example.org,\n"
    with session_scope(engine) as s:
        report = importer.import_csv(s, settings, csv_text, confirmed=True)
    assert [(b.line, b.email) for b in report.bad] == [(2, "ünï@exämple.org")]
    assert "ASCII" in report.bad[0].reason
    assert [address for _line, address in report.imported] == ["ann@xn--exmple-cua.org", "bob@example.org"]
    with pytest.raises(emails.EmailError) as refused:
        emails.new_reader("ünï@example.org", [], [], "weekly")
    assert refused.value.reason == "not_ascii"
    assert emails.new_reader("ünï@example.org", [], [], "weekly", smtputf8=True).email == "ünï@example.org"


# Cases from email-validator's own suite (JoshData/python-email-validator, tests/test_syntax.py):
# an internationalised domain alone needs no SMTPUTF8, a non-ASCII local part does.
@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("jeff@臺網中心.tw", "jeff@xn--fiqq24b10vi0d.tw"),
        ("伊昭傑@郵件.商務", None),
        ("ñoñó@example.tld", None),
        ("ιωάννης@εεττ.gr", None),
        ("чебурашкаящик-с-апельсинами.рф@example.tld", None),
    ],
)
def test_public_idn_cases(given, stored):
    if stored is None:
        with pytest.raises(emails.EmailError) as refused:
            emails.normalize_address(given)
        assert refused.value.reason == "not_ascii"
        assert emails.normalize_address(given, smtputf8=True)  # valid, just not carried without SMTPUTF8
    else:
        assert emails.normalize_address(given) == stored


def test_preview_finds_a_reader_by_the_address_as_typed(engine, settings):
    with session_scope(engine) as s:
        emails.add_reader(s, settings, emails.new_reader("ann@exämple.org", ["Belgium"], [], "weekly"),
                          confirmed=True)
    found, _rows = preview.preview(engine, settings, now=utcnow(), email=" Ann@Exämple.org ")
    assert found is not None and found.email == "ann@xn--exmple-cua.org"
