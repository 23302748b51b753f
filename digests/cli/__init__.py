"""The `clapper` command: a typer app; each command group lives in its own module here."""

from __future__ import annotations

import typer

from digests.cli import (
    bot_cmd,
    broadcast_cmd,
    db_cmd,
    deliver_cmd,
    digests_cmd,
    dkim_cmd,
    inbound_cmd,
    ingest_cmd,
    run_cmd,
    subscribers_cmd,
    web_cmd,
)

app = typer.Typer(
    name="clapper",
    help="Clapper: film-production news, delivered by Telegram and email.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

# Each module registers its commands on `app` (one line per module, so parallel work never collides).
db_cmd.register(app)
run_cmd.register(app)
ingest_cmd.register(app)
deliver_cmd.register(app)
subscribers_cmd.register(app)
broadcast_cmd.register(app)
web_cmd.register(app)
digests_cmd.register(app)
bot_cmd.register(app)
dkim_cmd.register(app)
inbound_cmd.register(app)


def main() -> None:
    app()
