"""/stats for Clapper's administrators (ADMIN_TELEGRAM_IDS); everyone else is refused, buttons too."""

from __future__ import annotations

from telegram import Update
from telegram.constants import ChatType
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, filters

from bot import keyboards
from bot.common import Context, call, deps, edit, is_admin, log, reply, toast
from digests import subscriptions


async def stats(update: Update, context: Context) -> None:
    """Numbers for admins, in a private chat only (a group would show them to everyone)."""
    settings, engine = deps(context)
    if not is_admin(update, settings):
        log.info("refused /stats to user %s", update.effective_user.id if update.effective_user else None)
        return await reply(update, "admins_only")
    if update.effective_chat.type != ChatType.PRIVATE:
        return await reply(update, "admins_private_only")
    numbers = await call(subscriptions.stats, engine)
    await reply(update, "stats", keyboard=keyboards.stats_keyboard(), stats=numbers)


async def refresh(update: Update, context: Context) -> None:
    """The Refresh button: checked like the command, since anyone can send any callback data."""
    settings, engine = deps(context)
    if not is_admin(update, settings) or update.effective_chat.type != ChatType.PRIVATE:
        user = update.effective_user
        log.info("refused stats button to user %s", user.id if user else None)
        return await toast(update, "admins_only", alert=True)
    numbers = await call(subscriptions.stats, engine)
    await update.callback_query.answer()
    await edit(update, "stats", keyboard=keyboards.stats_keyboard(), stats=numbers)


def register(application: Application) -> None:
    application.add_handler(CommandHandler("stats", stats, filters=filters.UpdateType.MESSAGE))
    application.add_handler(CallbackQueryHandler(refresh, pattern="^adm:stats$"))
