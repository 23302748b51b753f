"""Email delivery over real SMTP to aiosmtpd: headers, connection reuse, 4xx/5xx, drops, a dead server."""

from __future__ import annotations

import asyncio
import logging

import pytest

from digests.channels.email import build_message
from digests.deliver import deliver_once_async
from tests.deliver_support import add_subscriber, queue_email, row, subscriber
from tests.fakes.smtp import SMTPSink, dead_port


@pytest.fixture
def mail_settings(settings):
    return settings.model_copy(
        update={
            "public_base_url": "https://clapper.example.org",
            "mail_from": "Clapper <news@clapper.example.org>",
            "smtp_connections": 1,
            "delivery_retry_base": 0.2,
        }
    )


def _readers(engine, n: int, *, key: str = "digest:1") -> dict[str, tuple[int, int]]:
    found = {}
    for i in range(n):
        address = f"reader{i}@example.org"
        sub = add_subscriber(engine, email=address)
        found[address] = (sub, queue_email(engine, sub, address, f"Digest for reader {i}", key=key))
    return found


async def test_each_inbox_gets_its_digest_once_with_list_headers(engine, mail_settings):
    readers = _readers(engine, 4)
    async with SMTPSink() as sink:
        settings = mail_settings.model_copy(update=sink.settings())
        report = await deliver_once_async(engine, settings, worker_id="w")
    assert (report.claimed, report.sent) == (4, 4)
    assert len(sink.messages) == 4
    for i, (address, (_sub_id, row_id)) in enumerate(readers.items()):
        [got] = sink.to(address)
        msg = got.message
        assert got.mail_from == "news@clapper.example.org"
        assert msg["To"] == address and msg["Subject"] == f"Digest for reader {i}"
        assert msg.get_content_type() == "multipart/alternative"
        assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
        assert msg["Date"] and msg["Message-ID"].endswith("@clapper.example.org>")
        assert msg["List-Id"] == "Clapper digests <digests.clapper.example.org>"
        unsubscribe = msg["List-Unsubscribe"]
        assert unsubscribe.startswith("<https://clapper.example.org/unsubscribe?token=")
        assert "<mailto:news@clapper.example.org?subject=unsubscribe" in unsubscribe
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        # On the wire, not just after decoding: mail providers read the header raw, and an
        # RFC 2047-encoded List-Unsubscribe is not recognised.
        assert b"\nList-Unsubscribe: <https://clapper.example.org/unsubscribe?token=" in got.raw
        assert row(engine, row_id).state == "sent"
    # One connection carried the whole batch.
    assert sink.connections == 1


async def test_parallel_connections_are_each_reused(engine, mail_settings):
    _readers(engine, 12)
    async with SMTPSink() as sink:
        settings = mail_settings.model_copy(update=sink.settings() | {"smtp_connections": 3})
        report = await deliver_once_async(engine, settings, worker_id="w")
    assert report.sent == 12 and len(sink.messages) == 12
    assert sink.connections == 3


def test_without_public_url_only_a_mailto_and_no_one_click(settings):
    msg = build_message(
        settings, to="a@example.org", subject="S", html="<p>x</p>", text=None, subscriber_id=7
    )
    assert msg["List-Unsubscribe"].startswith("<mailto:")
    assert msg["List-Unsubscribe-Post"] is None
    assert msg.get_content_type() == "text/html"


async def test_4xx_is_retried_later_and_delivered_once(engine, mail_settings):
    readers = _readers(engine, 2)
    slow = "reader0@example.org"
    async with SMTPSink() as sink:
        sink.reply_rcpt(slow, "451 4.3.0 Mailbox busy, try later", times=1)
        settings = mail_settings.model_copy(update=sink.settings())
        first = await deliver_once_async(engine, settings, worker_id="w")
        kept = row(engine, readers[slow][1])
        assert (first.sent, first.retried) == (1, 1)
        assert (kept.state, kept.attempts) == ("queued", 1) and "451" in kept.last_error
        await asyncio.sleep(0.3)  # the backoff (0.2 s here)
        second = await deliver_once_async(engine, settings, worker_id="w")
    assert second.sent == 1
    assert len(sink.to(slow)) == 1 and len(sink.messages) == 2
    assert row(engine, readers[slow][1]).state == "sent"


async def test_5xx_for_a_recipient_bounces_the_address_and_stops_its_mail(engine, mail_settings):
    readers = _readers(engine, 3)
    bad = "reader1@example.org"
    sub_id, row_id = readers[bad]
    later = queue_email(engine, sub_id, bad, "Next week", key="digest:2")
    async with SMTPSink() as sink:
        sink.reply_rcpt(bad, "550 5.1.1 No such user here")
        settings = mail_settings.model_copy(update=sink.settings())
        report = await deliver_once_async(engine, settings, worker_id="w")
    assert (report.sent, report.bounced) == (2, 1)
    assert sink.to(bad) == []
    assert subscriber(engine, sub_id).email_status == "bounced"
    dead = row(engine, row_id)
    assert dead.state == "dead" and "550" in dead.last_error
    assert row(engine, later).state == "cancelled"


async def test_a_dropped_connection_is_reopened_and_nothing_is_sent_twice(engine, mail_settings):
    readers = _readers(engine, 7)
    async with SMTPSink(drop_after=2) as sink:
        settings = mail_settings.model_copy(update=sink.settings())
        report = await deliver_once_async(engine, settings, worker_id="w")
    assert report.sent == 7
    assert sorted(a for m in sink.messages for a in m.rcpt_tos) == sorted(readers)
    assert sink.drops == 3 and sink.connections == 4


async def test_a_dead_server_loses_nothing(engine, mail_settings, caplog):
    readers = _readers(engine, 3)
    port = dead_port()
    settings = mail_settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port})
    with caplog.at_level(logging.ERROR, logger="digests.channels.email"):
        report = await deliver_once_async(engine, settings, worker_id="w")
    assert (report.sent, report.requeued) == (0, 3)
    assert any(
        "SMTP server unavailable" in r.getMessage() and str(port) in r.getMessage() for r in caplog.records
    )
    for _sub, row_id in readers.values():
        kept = row(engine, row_id)
        assert (kept.state, kept.attempts) == ("queued", 0) and "unavailable" in kept.last_error
    # The server comes back on the same port: everything goes, once.
    await asyncio.sleep(0.3)
    async with SMTPSink(port=port) as sink:
        again = await deliver_once_async(engine, settings, worker_id="w")
    assert again.sent == 3 and len(sink.messages) == 3


async def test_login_when_the_server_requires_it(engine, mail_settings):
    readers = _readers(engine, 2)
    sink = SMTPSink()
    sink.require_auth("clapper", "s3cret")
    with sink:
        wrong = mail_settings.model_copy(
            update=sink.settings() | {"smtp_username": "clapper", "smtp_password": "nope"}
        )
        refused = await deliver_once_async(engine, wrong, worker_id="w")
        assert refused.requeued == 2 and sink.messages == []
        await asyncio.sleep(0.3)
        right = wrong.model_copy(update={"smtp_password": "s3cret"})
        accepted = await deliver_once_async(engine, right, worker_id="w")
    assert accepted.sent == 2
    assert sorted(m.rcpt_tos[0] for m in sink.messages) == sorted(readers)


async def test_refusals_after_data_bounce_only_when_they_blame_the_mailbox(engine, mail_settings):
    readers = _readers(engine, 3)
    spam, gone, fine = "reader0@example.org", "reader1@example.org", "reader2@example.org"
    async with SMTPSink() as sink:
        sink.reply_data(spam, "554 5.7.1 Message rejected as spam")
        sink.reply_data(gone, "550 5.2.1 Mailbox disabled")
        settings = mail_settings.model_copy(update=sink.settings())
        report = await deliver_once_async(engine, settings, worker_id="w")
    assert (report.sent, report.dead, report.bounced) == (1, 1, 1)
    assert [m.rcpt_tos for m in sink.messages] == [[fine]]
    assert subscriber(engine, readers[spam][0]).email_status == "confirmed"
    assert row(engine, readers[spam][1]).state == "dead"
    assert subscriber(engine, readers[gone][0]).email_status == "bounced"
