"""/email ADDRESS, /verify CODE, /email off: email digests for a chat, with double opt-in.

/email you@x.org -> code emailed (via the outbox) -> /verify 123456 -> email digests on
"""

from __future__ import annotations

import logging

from telegram import Chat, Update
from telegram.constants import ChatType, ParseMode
from telegram.ext import Application, ApplicationHandlerStop, CommandHandler, ContextTypes

from bot.common import deps, in_session
from bot.render import reply
from digests import emails

log = logging.getLogger(__name__)
# Before the catch-all handlers of other modules (group 0), which must not answer these too.
GROUP = -1
MAX_ARGUMENT = 320  # the longest valid address is 254 characters


async def _answer(update: Update, case: str, **values: object) -> None:
    await update.effective_message.reply_text(
        reply("email_reply", case=case, **values), parse_mode=ParseMode.HTML, disable_web_page_preview=True
    )


async def _private_chat(update: Update) -> Chat:
    """The chat of a command that only works in private; anywhere else stop (after saying so)."""
    chat = update.effective_chat
    if update.effective_message is None or chat is None:
        raise ApplicationHandlerStop
    if chat.type != ChatType.PRIVATE:
        await _answer(update, "private_only")
        raise ApplicationHandlerStop
    return chat


async def email_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/email ADDRESS asks for a code; /email daily|weekly|instant; /email off; /email alone: the state."""
    chat = await _private_chat(update)
    settings, engine = deps(context)
    argument = " ".join(context.args or [])[:MAX_ARGUMENT].strip()

    if not argument:
        sub = await in_session(engine, emails.status, chat_id=chat.id)
        await _answer(
            update,
            "status",
            status=sub.email_status if sub and sub.email else "none",
            address=sub.email if sub else None,
            frequency=sub.email_frequency if sub else "weekly",
        )
        raise ApplicationHandlerStop

    if argument.lower() in ("off", "stop", "none"):
        address = await in_session(engine, emails.off, chat_id=chat.id)
        await _answer(update, "off" if address else "off_none", address=address)
        raise ApplicationHandlerStop

    if argument.lower() in emails.FREQUENCIES:
        frequency = argument.lower()
        sub = await in_session(engine, emails.set_email_frequency, chat_id=chat.id, frequency=frequency)
        await _answer(
            update,
            "frequency" if sub else "off_none",
            frequency=frequency,
            address=sub.email if sub else None,
            status=sub.email_status if sub else "none",
        )
        raise ApplicationHandlerStop

    try:
        sent = await in_session(
            engine, emails.request, settings, chat_id=chat.id, address=argument, chat_type=chat.type
        )
    except emails.EmailError as exc:
        values = dict(exc.extra)
        if exc.reason == "already_confirmed":
            values["frequency"] = "weekly"
            sub = await in_session(engine, emails.status, chat_id=chat.id)
            if sub is not None:
                values["frequency"] = sub.email_frequency
        await _answer(update, exc.reason, detail=exc.detail, **values)
        raise ApplicationHandlerStop from None
    log.info("email code sent", extra={"chat_id": chat.id})
    await _answer(
        update, "code_sent", address=sent.address, minutes=int(emails.CODE_TTL.total_seconds() // 60)
    )
    raise ApplicationHandlerStop


async def verify_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/verify CODE: the code from the confirmation email."""
    chat = await _private_chat(update)
    code = "".join(context.args or [])[:32]
    if not code:
        await _answer(update, "usage_verify")
        raise ApplicationHandlerStop
    settings, engine = deps(context)
    result = await in_session(engine, emails.verify, settings, chat_id=chat.id, code=code)
    if result.ok:
        log.info("email confirmed by code", extra={"chat_id": chat.id})
        await _answer(update, "verified", address=result.address, frequency=result.frequency)
    else:
        await _answer(update, result.reason, attempts_left=result.attempts_left, address=result.address)
    raise ApplicationHandlerStop


def register(application: Application) -> None:
    application.add_handler(CommandHandler("email", email_command), group=GROUP)
    application.add_handler(CommandHandler("verify", verify_command), group=GROUP)
