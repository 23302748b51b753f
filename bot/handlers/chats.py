"""Changes to the chat itself: a group upgraded to a supergroup, the bot blocked or removed."""

from __future__ import annotations

from telegram import Update
from telegram.constants import ChatMemberStatus
from telegram.ext import Application, ChatMemberHandler, MessageHandler, filters

from bot.common import Context, call, deps, log
from digests import outbox, subscriptions


async def migrated(update: Update, context: Context) -> None:
    """Follow a group to its supergroup id (its subscriptions and queued messages move with it)."""
    message = update.effective_message
    if message is None or not message.migrate_to_chat_id:
        return
    _, engine = deps(context)
    log.info("chat %s migrated to %s", message.chat.id, message.migrate_to_chat_id)
    await call(outbox.migrate_chat, engine, old_chat_id=message.chat.id,
               new_chat_id=message.migrate_to_chat_id, subscriber_id=None)


async def membership(update: Update, context: Context) -> None:
    """The bot was blocked or removed: stop sending there until the chat writes /start again."""
    change = update.my_chat_member
    if change is None:
        return
    if change.new_chat_member.status in (ChatMemberStatus.BANNED, ChatMemberStatus.LEFT):
        _, engine = deps(context)
        await call(subscriptions.mark_blocked, engine, change.chat.id)


def register(application: Application) -> None:
    application.add_handler(MessageHandler(filters.StatusUpdate.MIGRATE, migrated))
    application.add_handler(ChatMemberHandler(membership, ChatMemberHandler.MY_CHAT_MEMBER))
