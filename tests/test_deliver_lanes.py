"""Delivery at scale: one lane per channel, `--once` drains, heartbeats, one bad email settles alone."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from sqlalchemy import update
from sqlmodel import select

from digests import lanes, status, workers
from digests.channels.email import EmailSender
from digests.config import Settings
from digests.db import session_scope
from digests.deliver import IDLE_SLEEP, deliver_once_async, run_worker
from digests.models import DeliveryWorker, Outbox, utcnow
from tests.deliver_support import add_subscriber, queue_email, queue_telegram, row, states
from tests.fakes.botapi import FakeBotAPI
from tests.fakes.smtp import SMTPSink


async def _until(predicate, *, within: float, what: str) -> float:
    """Wait for `predicate`; returns the seconds it took."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > within:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


class HangingServer:
    """Accepts TCP connections and never answers: a Bot API that hangs."""

    async def __aenter__(self) -> HangingServer:
        self.writers: list[asyncio.StreamWriter] = []

        async def hold(_reader, writer) -> None:
            self.writers.append(writer)

        self.server = await asyncio.start_server(hold, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        for writer in self.writers:
            writer.close()
        self.server.close()


def _tg(settings: Settings, api: FakeBotAPI, **extra) -> Settings:
    return settings.model_copy(
        update={
            "telegram_bot_token": api.token,
            "telegram_api_base_url": api.base_url,
            "telegram_api_file_url": api.base_file_url,
            "telegram_per_chat_interval": 0.2,
            **extra,
        }
    )


def _mixed(engine, *, chats: int, emails: int) -> None:
    """Telegram and email rows interleaved by id, as digests for both kinds of reader are queued."""
    for i in range(max(chats, emails)):
        if i < chats:
            sub = add_subscriber(engine, chat_id=9000 + i)
            queue_telegram(engine, sub, 9000 + i, f"digest {i}")
        if i < emails:
            address = f"lane{i}@example.org"
            queue_email(engine, add_subscriber(engine, email=address), address, f"Digest {i}")


async def test_email_leaves_while_the_bot_api_hangs(engine, settings):
    _mixed(engine, chats=5, emails=30)
    async with HangingServer() as hung, SMTPSink() as sink:
        cfg = settings.model_copy(
            update={
                "telegram_bot_token": "123:abc",
                "telegram_api_base_url": f"http://127.0.0.1:{hung.port}/bot",
                "delivery_batch_size": 10,
                **sink.settings(),
            }
        )
        stop = asyncio.Event()
        worker = asyncio.create_task(run_worker(engine, cfg, stop=stop, worker_id="w", idle_sleep=0.05))
        # PTB waits 5 s for the hung getMe; a shared batch would hold every email behind it.
        took = await _until(lambda: len(sink.messages) == 30, within=4, what="every email")
        assert not any(
            state == "sent" for rid, state in states(engine).items() if row(engine, rid).channel == "telegram"
        )
    stop.set()
    await asyncio.wait_for(worker, 15)
    assert took < 4


async def test_telegram_leaves_while_the_smtp_server_crawls(engine, settings):
    _mixed(engine, chats=30, emails=10)
    async with FakeBotAPI(per_chat_interval=0.2) as api, SMTPSink(delay=0.4) as sink:
        cfg = _tg(
            settings, api, delivery_batch_size=10, smtp_connections=1, telegram_max_rate=50, **sink.settings()
        )
        stop = asyncio.Event()
        worker = asyncio.create_task(run_worker(engine, cfg, stop=stop, worker_id="w", idle_sleep=0.05))
        took = await _until(lambda: len(api.sent) == 30, within=10, what="every Telegram digest")
        # Ten emails take 4 s on this server; Telegram did not wait for them.
        assert len(sink.messages) < 10
        stop.set()
        await asyncio.wait_for(worker, 15)
    assert took < 3


async def test_deliver_once_sends_everything_that_was_due_then_returns(engine, settings):
    _mixed(engine, chats=25, emails=25)
    later = queue_email(
        engine, add_subscriber(engine, email="later@example.org"), "later@example.org", "Later"
    )
    with session_scope(engine) as s:
        s.execute(
            update(Outbox).where(Outbox.id == later).values(next_attempt_at=utcnow() + timedelta(hours=1))
        )
    async with FakeBotAPI(per_chat_interval=0.2) as api, SMTPSink() as sink:
        cfg = _tg(settings, api, delivery_batch_size=10, telegram_max_rate=100, **sink.settings())
        report = await asyncio.wait_for(deliver_once_async(engine, cfg, worker_id="cron"), 30)
    # Five batches per channel, not one.
    assert (report.claimed, report.sent) == (50, 50)
    assert len(api.sent) == 25 and len(sink.messages) == 25
    assert row(engine, later).state == "queued"
    with session_scope(engine) as s:
        assert s.get(DeliveryWorker, "cron") is None  # it left: no share of the rate kept


def test_defaults_take_over_a_dead_workers_rows_within_30_seconds():
    defaults = Settings(_env_file=None)
    takeover = workers.dead_after(defaults.delivery_heartbeat_seconds).total_seconds() + IDLE_SLEEP
    assert takeover <= 30 < defaults.delivery_claim_timeout


async def test_a_dead_workers_claims_go_to_a_new_worker_and_a_live_ones_stay(engine, settings):
    subs = {chat: add_subscriber(engine, chat_id=chat) for chat in (1, 2, 3)}
    ids = {chat: queue_telegram(engine, sub, chat, f"for {chat}") for chat, sub in subs.items()}
    now = utcnow()
    from digests import outbox

    # "dead" was SIGKILLed 16 s ago (its last heartbeat), "busy" is alive but slow on one message.
    assert len(outbox.claim(engine, worker_id="dead", limit=2)) == 2
    assert len(outbox.claim(engine, worker_id="busy", limit=1)) == 1
    with session_scope(engine) as s:
        s.execute(
            update(Outbox).where(Outbox.claimed_by == "dead").values(claimed_at=now - timedelta(seconds=20))
        )
        s.execute(
            update(Outbox).where(Outbox.claimed_by == "busy").values(claimed_at=now - timedelta(minutes=10))
        )
    with session_scope(engine) as s:
        s.add(DeliveryWorker(id="dead", channels="telegram", heartbeat_at=now - timedelta(seconds=16)))
        s.add(DeliveryWorker(id="busy", channels="telegram", heartbeat_at=now - timedelta(seconds=2)))
    async with FakeBotAPI(per_chat_interval=0.2) as api:
        # Default heartbeat (5 s, dead after 15 s) and claim timeout (300 s).
        cfg = _tg(settings, api, delivery_claim_timeout=300, delivery_heartbeat_seconds=5)
        report = await deliver_once_async(engine, cfg, worker_id="new")
    assert report.recovered == 2 and report.sent == 2
    assert sorted(m.chat_id for m in api.sent) == [1, 2]
    assert row(engine, ids[3]).state == "sending" and row(engine, ids[3]).claimed_by == "busy"
    with session_scope(engine) as s:
        assert s.get(DeliveryWorker, "dead") is None and s.get(DeliveryWorker, "busy") is not None


async def test_one_bad_address_settles_alone_and_the_lane_goes_on(engine, settings):
    bad = {
        "ünï@exämple.org": "SMTPUTF8",
        "evil@example.org\r\nBcc: victim@example.org": "cannot build the message",
    }
    order = ["a@example.org", *bad, "b@example.org"]
    ids = {
        a: queue_email(engine, add_subscriber(engine, email=f"s{i}@x.org"), a, "Hi")
        for i, a in enumerate(order)
    }
    async with SMTPSink(smtputf8=False) as sink:
        cfg = settings.model_copy(update={"smtp_connections": 1, **sink.settings()})
        report = await deliver_once_async(engine, cfg, worker_id="w")
    assert (report.sent, report.dead) == (2, 2)
    assert sorted(m.rcpt_tos[0] for m in sink.messages) == ["a@example.org", "b@example.org"]
    assert "victim@example.org" not in b"".join(m.raw for m in sink.messages).decode()
    for address, why in bad.items():
        dead = row(engine, ids[address])
        assert dead.state == "dead" and why in dead.last_error, dead.last_error


async def test_a_non_ascii_address_goes_when_the_server_offers_smtputf8(engine, settings):
    sub = add_subscriber(engine, email="s@x.org")
    rid = queue_email(engine, sub, "ünï@exämple.org", "Hi")
    async with SMTPSink() as sink:
        report = await deliver_once_async(engine, settings.model_copy(update=sink.settings()), worker_id="w")
    assert report.sent == 1 and row(engine, rid).state == "sent"
    assert sink.messages[0].rcpt_tos == ["ünï@exämple.org"]
    assert sink.messages[0].message["To"] == "ünï@exämple.org"


async def test_a_shared_render_is_built_once_and_each_reader_gets_their_own_headers():
    from dataclasses import dataclass

    @dataclass
    class Mail:
        id: int
        subscriber_id: int
        recipient: str
        subject: str = "Weekly digest"
        body: str = "<p>news</p>"
        body_text: str = "news"

    mail = [Mail(i, i, f"r{i}@example.org") for i in range(1, 6)]
    async with SMTPSink() as sink:
        cfg = Settings(
            _env_file=None, secret_key="k" * 40, public_base_url="https://c.example", **sink.settings()
        )
        sender = EmailSender(cfg)
        done = []

        async def report(r, outcome):
            done.append(outcome.status)

        await sender.send_groups([[m] for m in mail], report)
    assert done == ["sent"] * 5 and sender.rendered.built == 1
    got = {m.rcpt_tos[0]: m.message for m in sink.messages}
    assert sorted(got) == [m.recipient for m in mail]
    assert len({msg["List-Unsubscribe"] for msg in got.values()}) == 5
    assert len({msg["Message-ID"] for msg in got.values()}) == 5
    for address, msg in got.items():
        assert msg["To"] == address and msg["Subject"] == "Weekly digest"
        assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]


def test_status_shows_each_lane(engine, settings):
    now = utcnow()

    def add(channel: str, state: str, **extra) -> None:
        with session_scope(engine) as s:
            n = len(s.exec(select(Outbox.id)).all())
            s.add(
                Outbox(channel=channel, digest_key=f"k{n}", recipient=str(n), body="x", state=state, **extra)
            )

    add("telegram", "queued", next_attempt_at=now - timedelta(minutes=3))  # waiting 3 min
    add("telegram", "queued", next_attempt_at=now + timedelta(minutes=5))  # backing off
    add("telegram", "sending", claimed_by="w", claimed_at=now)
    for seconds in (10, 20, 30, 50, 90, 3000, 4000):  # 4 in the last minute, 6 in the hour
        add("telegram", "sent", sent_at=now - timedelta(seconds=seconds))
    add("email", "sent", sent_at=now - timedelta(minutes=30))
    result = status.collect(engine, settings, now=now)
    tg, mail = result.lanes
    assert (tg.channel, tg.queued, tg.sending, tg.sent_last_hour) == ("telegram", 2, 1, 6)
    assert tg.rate_per_second == round(4 / 60, 2)
    assert tg.oldest_waiting_seconds == 180.0
    assert (mail.channel, mail.queued, mail.sending, mail.sent_last_hour, mail.rate_per_second) == (
        "email", 0, 0, 1, 0.0,
    )  # fmt: skip
    assert mail.oldest_waiting_id is None
    data = result.to_dict()
    assert data["lanes"][0]["queued"] == 2 and data["lanes"][1]["channel"] == "email"
    assert lanes.CHANNELS == ("telegram", "email")


async def test_hand_written_mime_carries_any_text_intact(engine, settings):
    """Quoted-printable parts decode to exactly what was rendered: accents, long lines, dots, '='."""
    text = "Café «Ünïcode» — 100% = fine\n" + "x" * 300 + "\n.\n..leading dots\nFrom the start\r\nend"
    html = f"<p>{text}</p>\n<a href='https://c.example/u?token=a=b'>unsubscribe</a>"
    sub = add_subscriber(engine, email="r@example.org")
    queue_email(engine, sub, "r@example.org", "Sujet accentué — été", html=html, text=text)
    async with SMTPSink() as sink:
        await deliver_once_async(engine, settings.model_copy(update=sink.settings()), worker_id="w")
    [got] = sink.messages
    msg = got.message
    assert msg["Subject"] == "Sujet accentué — été"
    plain, rich = msg.iter_parts()
    # Lines end in CRLF on the wire, as SMTP wants; the words are exactly the rendered ones.
    assert plain.get_content().replace("\r\n", "\n") == text.replace("\r\n", "\n")
    assert rich.get_content().replace("\r\n", "\n") == html.replace("\r\n", "\n")
    assert max(len(line) for line in got.raw.split(b"\r\n")) <= 998
