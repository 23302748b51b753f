"""What nobody else handled: unknown commands, chatter, and buttons from the past. Register last."""

from __future__ import annotations

from telegram import Update
from telegram.constants import ChatType
from telegram.ext import Application, CallbackQueryHandler, MessageHandler, filters

from bot.common import Context, log, reply, toast


async def unknown_command(update: Update, context: Context) -> None:
    """Point at /help; in groups only when the command was addressed to this bot."""
    message = update.message
    if message is None or not message.text:
        return
    command = message.text.split()[0]
    if message.chat.type != ChatType.PRIVATE and not command.endswith(f"@{context.bot.username}"):
        return  # another bot's command
    await reply(update, "unknown_command", command=command.split("@")[0][:40])


async def chatter(update: Update, context: Context) -> None:
    """Free text in a private chat: the bot only understands commands."""
    await reply(update, "text_hint")


async def stale_button(update: Update, context: Context) -> None:
    """Callback data no handler accepts: tampered with, or from a keyboard the bot no longer uses."""
    query = update.callback_query
    log.info("ignored callback data %r from user %s (update %s)", (query.data or "")[:80] if query else None,
             update.effective_user.id if update.effective_user else None, update.update_id)
    await toast(update, "stale")


def register(application: Application) -> None:
    application.add_handler(MessageHandler(filters.UpdateType.MESSAGE & filters.COMMAND, unknown_command))
    application.add_handler(MessageHandler(
        filters.UpdateType.MESSAGE & filters.ChatType.PRIVATE & filters.TEXT & ~filters.COMMAND, chatter))
    application.add_handler(CallbackQueryHandler(stale_button))
