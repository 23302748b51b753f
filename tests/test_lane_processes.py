"""`clapper deliver` with both channels on: each lane a process of its own, supervised.

Real processes against the fake Bot API and the SMTP sink on loopback: a stopped (SIGSTOP)
Telegram lane does not hold one email back, a killed lane is started again, and lanes whose
worker died stop by themselves and give their claims back.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from digests import lane_processes
from digests.config import Settings
from tests.deliver_support import add_subscriber, queue_email, queue_telegram, states
from tests.fakes.botapi import FakeBotAPI
from tests.fakes.smtp import SMTPSink
from tests.test_deliver_workers import CLAPPER, _env, _until

STARTED = re.compile(r"(telegram|email) lane started \(pid (\d+)\)")


def _settings(**extra) -> Settings:
    base = dict(
        _env_file=None,
        database_url="sqlite:////tmp/clapper.db",
        secret_key="test-secret-key-0123456789abcdef-012",
        telegram_bot_token="1:abc",
        smtp_host="127.0.0.1",
    )
    return Settings(**{**base, **extra})


def test_a_worker_splits_only_with_both_channels_and_a_shared_database():
    assert lane_processes.splits(_settings())
    assert lane_processes.splits(_settings(database_url="postgresql+psycopg://u@h/db"))
    assert not lane_processes.splits(_settings(smtp_host=""))
    assert not lane_processes.splits(_settings(telegram_bot_token=""))
    assert not lane_processes.splits(_settings(delivery_lane_processes=False))
    # A database private to its process cannot be shared by lanes.
    for url in ("sqlite://", "sqlite:///:memory:", "sqlite+pysqlite:///:memory:"):
        assert not lane_processes.splits(_settings(database_url=url)), url


def _start(env: dict[str, str], cwd: Path, log: Path, *args: str) -> subprocess.Popen:
    # stderr to a file, read while the worker runs: it names each lane's pid.
    return subprocess.Popen(
        [CLAPPER, "deliver", *args], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=log.open("w"), text=True
    )


def _lanes(log: Path) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for channel, pid in STARTED.findall(log.read_text()):
        found.setdefault(channel, []).append(int(pid))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its dead parent's reaper) is gone too.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _queue_both(engine, chats: range, emails: int) -> list[str]:
    for chat in chats:
        queue_telegram(engine, add_subscriber(engine, chat_id=chat), chat, f"digest for {chat}")
    addresses = [f"r{i}@example.org" for i in range(emails)]
    for address in addresses:
        queue_email(engine, add_subscriber(engine, email=address), address, f"Digest for {address}")
    return addresses


async def test_email_leaves_while_the_telegram_lane_is_stopped(engine, db_url, tmp_path):
    chats = range(7000, 7012)
    addresses = _queue_both(engine, chats, 40)
    log = tmp_path / "worker.log"
    async with FakeBotAPI(per_chat_interval=0.2) as api, SMTPSink() as sink:
        # 2 messages/s: the Telegram lane is still busy when it is stopped.
        env = _env(db_url, api, sink, TELEGRAM_MAX_RATE="2")
        proc = _start(env, tmp_path, log, "--once", "--worker-id", "w")
        await _until(
            lambda: "telegram" in _lanes(log) and "email" in _lanes(log), within=30, what="both lanes"
        )
        lanes = _lanes(log)
        assert lanes["telegram"] != lanes["email"]
        await _until(lambda: len(api.sent) >= 1, within=30, what="Telegram to start")
        os.kill(lanes["telegram"][0], signal.SIGSTOP)
        try:
            at_stop = len(api.sent)
            await _until(lambda: len(sink.messages) == len(addresses), within=30, what="every email")
            assert len(api.sent) == at_stop  # the Telegram lane really was stopped meanwhile
        finally:
            os.kill(lanes["telegram"][0], signal.SIGCONT)
        out, _ = await asyncio.to_thread(proc.communicate, timeout=60)
    assert proc.returncode == 0, log.read_text()[-2000:]
    # The counts of both lanes, summed by the supervisor.
    assert f"claimed={len(chats) + len(addresses)} sent={len(chats) + len(addresses)}" in out
    assert Counter(m.chat_id for m in api.sent) == Counter(chats)
    assert sorted(m.rcpt_tos[0] for m in sink.messages) == sorted(addresses)


async def test_a_killed_lane_is_started_again_and_the_other_goes_on(engine, db_url, tmp_path):
    chats = range(7100, 7130)
    addresses = _queue_both(engine, chats, 20)
    log = tmp_path / "worker.log"
    async with FakeBotAPI(per_chat_interval=0.2) as api, SMTPSink(delay=0.05) as sink:
        env = _env(db_url, api, sink, TELEGRAM_MAX_RATE="10", DELIVERY_HEARTBEAT_SECONDS="0.3")
        proc = _start(env, tmp_path, log, "--worker-id", "w")
        await _until(lambda: len(api.sent) >= 3, within=30, what="Telegram to start")
        first = _lanes(log)
        os.kill(first["telegram"][0], signal.SIGKILL)
        await _until(lambda: len(_lanes(log).get("telegram", [])) == 2, within=15, what="the lane restarted")
        await _until(lambda: len({m.chat_id for m in api.sent}) == len(chats), within=40, what="every chat")
        await _until(lambda: len(sink.messages) >= len(addresses), within=30, what="every email")
        await _until(lambda: set(states(engine).values()) == {"sent"}, within=15, what="every row settled")
        assert _lanes(log)["email"] == first["email"]  # the email lane was never touched
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.communicate, timeout=60)
    text = log.read_text()
    assert proc.returncode == 0, text[-2000:]
    assert "telegram lane exited with code -9; starting it again" in text
    # Its unsettled claims went back when its heartbeat died: at most the one request in flight twice.
    per_chat = Counter(m.chat_id for m in api.sent)
    assert sum(n - 1 for n in per_chat.values()) <= 1, per_chat
    assert sorted(m.rcpt_tos[0] for m in sink.messages) == sorted(addresses)


async def test_lanes_of_a_killed_worker_stop_and_give_their_claims_back(engine, db_url, tmp_path):
    chats = range(7200, 7240)
    _queue_both(engine, chats, 30)
    log = tmp_path / "worker.log"
    async with FakeBotAPI(per_chat_interval=0.2) as api, SMTPSink(delay=0.3) as sink:
        env = _env(db_url, api, sink, TELEGRAM_MAX_RATE="4")
        proc = _start(env, tmp_path, log, "--worker-id", "w")
        await _until(lambda: len(api.sent) >= 2 and len(sink.messages) >= 1, within=30, what="both lanes")
        lanes = _lanes(log)
        proc.kill()
        await asyncio.to_thread(proc.communicate, timeout=10)
        pids = [lanes["telegram"][0], lanes["email"][0]]
        await _until(lambda: not any(_alive(p) for p in pids), within=20, what="the orphaned lanes to stop")
        found = Counter(states(engine).values())
        # Nothing left claimed by the dead worker's lanes: a new worker can take it all at once.
        assert found["sending"] == 0, found
        # Stopped as on SIGTERM: what they sent is settled, once each; the rest waits, unsent.
        delivered = Counter(m.chat_id for m in api.sent) + Counter(m.rcpt_tos[0] for m in sink.messages)
        assert max(delivered.values()) == 1
        assert found["queued"] > 0 and found["sent"] == delivered.total()
    assert "is gone; stopping" in log.read_text()


@pytest.mark.parametrize("signal_", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_stops_both_lanes_cleanly(engine, db_url, tmp_path, signal_):
    _queue_both(engine, range(7300, 7320), 10)
    log = tmp_path / "worker.log"
    async with FakeBotAPI(per_chat_interval=0.2) as api, SMTPSink() as sink:
        env = _env(db_url, api, sink, TELEGRAM_MAX_RATE="4")
        proc = _start(env, tmp_path, log, "--worker-id", "w")
        await _until(lambda: len(api.sent) >= 2, within=30, what="Telegram to start")
        lanes = _lanes(log)
        proc.send_signal(signal_)
        await asyncio.to_thread(proc.communicate, timeout=60)
    assert proc.returncode == 0, log.read_text()[-2000:]
    assert not any(_alive(p) for p in (lanes["telegram"][0], lanes["email"][0]))
    found = Counter(states(engine).values())
    assert found["sending"] == 0 and found["sent"] == len(api.sent) + len(sink.messages)
