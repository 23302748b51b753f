"""`clapper bot`: the Telegram bot, by long polling (or a webhook when TELEGRAM_WEBHOOK_URL is set)."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlparse

import typer

from digests.cli.common import load_settings, setup
from digests.config import Settings

NO_TOKEN = """\
TELEGRAM_BOT_TOKEN is not set, so there is no bot to run.

To get a token:
  1. In Telegram, open a chat with @BotFather and send /newbot.
  2. Choose a display name and a username ending in "bot".
  3. BotFather answers with a token like 123456789:AAH...; put it in .env:
       TELEGRAM_BOT_TOKEN=123456789:AAH...
  4. Run `clapper bot` again.
"""


def webhook_secret(settings: Settings) -> str:
    """The secret Telegram sends back in every webhook call (A-Z, a-z, 0-9, _ and - only): keyed by
    SECRET_KEY (which secrets_rule never lets be a default), so no one can forge admin updates."""
    return hmac.new(settings.secret().encode(), b"clapper.telegram-webhook", hashlib.sha256).hexdigest()


def bot() -> None:
    """Run the Telegram bot until interrupted (Ctrl-C or SIGTERM)."""
    from bot.app import build_application  # telegram.ext loads only for the commands that need it

    if not load_settings().telegram_bot_token:  # before setup(): no database is touched for nothing
        typer.echo(NO_TOKEN, err=True)
        raise typer.Exit(2)
    settings, engine = setup()
    application = build_application(settings, engine)
    if settings.telegram_webhook_url:
        typer.echo(f"Bot running with webhook {settings.telegram_webhook_url} "
                   f"(listening on {settings.telegram_webhook_listen}:{settings.telegram_webhook_port}).")
        application.run_webhook(
            listen=settings.telegram_webhook_listen,
            port=settings.telegram_webhook_port,
            url_path=urlparse(settings.telegram_webhook_url).path.lstrip("/"),
            webhook_url=settings.telegram_webhook_url,
            secret_token=webhook_secret(settings),
        )
    else:
        typer.echo("Bot running (long polling). Ctrl-C stops it.")
        application.run_polling()


def register(app: typer.Typer) -> None:
    app.command("bot")(bot)
