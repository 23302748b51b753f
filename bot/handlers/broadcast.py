"""/broadcast and /announcements, for the administrators in ADMIN_TELEGRAM_IDS only.

```mermaid
stateDiagram-v2
    [*] --> WAITING_TEXT: /broadcast (admin)
    WAITING_TEXT --> WAITING_TEXT: text Telegram would refuse
    WAITING_TEXT --> [*]: text ok -> draft stored, preview + buttons
    WAITING_TEXT --> [*]: /cancel
```
The buttons carry the draft's id (`bc:go:ID:t|e|b`, `bc:x:ID`, `bc:stop:ID`) and are handled
outside the conversation, so they keep working after a restart. Every button checks that the
person tapping is an admin: callback data can be forged by anyone.
"""

from __future__ import annotations

import asyncio
import logging
import re

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, MessageEntity, Update
from telegram.constants import ChatType, ParseMode
from telegram.error import BadRequest, RetryAfter, TelegramError
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
    MessageHandler,
    filters,
)

from bot.common import deps, in_session, is_admin
from bot.render import reply
from digests import broadcast, compose, telegram_html
from digests.db import session_scope

log = logging.getLogger(__name__)
GROUP = -1  # ahead of the general handlers, which must not also answer the admin's text
WAITING_TEXT = 1
LABELS = "telegram/broadcast_labels.txt.j2"
_CHANNEL_CODES = {"t": "telegram", "e": "email", "b": "both"}
_CALLBACK = re.compile(r"^bc:(go|x|stop):(\d{1,12})(?::([teb]))?$")
_TASKS_KEY = "broadcast_followers"


def _label(name: str, *args: object) -> str:
    module = compose.make_environment().get_template(LABELS).module
    return str(getattr(module, name)(*args)).strip()


def _channels_label(channels: str) -> str:
    return {"telegram": "Telegram", "email": "email", "both": "Telegram + email"}.get(channels, channels)


def choice_keyboard(announcement_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(_label("send_telegram"), callback_data=f"bc:go:{announcement_id}:t"),
                InlineKeyboardButton(_label("send_email"), callback_data=f"bc:go:{announcement_id}:e"),
                InlineKeyboardButton(_label("send_both"), callback_data=f"bc:go:{announcement_id}:b"),
            ],
            [InlineKeyboardButton(_label("discard"), callback_data=f"bc:x:{announcement_id}")],
        ]
    )


def stop_keyboard(announcement_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(_label("stop_sending"), callback_data=f"bc:stop:{announcement_id}")]]
    )


async def _say(message: Message, case: str, **values: object) -> Message:
    return await message.reply_text(
        reply("broadcast_reply", case=case, **values),
        parse_mode=ParseMode.HTML,
        disable_web_page_preview=True,
    )


# ---- the conversation -------------------------------------------------------------------------


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    """/broadcast: admins are asked for the text; anyone else is refused."""
    settings, _engine = deps(context)
    if not is_admin(update, settings):
        log.warning("non-admin /broadcast", extra={"user_id": getattr(update.effective_user, "id", None)})
        await _say(update.effective_message, "not_admin")
        raise ApplicationHandlerStop(ConversationHandler.END)
    if update.effective_chat is None or update.effective_chat.type != ChatType.PRIVATE:
        # Drafts and counts are for the admin's eyes, not for a group they happen to be in.
        await _say(update.effective_message, "private_only")
        raise ApplicationHandlerStop(ConversationHandler.END)
    await _say(update.effective_message, "ask_text")
    raise ApplicationHandlerStop(WAITING_TEXT)


# Entities that are formatting the admin chose (links Telegram detects by itself are not).
_FORMATTING = {
    MessageEntity.BOLD,
    MessageEntity.ITALIC,
    MessageEntity.UNDERLINE,
    MessageEntity.STRIKETHROUGH,
    MessageEntity.SPOILER,
    MessageEntity.CODE,
    MessageEntity.PRE,
    MessageEntity.TEXT_LINK,
    MessageEntity.BLOCKQUOTE,
    MessageEntity.EXPANDABLE_BLOCKQUOTE,
    MessageEntity.CUSTOM_EMOJI,
}


def _admin_text(message: Message) -> str:
    """Formatting made in the Telegram app arrives as entities: keep it as HTML; else the raw text
    (which may itself be Telegram HTML typed by hand, checked later)."""
    if any(e.type in _FORMATTING for e in message.entities or ()):
        return message.text_html
    return message.text or ""


async def receive_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    """The announcement text: checked, stored as a draft, previewed with the channel buttons."""
    settings, engine = deps(context)
    message = update.effective_message
    if not is_admin(update, settings):  # the admin list may have changed mid-conversation
        raise ApplicationHandlerStop(ConversationHandler.END)
    user, chat = update.effective_user, update.effective_chat

    def draft():
        with session_scope(engine) as session:
            announcement = broadcast.create_draft(
                session, text=_admin_text(message), created_by=user.id, admin_chat_id=chat.id
            )
            return announcement.id, announcement.body, broadcast.recipient_counts(session)

    try:
        announcement_id, body, counts = await asyncio.to_thread(draft)
    except broadcast.BroadcastError as exc:
        await _say(message, "invalid", problems=exc.problems[:10])
        raise ApplicationHandlerStop(WAITING_TEXT) from None
    shown = broadcast.preview(settings, body)
    await message.reply_text(shown.telegram, parse_mode=ParseMode.HTML, disable_web_page_preview=True)
    await message.reply_text(
        reply(
            "broadcast_reply",
            case="preview",
            email_subject=shown.email.subject,
            telegram_count=counts["telegram"],
            email_count=counts["email"],
        ),
        parse_mode=ParseMode.HTML,
        reply_markup=choice_keyboard(announcement_id),
    )
    raise ApplicationHandlerStop(ConversationHandler.END)


async def not_text(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> int:
    await _say(update.effective_message, "not_text")
    raise ApplicationHandlerStop(WAITING_TEXT)


async def abort(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> int:
    """/cancel while the bot waits for the text."""
    await _say(update.effective_message, "aborted")
    raise ApplicationHandlerStop(ConversationHandler.END)


# ---- buttons ------------------------------------------------------------------------------------


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Send to a channel, discard a draft, or stop a broadcast in flight (admins only)."""
    query = update.callback_query
    settings, engine = deps(context)
    if not is_admin(update, settings):
        log.warning(
            "non-admin broadcast button", extra={"user_id": getattr(update.effective_user, "id", None)}
        )
        await query.answer(_label("not_admin"), show_alert=True)
        raise ApplicationHandlerStop
    match = _CALLBACK.match(query.data or "")
    if match is None:
        await query.answer(_label("unknown"))
        raise ApplicationHandlerStop
    op, announcement_id, code = match.group(1), int(match.group(2)), match.group(3)
    try:
        if op == "go" and code:
            channels = _CHANNEL_CODES[code]
            message_id = query.message.message_id if query.message else None
            progress = await asyncio.to_thread(
                broadcast.queue,
                engine,
                settings,
                announcement_id,
                channels=channels,
                admin_message_id=message_id,
            )
            # Edit first, then answer: the answer tells the admin (and tests) that all is done.
            await _show(query.message, progress, final=progress.finished)
            await query.answer(_label("queued", progress.total))
            if not progress.finished and query.message is not None:
                _follow(context.application, query.message, announcement_id)
        elif op == "x":
            await asyncio.to_thread(broadcast.discard, engine, announcement_id)
            if query.message is not None:
                await _edit(
                    query.message, reply("broadcast_reply", case="discarded", id=announcement_id), None
                )
            await query.answer()
        elif op == "stop":
            progress = await asyncio.to_thread(broadcast.cancel, engine, announcement_id)
            await _show(query.message, progress, final=True)
            await query.answer(_label("stopped"))
        else:
            await query.answer(_label("unknown"))
    except broadcast.BroadcastError as exc:
        if exc.reason == "not_draft":
            await query.answer(reply("broadcast_reply", case="already", id=announcement_id), show_alert=True)
        else:
            await query.answer(_label("unknown"))
    raise ApplicationHandlerStop


async def _edit(message: Message, text: str, markup: InlineKeyboardMarkup | None) -> None:
    try:
        await message.edit_text(text, parse_mode=ParseMode.HTML, reply_markup=markup)
    except BadRequest as exc:
        if "not modified" not in str(exc).lower():
            raise


async def _show(message: Message | None, progress: broadcast.Progress, *, final: bool) -> None:
    if message is None:
        return
    case = "final" if final else "progress"
    text = reply("broadcast_reply", case=case, p=progress, channels=_channels_label(progress.channels))
    await _edit(message, text, None if final else stop_keyboard(progress.announcement_id))


def _follow(application: Application, message: Message, announcement_id: int) -> None:
    """Edit the admin's message with the counts every few seconds until nothing is left to send."""
    tasks: dict[int, asyncio.Task] = application.bot_data.setdefault(_TASKS_KEY, {})
    if announcement_id in tasks and not tasks[announcement_id].done():
        return
    tasks[announcement_id] = application.create_task(
        _follow_loop(application, message, announcement_id), name=f"broadcast-{announcement_id}"
    )


async def _follow_loop(application: Application, message: Message, announcement_id: int) -> None:
    settings, engine = application.bot_data["settings"], application.bot_data["engine"]
    last = None
    # PTB's Application.stop() waits for tasks made with create_task: stop following when it stops.
    while application.running:
        await asyncio.sleep(settings.broadcast_progress_seconds)
        if not application.running:
            return
        try:
            progress = await in_session(engine, broadcast.progress, announcement_id)
            if progress.finished:
                await _show(message, progress, final=True)
                return
            if progress != last:
                await _show(message, progress, final=False)
                last = progress
        except RetryAfter as exc:
            await asyncio.sleep(float(getattr(exc, "retry_after", 1) or 1))
        except TelegramError:
            # A progress message that cannot be edited must not stop the broadcast itself.
            log.exception("could not update broadcast progress", extra={"announcement_id": announcement_id})
        except Exception:
            log.exception("stopped following broadcast progress", extra={"announcement_id": announcement_id})
            return


# ---- /announcements ----------------------------------------------------------------------------


def _excerpt(body: str) -> str:
    text = " ".join(telegram_html.visible_text(body).split())
    return text if len(text) <= 80 else text[:79] + "…"


async def announcements(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/announcements: the latest broadcasts with their counts (admins only)."""
    settings, engine = deps(context)
    if not is_admin(update, settings):
        await _say(update.effective_message, "not_admin")
        raise ApplicationHandlerStop
    if update.effective_chat is None or update.effective_chat.type != ChatType.PRIVATE:
        await _say(update.effective_message, "private_only")
        raise ApplicationHandlerStop
    rows = await in_session(engine, broadcast.history, limit=10)
    await _say(update.effective_message, "list", rows=rows, excerpt=_excerpt)
    raise ApplicationHandlerStop


def register(application: Application) -> None:
    conversation = ConversationHandler(
        entry_points=[CommandHandler("broadcast", start)],
        states={
            WAITING_TEXT: [
                MessageHandler(filters.UpdateType.MESSAGE & filters.TEXT & ~filters.COMMAND, receive_text),
                MessageHandler(filters.UpdateType.MESSAGE & ~filters.COMMAND, not_text),
            ]
        },
        fallbacks=[CommandHandler("cancel", abort)],
        name="broadcast",
        # One conversation per admin per chat; edited messages are not answers.
        per_chat=True,
        per_user=True,
    )
    application.add_handler(conversation, group=GROUP)
    application.add_handler(CallbackQueryHandler(on_button, pattern=r"^bc:"), group=GROUP)
    application.add_handler(CommandHandler("announcements", announcements), group=GROUP)
