"""Telegram: send outbox rows with PTB's Bot under Telegram's limits, and map errors to outcomes.

Limits are ours to keep (PTB's AIORateLimiter retries nothing by default and has no per-chat
pause): at most this worker's share of TELEGRAM_MAX_RATE messages/s overall (the worker sets it
from the live workers' heartbeats) and TELEGRAM_PER_CHAT_INTERVAL seconds
between two messages to one chat, many chats in parallel. A 429 pauses everything for its
retry_after, then the same message is tried again.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import logging
import time
import warnings
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from telegram import Bot, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)

from digests.channels import Outcome
from digests.config import Settings

log = logging.getLogger(__name__)

# Seconds of missed send slots the limiter may make up for.
CATCH_UP = 0.1
# A message that keeps hitting 429 goes back to the queue rather than holding its chat forever.
MAX_FLOOD_WAITS = 5
# Texts Telegram sends for chats that are gone for good (compared lower-cased: PTB re-capitalises).
GONE_CHAT = ("chat not found", "user is deactivated", "bot was kicked", "bot was blocked", "chat was deleted")
TEMPLATE_BUGS = ("can't parse entities", "message is too long", "text must be non-empty")


class TelegramRow(Protocol):
    id: int | None
    recipient: str
    body: str
    template: str


Report = Callable[[TelegramRow, Outcome], Awaitable[None]]


def retry_after_seconds(exc: RetryAfter) -> float:
    """retry_after as seconds, whether PTB gives an int or a timedelta (it is moving to timedelta)."""
    with warnings.catch_warnings():
        # Reading the int form warns about the coming timedelta; either form is fine here.
        warnings.simplefilter("ignore")
        value = exc.retry_after
    if isinstance(value, dtm.timedelta):
        return value.total_seconds()
    return float(value)


async def _sleep(seconds: float, stop: asyncio.Event | None) -> bool:
    """Sleep, waking early when `stop` is set; True if stopped."""
    if stop is None:
        await asyncio.sleep(seconds)
        return False
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


class RateLimiter:
    """Spacing limiter: one global slot every 1/rate s, and a per-chat gap after each answer.

    Slots keep sends smooth; a sliding one-second window on top caps bursts when the event loop
    was busy and several late slots fire together. The per-chat gap is counted from when Telegram
    answered, so network jitter can never make two messages to one chat arrive too close.
    """

    def __init__(self, rate: float, per_chat_interval: float, clock: Callable[[], float] = time.monotonic):
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.window = max(1, int(rate)) if rate > 0 else 0
        self.per_chat_interval = per_chat_interval
        self.clock = clock
        self._next_slot = 0.0
        self._paused_until = 0.0
        self._granted: deque[float] = deque()
        self._chat_ready: dict[str, float] = {}

    async def acquire(self, chat: str, stop: asyncio.Event | None = None) -> bool:
        """Wait for this chat's turn; False if `stop` was set meanwhile (the turn is given up)."""
        while True:
            now = self.clock()
            wait = max(self._chat_ready.get(chat, 0.0), self._paused_until) - now
            if wait > 0:
                if await _sleep(wait, stop):
                    return False
                continue
            # A slot missed by a late wake-up (a busy event loop or CPU) may still be used a little
            # later, so lateness does not lower the rate; the one-second window caps the catch-up.
            slot = max(self._next_slot, now - CATCH_UP)
            self._next_slot = slot + self.interval
            if slot > now and await _sleep(slot - now, stop):
                return False
            now = self.clock()
            if self._paused_until > now:
                continue  # a 429 arrived while we waited for our slot: wait it out, queue again
            if self.window:
                while self._granted and now - self._granted[0] >= 1.0:
                    self._granted.popleft()
                if len(self._granted) >= self.window:
                    if await _sleep(self._granted[0] + 1.0 - now, stop):
                        return False
                    continue
                self._granted.append(now)
            return True

    def set_rate(self, rate: float) -> None:
        """This worker's share of the bot's rate changed (a worker joined or left)."""
        interval = 1.0 / rate if rate > 0 else 0.0
        if interval == self.interval:
            return
        self.interval = interval
        # The burst window is that of the share, so workers together stay under the bot's cap.
        self.window = max(1, int(rate)) if rate > 0 else 0

    def done(self, chat: str) -> None:
        self._chat_ready[chat] = self.clock() + self.per_chat_interval
        if len(self._chat_ready) > 50_000:  # forget chats whose gap is long over
            now = self.clock()
            self._chat_ready = {c: t for c, t in self._chat_ready.items() if t > now}

    def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, self.clock() + seconds)


class TelegramSender:
    """Owns a PTB Bot and a limiter; both live as long as the worker so limits hold across batches."""

    def __init__(self, settings: Settings, *, bot: Bot | None = None) -> None:
        self.settings = settings
        # Built on first use, off the event loop: its HTTP client and TLS context take tens of ms,
        # which a worker starting both lanes would otherwise spend before its first email.
        self._bot = bot
        self.limiter = RateLimiter(settings.telegram_max_rate, settings.telegram_per_chat_interval)
        self._ready = False
        # Groups that became supergroups during this worker's life: old id -> new id.
        self.migrations: dict[str, str] = {}

    def _make_bot(self) -> Bot:
        s = self.settings
        return Bot(
            s.telegram_bot_token, base_url=s.telegram_api_base_url, base_file_url=s.telegram_api_file_url
        )

    @property
    def bot(self) -> Bot:
        if self._bot is None:
            self._bot = self._make_bot()
        return self._bot

    async def start(self) -> None:
        if self._bot is None:
            self._bot = await asyncio.to_thread(self._make_bot)
        if not self._ready:
            await self.bot.initialize()
            self._ready = True

    async def close(self) -> None:
        if self._ready:
            await self.bot.shutdown()
            self._ready = False

    async def send(self, row: TelegramRow, stop: asyncio.Event | None = None) -> Outcome:
        """Send one row, waiting out 429s and following a migrated group; never raises TelegramError.

        When `stop` is set while it waits for its turn, the row is handed back unsent ('requeue').
        """
        chat = self.migrations.get(row.recipient, row.recipient)
        migrated_to: int | None = int(chat) if chat != row.recipient else None
        floods = hops = 0
        while True:
            if not await self.limiter.acquire(chat, stop):
                return Outcome("requeue", None)
            try:
                await self.bot.send_message(
                    chat_id=int(chat),
                    text=row.body,
                    parse_mode=ParseMode.HTML,
                    link_preview_options=LinkPreviewOptions(is_disabled=True),
                )
                return Outcome("sent", new_chat_id=migrated_to)
            except RetryAfter as exc:
                seconds = retry_after_seconds(exc)
                floods += 1
                log.warning("flood control: waiting %.1f s (chat %s, message %s)", seconds, chat, row.id)
                self.limiter.pause(seconds)
                if floods >= MAX_FLOOD_WAITS:
                    return Outcome("requeue", f"flood control: {exc}", delay=seconds)
            except ChatMigrated as exc:
                new = str(exc.new_chat_id)
                hops += 1
                if new == chat or hops > 3:
                    return Outcome("dead", f"chat migration loop: {exc}")
                log.info("chat %s migrated to %s; resending message %s there", chat, new, row.id)
                self.migrations[row.recipient] = new
                self.migrations[chat] = new
                chat, migrated_to = new, int(new)
            except Forbidden as exc:
                return Outcome("blocked", f"Forbidden: {exc.message}")
            except BadRequest as exc:
                text = exc.message.lower()
                if any(gone in text for gone in GONE_CHAT):
                    return Outcome("blocked", f"Bad Request: {exc.message}")
                if any(bug in text for bug in TEMPLATE_BUGS):
                    log.error(
                        "Telegram refused message %s rendered from template %r: %s (a template bug)",
                        row.id,
                        row.template or "?",
                        exc.message,
                    )
                return Outcome("dead", f"Bad Request: {exc.message} (template {row.template or '?'})")
            except TimedOut as exc:
                return Outcome("retry", f"timed out: {exc.message}")
            except InvalidToken as exc:
                # The whole bot is misconfigured: keep the message for when the token is fixed.
                log.error("Telegram rejected the bot token: %s", exc.message)
                return Outcome(
                    "requeue", f"invalid token: {exc.message}", delay=self.settings.delivery_retry_base
                )
            except NetworkError as exc:
                return Outcome("retry", f"network error: {exc.message}")
            except TelegramError as exc:
                return Outcome("retry", f"{type(exc).__name__}: {exc.message}")
            finally:
                self.limiter.done(chat)

    async def _send_chat(
        self, rows: Sequence[TelegramRow], report: Report, stop: asyncio.Event | None
    ) -> None:
        """One chat's rows in order; after a 'blocked', the rest are not attempted."""
        gone: Outcome | None = None
        for row in rows:
            if stop is not None and stop.is_set():
                await report(row, Outcome("requeue", None))
                continue
            if gone is not None:
                await report(row, gone)
                continue
            outcome = await self.send(row, stop)
            if outcome.status == "blocked":
                gone = Outcome("cancelled", outcome.error)
            await report(row, outcome)

    async def send_groups(
        self, groups: Sequence[Sequence[TelegramRow]], report: Report, *, stop: asyncio.Event | None = None
    ) -> None:
        """Send every group (one chat each) concurrently under the limits, reporting each row."""
        if not groups:
            return
        try:
            await self.start()
        except (NetworkError, InvalidToken) as exc:
            log.error("Telegram Bot API unreachable (%s); messages stay queued", exc)
            for group in groups:
                for row in group:
                    await report(
                        row,
                        Outcome("requeue", f"Bot API unreachable: {exc}", self.settings.delivery_retry_base),
                    )
            return
        # A failure settling one row (the database) stops the others rather than leaving them running.
        async with asyncio.TaskGroup() as tasks:
            for group in groups:
                tasks.create_task(self._send_chat(group, report, stop))
