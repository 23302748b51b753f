"""`clapper bot` as a user runs it: a real process, polling the fake Bot API until SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from digests import db, subscriptions
from tests.fakes.botapi import FakeBotAPI

ROOT = Path(__file__).resolve().parent.parent
CLAPPER = [sys.executable, "-c", "from digests.cli import main; main()"]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DATABASE_", "ADMIN_"))}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'bot.db'}", PYTHONPATH=str(ROOT), **extra)
    return env


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
        proc = subprocess.Popen([*CLAPPER, "bot"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        try:
            api.wait_for_sync(lambda: api.commands, within=60)  # post_init ran: the menu is set
            api.push_message(77, "/subscribe Belgium, Production")
            reply = api.wait_for_sync(lambda: api.messages_for(77), within=30)[0]
            assert "Now following" in reply.plain
            proc.send_signal(signal.SIGTERM)
            output, _ = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, output
    assert "long polling" in output
    engine = db.get_engine(f"sqlite:///{tmp_path / 'bot.db'}")
    assert {t.value for t in subscriptions.list_subscriptions(engine, 77)} == {"Belgium", "Production"}
    engine.dispose()
