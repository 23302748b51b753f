"""What every handler shares: its dependencies, who may do what, and sending a rendered reply."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.engine import Engine
from telegram import InlineKeyboardMarkup, Update
from telegram.constants import ChatMemberStatus, ChatType
from telegram.error import BadRequest, TelegramError
from telegram.ext import ContextTypes

from bot import render
from digests.config import Settings
from digests.db import session_scope
from digests.subscriptions import Chat

log = logging.getLogger("clapper.bot")
T = TypeVar("T")
Context = ContextTypes.DEFAULT_TYPE
# Telegram sends messages of anonymous group admins from this user, with sender_chat = the group.
ANONYMOUS_ADMIN_ID = 1087968824


def deps(context: Context) -> tuple[Settings, Engine]:
    return context.bot_data["settings"], context.bot_data["engine"]


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a (blocking, database) service function without stalling the bot's event loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def in_session(engine: Engine, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """`call` for a service function that takes a session: `fn(session, …)` in one transaction."""

    def run() -> T:
        with session_scope(engine) as session:
            return fn(session, *args, **kwargs)

    return await asyncio.to_thread(run)


def chat_of(update: Update) -> Chat:
    chat = update.effective_chat
    assert chat is not None
    return Chat(chat.id, chat.type, chat.title)


def argument_text(update: Update) -> str:
    """Everything after the command, as typed (commas and newlines kept)."""
    message = update.effective_message
    text = (message.text or "") if message else ""
    parts = text.split(maxsplit=1)
    return parts[1].strip() if len(parts) > 1 else ""


def is_admin(update: Update, settings: Settings) -> bool:
    """A Clapper administrator (ADMIN_TELEGRAM_IDS), not a group admin."""
    user = update.effective_user
    return user is not None and user.id in settings.admin_telegram_ids


async def may_manage(update: Update, context: Context) -> bool:
    """In a group only its administrators may change what it follows; in a private chat, its user."""
    chat = update.effective_chat
    if chat is None or chat.type == ChatType.CHANNEL:
        return False
    if chat.type == ChatType.PRIVATE:
        return True
    message = update.message
    if message is not None and message.sender_chat is not None and message.sender_chat.id == chat.id:
        return True  # an anonymous administrator, posting as the group
    user = update.effective_user
    if user is None or user.id == ANONYMOUS_ADMIN_ID:
        return False
    try:
        member = await context.bot.get_chat_member(chat.id, user.id)
    except TelegramError as exc:
        log.warning("getChatMember failed for chat %s user %s: %s", chat.id, user.id, exc)
        return False
    return member.status in (ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.OWNER)


async def reply(update: Update, template: str, /, *, keyboard: InlineKeyboardMarkup | None = None,
                **context: Any) -> None:
    """Send templates/telegram/TEMPLATE.html.j2 to the chat the update came from."""
    chat = update.effective_chat
    if chat is None:
        return
    await chat.get_bot().send_message(chat.id, render.reply(template, **context), reply_markup=keyboard)


async def edit(update: Update, template: str | None, /, *, keyboard: InlineKeyboardMarkup | None = None,
               **context: Any) -> None:
    """Redraw the message a button belongs to (text and keyboard, or just the keyboard)."""
    query = update.callback_query
    if query is None or query.message is None:
        return
    try:
        if template is None:
            await query.edit_message_reply_markup(reply_markup=keyboard)
        else:
            await query.edit_message_text(render.reply(template, **context), reply_markup=keyboard)
    except BadRequest as exc:
        # Two quick taps redraw the same thing; a deleted message cannot be redrawn. Neither matters.
        text = str(exc).lower()
        if "not modified" not in text and "not found" not in text and "can't be edited" not in text:
            raise


async def toast(update: Update, label: str, /, *args: Any, alert: bool = False) -> None:
    """Answer a button tap with a short pop-up (templates/telegram/labels.txt.j2)."""
    query = update.callback_query
    if query is not None:
        await query.answer(render.label(label, *args), show_alert=alert)
