"""Bearer links in logs: `clapper run` and `clapper web` serve the token pages, at DEBUG level,
and no log line may carry a token; no answer may carry a Server header."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import httpx
import pytest
from sqlmodel import select

from digests import emails, tokens
from digests.config import Settings
from digests.db import session_scope
from digests.models import Subscriber
from tests.fakes.smtp import SMTPSink, free_port
from tests.test_run_e2e import Service, service_env

pytestmark = pytest.mark.slow


def _reader(engine, settings) -> int:
    with session_scope(engine) as s:
        new = emails.new_reader("ann@example.org", ["Belgium"], [], "weekly")
        return emails.add_reader(s, settings, new, confirmed=True).id


@pytest.mark.parametrize("command", ["run", "web"])
async def test_no_token_in_any_log_line_and_no_server_header(engine, db_url, tmp_path, command):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with SMTPSink() as sink:
        env = service_env(db_url, PUBLIC_BASE_URL=base, WEB_PORT=str(port), LOG_LEVEL="DEBUG",
                          LOG_JSON="false", **sink.env())
        settings = Settings(_env_file=None, database_url=db_url, secret_key=env["SECRET_KEY"],
                            public_base_url=base)
        ann = _reader(engine, settings)
        reader = tokens.Recipient(ann, "ann@example.org")
        wanted = {p: tokens.make_token(settings, reader, p) for p in tokens.PURPOSES}
        forged = wanted["unsubscribe"][:-3] + "AAA"
        service = Service(tmp_path, env, command)
        try:
            async with httpx.AsyncClient(base_url=base) as http:

                async def up():
                    try:
                        return (await http.get("/healthz")).status_code == 200
                    except httpx.TransportError:
                        return False

                for _ in range(300):
                    if await up():
                        break
                    assert service.proc.poll() is None, service.log()
                    await asyncio.sleep(0.1)
                answers = [
                    await http.get("/preferences", params={"token": wanted["preferences"]}),
                    await http.head("/unsubscribe", params={"token": wanted["unsubscribe"]}),
                    await http.get("/confirm", params={"token": wanted["confirm"]}),
                    await http.get("/unsubscribe", params={"token": forged}),
                    await http.post("/unsubscribe", params={"token": wanted["unsubscribe"]},
                                    data={"List-Unsubscribe": "One-Click"}),
                    await http.get("/nope", params={"token": wanted["preferences"]}),
                ]
        finally:
            await service.terminate()
    assert [a.status_code for a in answers][:1] == [200] and answers[3].status_code == 400
    for answer in answers:
        assert "server" not in answer.headers, answer.headers
    log = service.log()
    assert "GET /" not in log and "/healthz" not in log  # no access log at all
    for token in (*wanted.values(), forged):
        assert token not in log
        assert token.split(".")[-1] not in log  # not even the signature


async def test_no_bot_token_code_or_link_in_the_logs_of_a_bot_conversation(engine, settings, monkeypatch):
    """The bot, /email + /verify and a delivered digest at DEBUG, with logging configured as
    every command configures it (httpx would print the bot token in each request URL)."""
    from bot.app import build_application, polling
    from digests import logs, queue
    from digests.deliver import deliver_once_async
    from tests.fakes.botapi import FakeBotAPI
    from tests.test_bot_email import code_from_mail, say

    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            # The fakes' own servers (aiosmtpd's "mail.log", the fake Bot API) are not Clapper.
            if not record.name.startswith(("mail.log", "tests.", "aiohttp.access")):
                records.append(self.format(record))

    root = logging.getLogger()
    saved = root.handlers[:], root.level, logging.getLogger("httpx").level
    async with FakeBotAPI(per_chat_interval=None) as api, SMTPSink() as sink:
        cfg = settings.model_copy(update={
            **sink.settings(), "telegram_bot_token": api.token, "telegram_api_base_url": api.base_url,
            "telegram_api_file_url": api.base_file_url, "public_base_url": "https://news.example.org",
            "log_level": "DEBUG",
        })
        logs.configure(cfg)
        keep = Keep()
        keep.setFormatter(logs.JsonFormatter())
        root.addHandler(keep)
        try:
            async with polling(build_application(cfg, engine), long_poll=1):
                await say(api, 601, "/subscribe Belgium")
                await say(api, 601, "/email ann@example.org")
                code = await code_from_mail(engine, cfg, sink, "ann@example.org")
                assert "Confirmed" in await say(api, 601, f"/verify {code}")
                await say(api, 601, "/latest")
            queue.queue_due(engine, cfg, now=datetime.now(UTC), force=True)
            await deliver_once_async(engine, cfg, worker_id="t")
        finally:
            root.handlers[:], _, _ = saved
            root.setLevel(saved[1])
            logging.getLogger("httpx").setLevel(saved[2])
    with session_scope(engine) as s:
        ann = s.exec(select(Subscriber).where(Subscriber.email == "ann@example.org")).one().id
    log = "\n".join(records)
    assert len(records) > 20  # DEBUG really was on
    secrets_in_play = [api.token, api.token.split(":")[1], f"/verify {code}", f'"{code}"',
                       *(tokens.make_token(cfg, tokens.Recipient(ann, "ann@example.org"), p)
                         for p in ("unsubscribe", "preferences"))]
    for secret in secrets_in_play:
        assert secret not in log, secret


def test_redact_removes_bot_tokens_link_tokens_and_codes():
    from digests.logs import redact

    assert redact("Set Bot API URL: https://api.telegram.org/bot123456:AAH-x_Y9/getMe") == (
        "Set Bot API URL: https://api.telegram.org/bot<bot token>/getMe"
    )
    assert redact('GET /unsubscribe?token=MQ.aB-_9.s&x=1 "ok"') == 'GET /unsubscribe?token=<token>&x=1 "ok"'
    assert redact("{'text': '/verify 123456'}") == "{'text': '/verify <code>'}"
    assert redact("usage: /verify") == "usage: /verify"
