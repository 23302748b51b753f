"""/latest [TERMS]: the newest matching articles, now."""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, CommandHandler, filters

from bot.common import Context, argument_text, call, deps, reply
from digests import subscriptions
from digests.subscriptions import InvalidInput

LATEST_COUNT = 8  # titles and links of eight articles stay well under 4096 characters


async def latest(update: Update, context: Context) -> None:
    """The newest articles for TERMS, or for what the chat follows."""
    _, engine = deps(context)
    try:
        result = await call(subscriptions.latest, engine, update.effective_chat.id, argument_text(update),
                            limit=LATEST_COUNT)
    except InvalidInput as exc:
        return await reply(update, "bad_terms", error=exc, command="latest")
    await reply(update, "latest", result=result)


def register(application: Application) -> None:
    application.add_handler(CommandHandler("latest", latest, filters=filters.UpdateType.MESSAGE))
