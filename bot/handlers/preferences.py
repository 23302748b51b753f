"""When digests come (/frequency, /time, /timezone, /settings, /pause, /resume) and /stop."""

from __future__ import annotations

from collections.abc import Callable

from telegram import Update
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, filters

from bot import keyboards
from bot.common import Context, argument_text, call, chat_of, deps, edit, may_manage, reply, toast
from digests import subscriptions
from digests.subscriptions import InvalidInput


async def _refuse(update: Update) -> None:
    if update.callback_query:
        await toast(update, "group_admins_only", alert=True)
    else:
        await reply(update, "group_admins_only")


def _setter(what: str, service: Callable) -> Callable:
    """A command handler for /frequency, /time or /timezone: validate, store, confirm."""

    async def handler(update: Update, context: Context) -> None:
        settings, engine = deps(context)
        text = argument_text(update)
        if not text:
            current = await call(subscriptions.chat_settings, engine, settings, update.effective_chat.id)
            return await reply(update, "setting_usage", what=what, current=current)
        if not await may_manage(update, context):
            return await _refuse(update)
        try:
            current = await call(service, engine, settings, chat_of(update), text)
        except InvalidInput as exc:
            return await reply(update, "setting_invalid", what=what, error=exc)
        await reply(update, "setting_saved", what=what, current=current)

    handler.__doc__ = f"/{what} VALUE: validate and store it."
    return handler


async def show_settings(update: Update, context: Context) -> None:
    """/settings: frequency, time, timezone, paused, and what is followed."""
    settings, engine = deps(context)
    current = await call(subscriptions.chat_settings, engine, settings, update.effective_chat.id)
    await reply(update, "settings", keyboard=keyboards.settings_keyboard(current), current=current)


def _pauser(paused: bool) -> Callable:
    async def handler(update: Update, context: Context) -> None:
        if not await may_manage(update, context):
            return await _refuse(update)
        settings, engine = deps(context)
        current = await call(subscriptions.set_paused, engine, settings, chat_of(update), paused)
        await reply(update, "paused" if paused else "resumed", current=current)

    handler.__doc__ = "/pause: no digests until /resume." if paused else "/resume: digests again."
    return handler


async def stop(update: Update, context: Context) -> None:
    """/stop: ask before deleting everything about this chat."""
    if not await may_manage(update, context):
        return await _refuse(update)
    await reply(update, "stop_confirm", keyboard=keyboards.confirm_keyboard("stop:y", "confirm_stop"))


async def on_button(update: Update, context: Context) -> None:
    """Frequency and pause buttons of /settings, and the /stop confirmation."""
    action = keyboards.decode(update.callback_query.data)
    if action is None:
        return await toast(update, "stale")
    if not await may_manage(update, context):
        return await _refuse(update)
    settings, engine = deps(context)
    chat = chat_of(update)
    if action.op == "stop:y":
        await call(subscriptions.stop, engine, chat.id)
        await toast(update, "done")
        return await edit(update, "stopped")
    if action.op == "f":
        current = await call(subscriptions.set_frequency, engine, settings, chat, action.value)
        await toast(update, "frequency_set", action.value)
    else:
        paused = action.value == "1"
        current = await call(subscriptions.set_paused, engine, settings, chat, paused)
        await toast(update, "paused" if paused else "resumed")
    await edit(update, "settings", keyboard=keyboards.settings_keyboard(current), current=current)


def _ops(*ops: str):
    return lambda data: isinstance(data, str) and (a := keyboards.decode(data)) is not None and a.op in ops


def register(application: Application) -> None:
    new_messages = filters.UpdateType.MESSAGE
    for name, service in (("frequency", subscriptions.set_frequency), ("time", subscriptions.set_time),
                          ("timezone", subscriptions.set_timezone)):
        application.add_handler(CommandHandler(name, _setter(name, service), filters=new_messages))
    application.add_handler(CommandHandler("settings", show_settings, filters=new_messages))
    application.add_handler(CommandHandler("pause", _pauser(True), filters=new_messages))
    application.add_handler(CommandHandler("resume", _pauser(False), filters=new_messages))
    application.add_handler(CommandHandler("stop", stop, filters=new_messages))
    application.add_handler(CallbackQueryHandler(on_button, pattern=_ops("f", "pz", "stop:y")))
