"""`clapper bot` as a user runs it: a real process, polling the fake Bot API until SIGTERM."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx

from digests import db, subscriptions
from digests.cli.bot_cmd import webhook_secret
from digests.config import Settings
from tests.fakes.botapi import FakeBotAPI

ROOT = Path(__file__).resolve().parent.parent
CLAPPER = [sys.executable, "-c", "from digests.cli import main; main()"]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DATABASE_", "ADMIN_"))}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'bot.db'}", PYTHONPATH=str(ROOT), **extra)
    return env


@contextlib.contextmanager
def _bot_process(tmp_path: Path, env: dict[str, str]) -> Iterator[SimpleNamespace]:
    """`clapper bot` as a subprocess, stopped by SIGTERM on the way out (killed if it hangs)."""
    proc = subprocess.Popen([*CLAPPER, "bot"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    run = SimpleNamespace(returncode=None, output="")
    try:
        yield run
        proc.send_signal(signal.SIGTERM)
        run.output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    run.returncode = proc.returncode


def test_without_a_token_it_explains_botfather_and_exits_2(tmp_path):
    done = subprocess.run([*CLAPPER, "bot"], cwd=tmp_path, env=_env(tmp_path), capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert "@BotFather" in done.stderr and "/newbot" in done.stderr and "TELEGRAM_BOT_TOKEN=" in done.stderr
    assert not (tmp_path / "bot.db").exists()  # nothing touched for a bot that cannot run


def test_polls_answers_and_stops_on_sigterm(tmp_path):
    with FakeBotAPI.in_thread(per_chat_interval=None) as api:
        env = _env(tmp_path, TELEGRAM_BOT_TOKEN=api.token, TELEGRAM_API_BASE_URL=api.base_url,
                   TELEGRAM_API_FILE_URL=api.base_file_url)
        with _bot_process(tmp_path, env) as run:
            api.wait_for_sync(lambda: api.commands, within=60)  # post_init ran: the menu is set
            api.push_message(77, "/subscribe Belgium, Production")
            reply = api.wait_for_sync(lambda: api.messages_for(77), within=30)[0]
            assert "Now following" in reply.plain
    assert run.returncode == 0, run.output
    assert "long polling" in run.output
    engine = db.get_engine(f"sqlite:///{tmp_path / 'bot.db'}")
    assert {t.value for t in subscriptions.list_subscriptions(engine, 77)} == {"Belgium", "Production"}
    engine.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post_when_listening(http: httpx.Client, url: str, update: dict, secret: str) -> httpx.Response:
    # PTB registers the webhook before its server listens: retry the first connection briefly.
    deadline = time.monotonic() + 20
    while True:
        try:
            return http.post(url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": secret})
        except httpx.ConnectError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_webhook_mode_registers_checks_the_secret_and_answers(tmp_path):
    port = _free_port()
    secret = webhook_secret(Settings(_env_file=None, secret_key="webhook-test-secret-0123456789abcdef-01234"))
    update = {"update_id": 1, "message": {
        "message_id": 1, "date": int(time.time()), "chat": {"id": 78, "type": "private", "first_name": "Ann"},
        "from": {"id": 78, "is_bot": False, "first_name": "Ann"}, "text": "/start",
        "entities": [{"type": "bot_command", "offset": 0, "length": 6}]}}
    with FakeBotAPI.in_thread(per_chat_interval=None) as api:
        env = _env(tmp_path, TELEGRAM_BOT_TOKEN=api.token, TELEGRAM_API_BASE_URL=api.base_url,
                   TELEGRAM_WEBHOOK_URL="https://bot.example.org/tg/hook",
                   TELEGRAM_WEBHOOK_LISTEN="127.0.0.1", TELEGRAM_WEBHOOK_PORT=str(port),
                   SECRET_KEY="webhook-test-secret-0123456789abcdef-01234")
        with _bot_process(tmp_path, env) as run:
            api.wait_for_sync(lambda: api.webhook.get("url"), within=60)
            assert api.webhook == {"url": "https://bot.example.org/tg/hook", "secret_token": secret}
            url = f"http://127.0.0.1:{port}/tg/hook"
            with httpx.Client() as http:
                forged = _post_when_listening(http, url, update, "guess")
                assert forged.status_code == 403
                accepted = http.post(url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": secret})
                assert accepted.status_code == 200
            reply = api.wait_for_sync(lambda: api.messages_for(78), within=30)[0]
            assert "Clapper" in reply.plain and len(api.messages_for(78)) == 1
    assert run.returncode == 0, run.output
    assert "webhook" in run.output
