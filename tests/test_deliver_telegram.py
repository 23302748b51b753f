"""Telegram delivery: the real PTB client against the fake Bot API (limits, 429, 403, migration, errors)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from digests.channels.telegram import RateLimiter
from digests.deliver import deliver_once_async
from tests.deliver_support import add_subscriber, queue_telegram, row, subscriber
from tests.fakes.botapi import FakeBotAPI


@pytest.fixture
async def api():
    # A short per-chat interval keeps split-digest tests quick; the fake enforces whatever it is given.
    async with FakeBotAPI(per_chat_interval=0.2) as fake:
        yield fake


@pytest.fixture
def tg_settings(settings, api):
    return settings.model_copy(
        update={
            "telegram_bot_token": api.token,
            "telegram_api_base_url": api.base_url,
            "telegram_api_file_url": api.base_file_url,
            "telegram_per_chat_interval": 0.2,
            "delivery_retry_base": 0.2,
        }
    )


def _chats(engine, n: int, *, first: int = 1000) -> dict[int, tuple[int, int]]:
    found = {}
    for chat in range(first, first + n):
        sub = add_subscriber(engine, chat_id=chat)
        found[chat] = (sub, queue_telegram(engine, sub, chat, f"<b>News</b> for {chat} &amp; friends"))
    return found


async def test_each_chat_gets_its_message_once_as_html_without_previews(engine, tg_settings, api):
    chats = _chats(engine, 8)
    report = await deliver_once_async(engine, tg_settings, worker_id="w")
    assert (report.claimed, report.sent) == (8, 8)
    assert sorted(m.chat_id for m in api.sent) == sorted(chats)
    for chat, (_sub, row_id) in chats.items():
        [msg] = api.messages_for(chat)
        assert msg.text == f"<b>News</b> for {chat} &amp; friends"
        assert msg.plain == f"News for {chat} & friends"
        assert msg.parse_mode == "HTML"
        assert msg.params["link_preview_options"]["is_disabled"] is True
        assert row(engine, row_id).state == "sent"
    assert api.rejected == []


async def test_split_parts_arrive_in_order_and_respect_the_chat_interval(engine, tg_settings, api):
    sub = add_subscriber(engine, chat_id=42)
    for part in range(1, 5):
        queue_telegram(engine, sub, 42, f"part {part}/4", key=f"digest:x#{part}/4")
    other = add_subscriber(engine, chat_id=43)
    queue_telegram(engine, other, 43, "other chat")
    report = await deliver_once_async(engine, tg_settings, worker_id="w")
    assert report.sent == 5
    sent = api.messages_for(42)
    assert [m.text for m in sent] == [f"part {p}/4" for p in range(1, 5)]
    gaps = [b.time - a.time for a, b in zip(sent, sent[1:], strict=False)]
    assert min(gaps) >= 0.2
    assert api.rejected == []


async def test_429s_are_waited_out_and_nothing_is_lost(engine, tg_settings, api):
    chats = _chats(engine, 10)
    api.inject_errors("429", count=2, retry_after=1)
    started = time.monotonic()
    report = await deliver_once_async(engine, tg_settings, worker_id="w")
    assert report.sent == 10 and report.retried == 0
    assert sorted(m.chat_id for m in api.sent) == sorted(chats)  # each exactly once
    assert len([r for r in api.rejected if r["status"] == 429]) == 2
    # Every 429 paused sending for its retry_after.
    assert time.monotonic() - started >= 1.0
    assert all(row(engine, row_id).attempts == 1 for _s, row_id in chats.values())


async def test_the_overall_rate_stays_under_telegrams_limit(engine, tg_settings, api):
    settings = tg_settings.model_copy(update={"telegram_max_rate": 25})
    _chats(engine, 45)
    report = await deliver_once_async(engine, settings, worker_id="w")
    assert report.sent == 45
    assert api.rejected == []
    assert api.max_rate() <= 27  # 25/s plus scheduling jitter at the window's edges


async def test_a_chat_that_blocked_the_bot_is_marked_and_its_queue_cancelled(engine, tg_settings, api):
    chats = _chats(engine, 3)
    blocked_sub, blocked_row = chats[1001]
    later = queue_telegram(engine, blocked_sub, 1001, "next digest", key="digest:2")
    api.block(1001)
    report = await deliver_once_async(engine, tg_settings, worker_id="w")
    assert (report.sent, report.blocked, report.cancelled) == (2, 1, 1)
    assert api.messages_for(1001) == []
    assert subscriber(engine, blocked_sub).telegram_blocked_at is not None
    dead = row(engine, blocked_row)
    assert dead.state == "dead" and "blocked" in dead.last_error.lower()
    assert row(engine, later).state == "cancelled"
    assert subscriber(engine, chats[1000][0]).telegram_blocked_at is None


async def test_a_chat_that_no_longer_exists_stops_too(engine, tg_settings, api):
    chats = _chats(engine, 1)
    api.forget(1000)
    report = await deliver_once_async(engine, tg_settings, worker_id="w")
    assert report.blocked == 1
    assert subscriber(engine, chats[1000][0]).telegram_blocked_at is not None


async def test_a_migrated_group_gets_the_message_at_its_new_id(engine, tg_settings, api):
    old, new = -4001, -1004001000111
    sub = add_subscriber(engine, chat_id=old, chat_type="group")
    first = queue_telegram(engine, sub, old, "part 1/2", key="d#1/2")
    second = queue_telegram(engine, sub, old, "part 2/2", key="d#2/2")
    api.migrate(old, new)
    report = await deliver_once_async(engine, tg_settings, worker_id="w")
    assert report.sent == 2
    assert [m.text for m in api.messages_for(new)] == ["part 1/2", "part 2/2"]
    assert api.messages_for(old) == []
    assert subscriber(engine, sub).telegram_chat_id == new
    assert {row(engine, first).recipient, row(engine, second).recipient} == {str(new)}


async def test_server_errors_back_off_then_deliver(engine, tg_settings, api):
    chats = _chats(engine, 2)
    api.inject_errors("500", count=1, chat_id=1000)
    api.inject_errors("502", count=1, chat_id=1001)
    first = await deliver_once_async(engine, tg_settings, worker_id="w")
    assert (first.sent, first.retried) == (0, 2)
    for _s, row_id in chats.values():
        kept = row(engine, row_id)
        assert (kept.state, kept.attempts) == ("queued", 1) and kept.last_error
    await asyncio.sleep(0.3)
    second = await deliver_once_async(engine, tg_settings, worker_id="w")
    assert second.sent == 2
    assert sorted(m.chat_id for m in api.sent) == [1000, 1001]


async def test_repeated_failures_end_dead_with_the_error_kept(engine, tg_settings, api):
    settings = tg_settings.model_copy(update={"delivery_max_attempts": 2, "delivery_retry_base": 0.05})
    chats = _chats(engine, 1)
    api.inject_errors("500", count=10)
    await deliver_once_async(engine, settings, worker_id="w")
    await asyncio.sleep(0.1)
    report = await deliver_once_async(engine, settings, worker_id="w")
    assert report.dead == 1
    dead = row(engine, chats[1000][1])
    assert (dead.state, dead.attempts) == ("dead", 2)
    assert "Internal Server Error" in dead.last_error
    assert api.sent == []


async def test_a_parse_error_is_a_template_bug_dead_and_logged(engine, tg_settings, api, caplog):
    sub = add_subscriber(engine, chat_id=77)
    bad = queue_telegram(engine, sub, 77, "<b>unclosed", template="telegram/broken.html.j2")
    with caplog.at_level(logging.ERROR):
        report = await deliver_once_async(engine, tg_settings, worker_id="w")
    assert report.dead == 1 and api.sent == []
    dead = row(engine, bad)
    assert dead.state == "dead" and "parse entities" in dead.last_error.lower()
    assert any("telegram/broken.html.j2" in r.getMessage() for r in caplog.records)
    assert subscriber(engine, sub).telegram_blocked_at is None


async def test_rate_limiter_window_caps_a_burst_of_late_slots():
    now = [0.0]
    limiter = RateLimiter(rate=5, per_chat_interval=0.0, clock=lambda: now[0])
    first = [asyncio.create_task(limiter.acquire(str(chat))) for chat in range(5)]
    await asyncio.sleep(0)
    # The loop was busy: the four slots due at 0.2…0.8 s all fire at 0.9 s.
    now[0] = 0.9
    await asyncio.wait_for(asyncio.gather(*first), 3)
    now[0] = 0.95
    late = asyncio.create_task(limiter.acquire("late"))
    await asyncio.sleep(0.3)
    # Spacing alone would let it go; a sixth message within one second must wait for the window.
    assert not late.done()
    now[0] = 1.05
    assert await asyncio.wait_for(late, 3) is True


async def test_rate_limiter_spacing_and_pause():
    now = [0.0]
    limiter = RateLimiter(rate=10, per_chat_interval=1.0, clock=lambda: now[0])
    await limiter.acquire("a")
    assert limiter._next_slot == pytest.approx(0.1)
    limiter.done("a")
    limiter.pause(5)
    assert limiter._paused_until == 5 and limiter._chat_ready["a"] == 1.0


async def test_an_unreachable_bot_api_keeps_messages_queued(engine, tg_settings):
    from tests.fakes.smtp import dead_port

    chats = _chats(engine, 2)
    down = tg_settings.model_copy(update={"telegram_api_base_url": f"http://127.0.0.1:{dead_port()}/bot"})
    report = await deliver_once_async(engine, down, worker_id="w")
    assert (report.sent, report.requeued) == (0, 2)
    for _s, row_id in chats.values():
        kept = row(engine, row_id)
        assert (kept.state, kept.attempts) == ("queued", 0) and "unreachable" in kept.last_error
