"""/start and /help: who the bot is and how to use it."""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, CommandHandler, filters

from bot import keyboards
from bot.common import Context, call, chat_of, deps, reply
from digests import subscriptions


async def start(update: Update, context: Context) -> None:
    """Greet the chat, remember it (and that it no longer blocks us), offer popular countries."""
    settings, engine = deps(context)
    result = await call(subscriptions.start, engine, settings, chat_of(update))
    popular = await call(subscriptions.popular_countries, engine)
    user = update.effective_user
    await reply(update, "start", keyboard=keyboards.start_keyboard(popular), result=result,
                first_name=user.first_name if user else "", chat=chat_of(update))


async def help_command(update: Update, context: Context) -> None:
    """Every command with an example, and the matching rule."""
    settings, _ = deps(context)
    await reply(update, "help", chat=chat_of(update), limit=settings.max_subscriptions,
                follow_limit=settings.max_follows)


def register(application: Application) -> None:
    new_messages = filters.UpdateType.MESSAGE  # edited messages and channel posts are ignored
    application.add_handler(CommandHandler("start", start, filters=new_messages))
    application.add_handler(CommandHandler("help", help_command, filters=new_messages))
