"""Following and unfollowing countries, sections and festivals: commands and their buttons.

```mermaid
flowchart LR
  subscribe["/subscribe TERMS"] -->|unknown word| suggest[suggestion buttons] -->|tap| followed
  subscribe -->|no terms| browser[country pages / sections / festivals] -->|tap toggles| browser
  list["/list"] -->|✖ tap, a term or a phrase| list
  list -->|Unsubscribe from all| confirm -->|yes| emptied
  unsubscribe["/unsubscribe all"] --> confirm
```
"""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, filters

from bot import keyboards
from bot.common import Context, argument_text, call, chat_of, deps, edit, may_manage, reply, toast
from digests import catalog, follows, subscriptions
from digests.catalog import COUNTRY, FESTIVAL
from digests.subscriptions import InvalidInput

MAX_REMOVE_BUTTONS = 50  # Telegram refuses keyboards of more than about 100 buttons


async def _refuse(update: Update) -> None:
    if update.callback_query:
        await toast(update, "group_admins_only", alert=True)
    else:
        await reply(update, "group_admins_only")


async def subscribe(update: Update, context: Context) -> None:
    """/subscribe TERMS: follow them; with no terms, open the browser."""
    if not await may_manage(update, context):
        return await _refuse(update)
    settings, engine = deps(context)
    text = argument_text(update)
    if not text:
        followed = await call(subscriptions.list_subscriptions, engine, update.effective_chat.id)
        return await reply(update, "browse", keyboard=keyboards.countries_keyboard(0, followed),
                           countries=len(catalog.countries()))
    try:
        result = await call(subscriptions.subscribe_text, engine, settings, chat_of(update), text)
    except InvalidInput as exc:
        return await reply(update, "bad_terms", error=exc, command="subscribe")
    await reply(update, "subscribed", keyboard=keyboards.suggestions_keyboard(result.unknown), result=result)


async def unsubscribe(update: Update, context: Context) -> None:
    """/unsubscribe TERMS, or /unsubscribe all (asks first)."""
    if not await may_manage(update, context):
        return await _refuse(update)
    _, engine = deps(context)
    text = argument_text(update)
    chat_id = update.effective_chat.id
    if not text:
        terms = await call(subscriptions.list_subscriptions, engine, chat_id)
        markup = keyboards.list_keyboard(terms[:MAX_REMOVE_BUTTONS])
        return await reply(update, "unsubscribe_usage", keyboard=markup, terms=terms)
    if text.casefold() in {"all", "everything", "*"}:
        return await reply(update, "unsubscribe_all_confirm",
                           keyboard=keyboards.confirm_keyboard("ua:y", "confirm_unsubscribe_all"))
    try:
        result = await call(subscriptions.unsubscribe_text, engine, chat_id, text)
    except InvalidInput as exc:
        return await reply(update, "bad_terms", error=exc, command="unsubscribe")
    await reply(update, "unsubscribed", result=result)


async def list_command(update: Update, context: Context) -> None:
    """/list: what this chat follows, a remove button each."""
    _, engine = deps(context)
    await _send_list(update, engine, update.effective_chat.id, edit_it=False)


async def _send_list(update: Update, engine, chat_id: int, *, edit_it: bool) -> None:
    terms = await call(subscriptions.list_subscriptions, engine, chat_id)
    phrases = await call(follows.listed_chat, engine, chat_id)
    room = max(MAX_REMOVE_BUTTONS - len(terms), 0)
    markup = keyboards.list_keyboard(terms[:MAX_REMOVE_BUTTONS], phrases[:room])
    send = edit if edit_it else reply
    await send(update, "list", keyboard=markup, terms=terms, phrases=phrases)


async def countries(update: Update, context: Context) -> None:
    """/countries: those with articles lately, with counts, and the browser for all."""
    _, engine = deps(context)
    counts = await call(subscriptions.recent_counts, engine, COUNTRY)
    await reply(update, "countries", keyboard=keyboards.countries_keyboard(0, []), counts=counts,
                total=len(catalog.countries()), days=subscriptions.RECENT_DAYS)


async def sections(update: Update, context: Context) -> None:
    """/sections: every section with its recent article count; tap to follow."""
    _, engine = deps(context)
    counts = await call(subscriptions.section_counts, engine)
    followed = await call(subscriptions.list_subscriptions, engine, update.effective_chat.id)
    await reply(update, "sections", keyboard=keyboards.sections_keyboard(followed), counts=counts,
                days=subscriptions.RECENT_DAYS)


async def festivals(update: Update, context: Context) -> None:
    """/festivals: festivals (and awards, markets) with articles lately, with counts; tap to follow."""
    _, engine = deps(context)
    counts = await call(subscriptions.recent_counts, engine, FESTIVAL)
    followed = await call(subscriptions.list_subscriptions, engine, update.effective_chat.id)
    await reply(update, "festivals", keyboard=keyboards.festivals_keyboard(followed), counts=counts,
                days=subscriptions.RECENT_DAYS)


# ----------------------------------------------------------------------------- buttons


async def on_button(update: Update, context: Context) -> None:
    """Every subscription button; changes need the same rights as the commands."""
    action = keyboards.decode(update.callback_query.data)
    if action is None:  # the pattern already checked; this guards a race with a catalog change
        return await toast(update, "stale")
    settings, engine = deps(context)
    chat = chat_of(update)
    if action.op in {"p", "sec", "fes"}:
        followed = await call(subscriptions.list_subscriptions, engine, chat.id)
        markup = (keyboards.countries_keyboard(action.page, followed) if action.op == "p"
                  else keyboards.sections_keyboard(followed) if action.op == "sec"
                  else keyboards.festivals_keyboard(followed))
        await edit(update, None, keyboard=markup)
        return await update.callback_query.answer()
    if not await may_manage(update, context):
        return await _refuse(update)
    term = action.term
    if action.op == "s":
        result = await call(subscriptions.subscribe, engine, settings, chat, [term])
        await _answer_subscribe(update, result, term)
    elif action.op == "t":
        now_on, result = await call(subscriptions.toggle, engine, settings, chat, term)
        if result is not None:
            await _answer_subscribe(update, result, term)
        else:
            await toast(update, "removed", term.value)
        followed = await call(subscriptions.list_subscriptions, engine, chat.id)
        await edit(update, None, keyboard=keyboards.browser_keyboard(term, action.page, followed))
    elif action.op == "r":
        result = await call(subscriptions.unsubscribe, engine, chat.id, [term])
        await toast(update, "removed" if result.removed else "not_followed", term.value)
        await _send_list(update, engine, chat.id, edit_it=True)
    elif action.op == "rf":
        subscriber_id = await call(follows.chat_subscriber, engine, chat.id)
        phrase = None
        if subscriber_id is not None:
            phrase = await call(follows.remove, engine, subscriber_id, int(action.value))
        await toast(update, "removed" if phrase else "stale", *((phrase,) if phrase else ()))
        await _send_list(update, engine, chat.id, edit_it=True)
    elif action.op == "ua":
        await update.callback_query.answer()
        await reply(update, "unsubscribe_all_confirm",
                    keyboard=keyboards.confirm_keyboard("ua:y", "confirm_unsubscribe_all"))
    elif action.op == "ua:y":
        removed = await call(subscriptions.unsubscribe_all, engine, chat.id)
        await toast(update, "done")
        await edit(update, "unsubscribed_all", removed=removed)


async def _answer_subscribe(update: Update, result: subscriptions.SubscribeResult, term) -> None:
    if result.added:
        await toast(update, "added", term.value)
    elif result.already:
        await toast(update, "already", term.value)
    else:
        await toast(update, "over_limit", result.limit, alert=True)


async def cancel(update: Update, context: Context) -> None:
    """The Cancel button of any confirmation."""
    await toast(update, "cancelled")
    await edit(update, "cancelled")


def _ops(*ops: str):
    return lambda data: isinstance(data, str) and (a := keyboards.decode(data)) is not None and a.op in ops


def register(application: Application) -> None:
    new_messages = filters.UpdateType.MESSAGE
    application.add_handler(CommandHandler("subscribe", subscribe, filters=new_messages))
    application.add_handler(CommandHandler("unsubscribe", unsubscribe, filters=new_messages))
    application.add_handler(CommandHandler("list", list_command, filters=new_messages))
    application.add_handler(CommandHandler("countries", countries, filters=new_messages))
    application.add_handler(CommandHandler("sections", sections, filters=new_messages))
    application.add_handler(CommandHandler("festivals", festivals, filters=new_messages))
    buttons = _ops("s", "t", "r", "rf", "p", "sec", "fes", "ua", "ua:y")
    application.add_handler(CallbackQueryHandler(on_button, pattern=buttons))
    application.add_handler(CallbackQueryHandler(cancel, pattern=_ops("x")))
