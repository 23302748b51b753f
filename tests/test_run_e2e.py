"""`clapper run` as a subprocess against the fake Bot API, an aiosmtpd sink and a local listing site."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from sqlmodel import select

from digests.db import session_scope
from digests.models import Article, Outbox, Source, Subscriber, Subscription, utcnow
from tests.fakes.listing_site import ListingSite
from tests.fakes.smtp import SMTPSink, free_port

pytestmark = pytest.mark.slow

CLAPPER = [sys.executable, "-c", "from digests.cli import main; main()"]
ROOT = Path(__file__).resolve().parent.parent


class Service:
    """One `clapper …` process with its output in files (pipes could fill up and block it)."""

    def __init__(self, tmp_path: Path, env: dict[str, str], *args: str) -> None:
        self.out = tmp_path / "service.out"
        self.err = tmp_path / "service.err"
        self.proc = subprocess.Popen(
            [*CLAPPER, *args],
            cwd=tmp_path,  # no developer .env
            env=env,
            stdout=self.out.open("w"),
            stderr=self.err.open("w"),
        )

    def log(self) -> str:
        return self.err.read_text(encoding="utf-8", errors="replace")

    def events(self) -> list[dict]:
        found = []
        for line in self.log().splitlines():
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
        return found

    async def wait_until(self, what: str, predicate: Callable[[], object], seconds: float = 30) -> object:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            result = predicate()
            if result:
                return result
            if self.proc.poll() is not None:
                pytest.fail(
                    f"clapper exited ({self.proc.returncode}) while waiting for {what}:\n{self.log()}"
                )
            await asyncio.sleep(0.1)
        pytest.fail(f"timed out waiting for {what}:\n{self.log()[-6000:]}")

    async def terminate(self, seconds: float = 60) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.to_thread(self.proc.wait, seconds)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"clapper did not stop within {seconds} s of SIGTERM:\n{self.log()[-6000:]}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def service_env(db_url: str, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TELEGRAM_", "SMTP_", "DATABASE_", "PUBLIC_", "LOG_", "INGEST_"))
    }
    env.update(
        {
            "DATABASE_URL": db_url,
            "SECRET_KEY": "e2e-secret-key-0123456789abcdef-0123456789",
            "LOG_JSON": "true",
            "LOG_LEVEL": "INFO",
            "INGEST_EVERY_MINUTES": "0.05",  # every 3 s
            "LISTING_MAX_PAGES": "1",
            "HTTP_RETRIES": "0",
            "HTTP_TIMEOUT": "5",
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(ROOT),
        }
    )
    env.update(extra)
    return env


def add_source(engine, url: str) -> None:
    with session_scope(engine) as s:
        s.add(Source(name="belgium", url=url, kind="listing"))


def articles_in_db(engine) -> int:
    with session_scope(engine) as s:
        return len(s.exec(select(Article.id)).all())


def outbox_states(engine) -> dict[str, int]:
    with session_scope(engine) as s:
        rows = s.exec(select(Outbox.state)).all()
    counts: dict[str, int] = {}
    for state in rows:
        counts[state] = counts.get(state, 0) + 1
    return counts


def test_without_token_or_smtp_it_explains_and_points_to_the_demo(tmp_path):
    env = service_env(f"sqlite:///{tmp_path / 'clapper.db'}")  # a settings check: one database is enough
    proc = subprocess.run(
        [*CLAPPER, "run"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 78, proc.stderr
    assert "@BotFather" in proc.stderr and "clapper demo" in proc.stderr
    assert "Traceback" not in proc.stderr


async def test_without_token_it_runs_the_email_side(engine, db_url, tmp_path):
    async with ListingSite() as site:
        site.add("An old shoot wraps in Ghent")
        add_source(engine, site.url)
        with SMTPSink() as smtp:
            port = free_port()
            web = {
                "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
                "WEB_HOST": "127.0.0.1",
                "WEB_PORT": str(port),
            }
            service = Service(tmp_path, service_env(db_url, **smtp.env(), **web), "run")
            try:
                await service.wait_until("the first ingest", lambda: articles_in_db(engine) == 1)
                with session_scope(engine) as s:
                    reader = Subscriber(
                        email="reader@example.org",
                        email_status="confirmed",
                        email_confirmed_at=utcnow(),
                        email_frequency="instant",
                    )
                    s.add(reader)
                    s.flush()
                    s.add(Subscription(subscriber_id=reader.id, kind="country", value="Belgium"))
                site.add("Principal photography starts on Brussels noir", countries="France/Belgium")
                await service.wait_until("the instant email", lambda: smtp.to("reader@example.org"))
                # The web pages run in the same loop: the email's unsubscribe link answers.
                (mail,) = smtp.to("reader@example.org")
                link = mail.message["List-Unsubscribe"].split(",")[0].strip(" <>")
                assert link.startswith(f"http://127.0.0.1:{port}/unsubscribe?token=")
                async with aiohttp.ClientSession() as http:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as health:
                        assert health.status == 200 and await health.text() == "ok"
                    async with http.get(link) as page:
                        assert page.status == 200, await page.text()
                rc = await service.terminate()
            finally:
                service.kill()
    assert rc == 0, service.log()
    (mail,) = smtp.to("reader@example.org")
    text = mail.message.get_body(("plain",)).get_content()
    assert "Brussels noir" in text and "old shoot" not in text
    assert outbox_states(engine) == {"sent": 1}
    events = {e.get("event") for e in service.events()}
    assert {"run.start", "run.signal", "run.stop"} <= events
    started = next(e for e in service.events() if e.get("event") == "run.start")
    assert started["parts"] == ["scheduler", "web", "worker"]
    # LOG_JSON: one JSON object per line, the setup advice included; nothing else on stderr.
    lines = [line for line in service.log().splitlines() if line.strip()]
    assert len(service.events()) == len(lines)
    assert any(e.get("event") == "run.setup_hint" and "@BotFather" in e["message"] for e in service.events())
    assert "Traceback" not in service.log()


async def test_scheduler_command_stops_cleanly_on_sigterm_mid_ingest(engine, db_url, tmp_path):
    # A source that answers slowly keeps the ingest job busy when SIGTERM comes: the job finishes
    # (its rows are written whole) and the process still exits 0.
    async with ListingSite() as site:
        for n in range(5):
            site.add(f"Shoot {n} in Antwerp")
        site.delay = 2.0
        add_source(engine, site.url)
        service = Service(tmp_path, service_env(db_url), "scheduler")
        try:
            await service.wait_until("the first fetch", lambda: site.requests >= 1)
            rc = await service.terminate()
        finally:
            service.kill()
    assert rc == 0, service.log()
    assert articles_in_db(engine) == 5  # the job in flight finished before the process exited
    with session_scope(engine) as s:
        source = s.exec(select(Source)).one()
    assert source.last_success_at is not None and source.error_count == 0
    stop = [e for e in service.events() if e.get("event") == "run.signal"]
    assert stop and site.requests == 1


async def test_reader_subscribes_by_chat_and_gets_the_instant_digest(engine, db_url, tmp_path):
    from tests.fakes.botapi import FakeBotAPI

    chat = 5001
    async with FakeBotAPI() as api, ListingSite() as site:
        site.add("An old shoot wraps in Ghent")
        add_source(engine, site.url)
        with SMTPSink() as smtp:
            env = service_env(
                db_url,
                TELEGRAM_BOT_TOKEN=api.token,
                TELEGRAM_API_BASE_URL=api.base_url,
                TELEGRAM_API_FILE_URL=api.base_file_url,
                **smtp.env(),
            )
            service = Service(tmp_path, env, "run")
            try:
                await service.wait_until(
                    "polling", lambda: any(r["method"] == "getUpdates" for r in api.requests)
                )
                await service.wait_until("the first ingest", lambda: articles_in_db(engine) == 1)

                api.push_message(chat, "/subscribe Belgium", first_name="Ana")
                await service.wait_until("the /subscribe answer", lambda: api.messages_for(chat))
                api.push_message(chat, "/frequency instant", first_name="Ana")
                await service.wait_until("the /frequency answer", lambda: len(api.messages_for(chat)) >= 2)
                with session_scope(engine) as s:
                    reader = s.exec(select(Subscriber).where(Subscriber.telegram_chat_id == chat)).one()
                    follows = s.exec(
                        select(Subscription.kind, Subscription.value).where(
                            Subscription.subscriber_id == reader.id
                        )
                    ).all()
                assert reader.frequency == "instant" and follows == [("country", "Belgium")]
                answers = len(api.messages_for(chat))

                site.add("Principal photography starts on Brussels noir", countries="France/Belgium")
                site.add("A Flemish comedy is shooting in Bruges")
                site.add("A Danish drama is shooting in Aarhus", countries="Denmark")
                digests = await service.wait_until(
                    "the instant digest",
                    lambda: [m for m in api.messages_for(chat)[answers:] if "Brussels noir" in m.text],
                )
                # The next ingest runs in 3 s; give it time to send anything it should not.
                await asyncio.sleep(4)
                rc = await service.terminate()
            finally:
                service.kill()
    assert rc == 0, service.log()
    # One message for the whole ingest run, with both Belgian articles and nothing else.
    (digest,) = digests
    assert "Bruges" in digest.plain and "Aarhus" not in digest.plain and "old shoot" not in digest.plain
    assert len(api.messages_for(chat)) == answers + 1
    assert outbox_states(engine) == {"sent": 1}
    assert smtp.messages == []  # no email reader here
    events = [e.get("event") for e in service.events()]
    assert "run.bot_started" in events and events[-1] == "run.stop"
    assert "Traceback" not in service.log()


async def test_a_refused_token_is_reported_in_one_line(tmp_path):
    from tests.fakes.botapi import FakeBotAPI

    async with FakeBotAPI() as api:
        env = service_env(
            f"sqlite:///{tmp_path / 'clapper.db'}",
            TELEGRAM_BOT_TOKEN="42:not-the-token",
            TELEGRAM_API_BASE_URL=api.base_url,
            TELEGRAM_API_FILE_URL=api.base_file_url,
        )
        service = Service(tmp_path, env, "run")
        try:
            rc = await asyncio.to_thread(service.proc.wait, 60)
        finally:
            service.kill()
    assert rc == 78, service.log()
    (error,) = [e for e in service.events() if e.get("event") == "run.config_error"]
    assert "@BotFather" in error["message"]
    assert "Traceback" not in service.log()


async def test_sigterm_in_the_middle_of_sending_loses_nothing_and_repeats_nothing(tmp_path):
    from digests import db
    from tests.fakes.botapi import FakeBotAPI

    url = f"sqlite:///{tmp_path / 'clapper.db'}"  # the worker's claims are the delivery tests' job
    engine = db.init(url)
    readers = [9000 + n for n in range(40)]
    with session_scope(engine) as s:
        for chat in readers:
            reader = Subscriber(telegram_chat_id=chat, chat_type="private", frequency="instant")
            s.add(reader)
            s.flush()
            s.add(Subscription(subscriber_id=reader.id, kind="country", value="Belgium"))
    async with FakeBotAPI() as api, ListingSite() as site:
        site.add("Shoot starts in Namur")
        add_source(engine, site.url)
        env = service_env(
            url,
            TELEGRAM_BOT_TOKEN=api.token,
            TELEGRAM_API_BASE_URL=api.base_url,
            TELEGRAM_API_FILE_URL=api.base_file_url,
            TELEGRAM_MAX_RATE="10",  # 40 messages take 4 s: time to stop it half-way
            INGEST_EVERY_MINUTES="60",
        )
        first = Service(tmp_path, env, "scheduler")
        try:
            await first.wait_until("the first sends", lambda: len(api.sent) >= 10)
            rc = await first.terminate()
        finally:
            first.kill()
        assert rc == 0, first.log()
        states = outbox_states(engine)
        assert "sending" not in states and states.get("queued", 0) > 0, states
        assert states["sent"] == len(api.sent)  # every row marked sent was received, and no more

        (tmp_path / "again").mkdir()
        second = Service(tmp_path / "again", env, "scheduler")
        try:
            await second.wait_until("the rest", lambda: len(api.sent) >= len(readers))
            await asyncio.sleep(1)
            assert await second.terminate() == 0, second.log()
        finally:
            second.kill()
    assert outbox_states(engine) == {"sent": len(readers)}
    assert sorted(m.chat_id for m in api.sent) == readers  # each reader once
