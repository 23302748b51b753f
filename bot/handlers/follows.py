"""Following names and phrases (/follow, /unfollow) and searching articles (/search)."""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, CommandHandler, filters

from bot import keyboards
from bot.common import Context, argument_text, call, chat_of, deps, may_manage, reply, toast
from digests import follows, search

SEARCH_COUNT = 8  # like /latest: eight titles with links stay well under 4096 characters


async def _refuse(update: Update) -> None:
    if update.callback_query:
        await toast(update, "group_admins_only", alert=True)
    else:
        await reply(update, "group_admins_only")


async def follow(update: Update, context: Context) -> None:
    """/follow PHRASE: follow it, say what it would have brought lately."""
    if not await may_manage(update, context):
        return await _refuse(update)
    settings, engine = deps(context)
    text = argument_text(update)
    if not text:
        return await reply(update, "follow_usage", limit=settings.max_follows)
    result = await call(follows.follow_chat, engine, settings, chat_of(update), text)
    await reply(update, "followed", keyboard=keyboards.follow_result_keyboard(result), result=result)


async def unfollow(update: Update, context: Context) -> None:
    """/unfollow PHRASE, or /unfollow all."""
    if not await may_manage(update, context):
        return await _refuse(update)
    _, engine = deps(context)
    text = argument_text(update)
    if not text:
        listed = await call(follows.listed_chat, engine, update.effective_chat.id)
        return await reply(update, "unfollow_usage", keyboard=keyboards.list_keyboard([], listed),
                           follows=listed)
    result = await call(follows.unfollow_chat, engine, update.effective_chat.id, text)
    await reply(update, "unfollowed", result=result)


async def search_command(update: Update, context: Context) -> None:
    """/search WORDS: recent articles with those words together, newest first."""
    _, engine = deps(context)
    result = await call(search.find, engine, argument_text(update), limit=SEARCH_COUNT)
    await reply(update, "search", result=result)


def register(application: Application) -> None:
    new_messages = filters.UpdateType.MESSAGE
    application.add_handler(CommandHandler("follow", follow, filters=new_messages))
    application.add_handler(CommandHandler("unfollow", unfollow, filters=new_messages))
    application.add_handler(CommandHandler("search", search_command, filters=new_messages))
