"""Holding conversations with the real PTB application over HTTP to the fake Bot API.

Updates are processed one at a time, so a command that must get no answer is checked with a
barrier: send it, then /help, and the next reply must be /help's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from telegram.ext import Application

from bot.app import build_application, polling
from digests.config import Settings
from tests.fakes.botapi import FakeBotAPI, SentMessage

ADMIN = 4242
WAIT = 10.0  # seconds; generous, the machine is shared


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    # The per-chat limit is off: these tests are about conversations, not flood control.
    async with FakeBotAPI(per_chat_interval=None) as server:
        yield server


@pytest.fixture
def bot_settings(settings: Settings, api: FakeBotAPI) -> Settings:
    return settings.model_copy(update={
        "telegram_bot_token": api.token,
        "telegram_api_base_url": api.base_url,
        "telegram_api_file_url": api.base_file_url,
        "admin_telegram_ids": [ADMIN],
    })


@pytest.fixture
async def app(bot_settings, engine, api) -> AsyncIterator[Application]:
    application = build_application(bot_settings, engine)
    async with polling(application, long_poll=1):
        yield application


@dataclass
class Tap:
    answer: dict
    edits: list[dict]


class Talk:
    """One user in one chat."""

    def __init__(self, api: FakeBotAPI, chat_id: int, user_id: int | None = None,
                 chat_type: str | None = None, title: str | None = None):
        self.api, self.chat_id, self.user_id = api, chat_id, user_id if user_id is not None else chat_id
        self.chat_type, self.title = chat_type, title

    async def say(self, text: str, replies: int = 1) -> SentMessage:
        """Send `text`; return the bot's (last) reply."""
        before = len(self.api.messages_for(self.chat_id))
        self.api.push_message(self.chat_id, text, user_id=self.user_id, chat_type=self.chat_type,
                              chat_title=self.title)
        found = await self.api.wait_messages(self.chat_id, before + replies, within=WAIT)
        return found[-1]

    async def says_nothing(self, send) -> None:
        """`send()` pushes an update that must get no reply: /help right after must be next."""
        before = len(self.api.messages_for(self.chat_id))
        send()
        reply = await self.say("/help")
        assert "Clapper commands" in reply.text
        assert len(self.api.messages_for(self.chat_id)) == before + 1

    async def tap(self, message: SentMessage | int, data: str) -> Tap:
        """Tap a button with `data` under `message`; wait for the callback answer."""
        message_id = message if isinstance(message, int) else message.message_id
        answers, edits = len(self.api.callback_answers), len(self.api.edits)
        self.api.push_callback(self.chat_id, message_id, data, user_id=self.user_id)
        await self.api.wait_for(lambda: len(self.api.callback_answers) > answers, WAIT)
        answer = self.api.callback_answers[answers]
        await self.barrier()  # the redraw, if any, comes after the answer within the same update
        return Tap(answer, self.api.edits[edits:])

    async def barrier(self) -> None:
        """Updates are handled one at a time: once /help is answered, everything before it is done."""
        before = len(self.api.messages_for(self.chat_id))
        self.api.push_message(self.chat_id, "/help", user_id=self.user_id, chat_type=self.chat_type,
                              chat_title=self.title)
        await self.api.wait_for(lambda: any("Clapper commands" in m.text
                                            for m in self.api.messages_for(self.chat_id)[before:]), WAIT)
