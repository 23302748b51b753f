"""The Telegram application: handlers wired in one place, the command menu, one error handler."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator

from sqlalchemy.engine import Engine
from telegram import BotCommand, LinkPreviewOptions, Update
from telegram.constants import ParseMode
from telegram.error import ChatMigrated, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import AIORateLimiter, Application, ApplicationBuilder, ContextTypes, Defaults

from bot import render
from bot.common import call
from bot.handlers import admin, articles, broadcast, chats, email, fallback, preferences, start, subscriptions
from bot.handlers import follows as phrase_follows
from digests import outbox
from digests import subscriptions as service
from digests.config import Settings

log = logging.getLogger("clapper.bot")

# The menu Telegram shows; descriptions are what users read, so they live in a template.
COMMANDS = ("start", "help", "subscribe", "unsubscribe", "follow", "unfollow", "list", "countries",
            "sections", "festivals", "latest", "search",
            "settings", "frequency", "time", "timezone", "email", "verify", "pause", "resume", "stop")
REPLY_RETRIES = 3
ADMIN_NOTICE_INTERVAL = 60.0  # seconds between two error notices to admins


class ClapperApplication(Application):
    """Sets the command menu when initialised, so `async with application:` users get it too.

    run_polling/run_webhook call post_init after initialize; embedded runners (`clapper run`, tests)
    only initialize. `_post_init` is idempotent, so the menu is set once either way.
    """

    async def initialize(self) -> None:
        await super().initialize()
        await _post_init(self)


def build_application(settings: Settings, engine: Engine) -> Application:
    """A ready-to-start PTB application talking to settings.telegram_api_base_url."""
    application = (
        ApplicationBuilder()
        .application_class(ClapperApplication)
        .token(settings.telegram_bot_token)
        .base_url(settings.telegram_api_base_url)
        .base_file_url(settings.telegram_api_file_url)
        .defaults(Defaults(parse_mode=ParseMode.HTML,
                           link_preview_options=LinkPreviewOptions(is_disabled=True)))
        .post_init(_post_init)
        # Replies must not be lost to flood control (a reader typing two commands in a second hits
        # Telegram's ~1/s per chat): wait out a 429 and retry. Digests have their own limiter.
        .rate_limiter(AIORateLimiter(max_retries=REPLY_RETRIES))
        .build()
    )
    application.bot_data["settings"] = settings
    application.bot_data["engine"] = engine

    # Handler modules, in order: within a group the first matching handler wins.
    start.register(application)
    subscriptions.register(application)
    phrase_follows.register(application)
    preferences.register(application)
    articles.register(application)
    admin.register(application)
    chats.register(application)
    email.register(application)
    broadcast.register(application)

    fallback.register(application)  # keep last: unknown commands, chatter, stale buttons

    application.add_error_handler(on_error)
    return application


def command_menu() -> list[BotCommand]:
    return [BotCommand(name, render.label("command_" + name)) for name in COMMANDS]


async def _post_init(application: Application) -> None:
    """run_polling never sets the menu itself; set it once the bot is initialised."""
    if application.bot_data.get("commands_set"):
        return
    await application.bot.set_my_commands(command_menu())
    application.bot_data["commands_set"] = True


@contextlib.asynccontextmanager
async def polling(application: Application, *, long_poll: int = 10, poll_interval: float = 0.0,
                  drop_pending_updates: bool = False) -> AsyncIterator[Application]:
    """Run the bot by long polling beside other asyncio work (run_polling would own the loop).

    `long_poll`: seconds each getUpdates may wait on the server (short in tests, so stops are quick).
    """
    async with application:
        await application.start()
        await application.updater.start_polling(poll_interval=poll_interval, timeout=long_poll,
                                                drop_pending_updates=drop_pending_updates)
        try:
            yield application
        finally:
            await application.updater.stop()
            await application.stop()


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log every failure with its update id; tell the chat something went wrong and the admins what."""
    error = context.error
    update_id = update.update_id if isinstance(update, Update) else None
    chat = update.effective_chat if isinstance(update, Update) else None
    engine = context.bot_data.get("engine")
    if isinstance(error, Forbidden) and chat is not None and engine is not None:
        log.info("update %s: chat %s blocked the bot (%s)", update_id, chat.id, error)
        await call(service.mark_blocked, engine, chat.id)
        return
    if isinstance(error, ChatMigrated) and chat is not None and engine is not None:
        log.info("update %s: chat %s migrated to %s", update_id, chat.id, error.new_chat_id)
        await call(outbox.migrate_chat, engine, old_chat_id=chat.id, new_chat_id=error.new_chat_id,
                   subscriber_id=None)
        return
    if update is None and isinstance(error, NetworkError | RetryAfter):
        log.warning("polling: %s", error)  # the updater retries by itself
        return
    if isinstance(error, RetryAfter):
        # Flood control: an apology would be refused too, and it is no bug to report.
        log.warning("update %s: flood control, retry after %s s", update_id, error.retry_after)
        return
    log.error("update %s failed: %s: %s", update_id, type(error).__name__, error, exc_info=error)
    if chat is not None:
        try:
            await context.bot.send_message(chat.id, render.reply("error", update_id=update_id))
        except TelegramError as exc:
            log.warning("update %s: could not tell chat %s about the error: %s", update_id, chat.id, exc)
    await _tell_admins(context, update_id, error)


async def _tell_admins(context: ContextTypes.DEFAULT_TYPE, update_id: int | None, error: object) -> None:
    settings: Settings | None = context.bot_data.get("settings")
    if settings is None or not settings.admin_telegram_ids:
        return
    # One notice a minute at most, so a failure on every update does not flood the admins.
    now = time.monotonic()
    if now - context.bot_data.get("last_admin_notice", -ADMIN_NOTICE_INTERVAL) < ADMIN_NOTICE_INTERVAL:
        return
    context.bot_data["last_admin_notice"] = now
    text = render.reply("error_admin", update_id=update_id, kind=type(error).__name__,
                        message=str(error)[:500])
    for admin_id in settings.admin_telegram_ids:
        try:
            await context.bot.send_message(admin_id, text)
        except TelegramError as exc:
            log.warning("could not notify admin %s: %s", admin_id, exc)
