"""The inbound SMTP listener (aiosmtpd): accepts mail for BOUNCE_DOMAIN (and MAIL_FROM), reads it.

It relays nothing. A message it cannot store (database down) gets a 451, so the sending MTA
queues it and tries again instead of the bounce being lost.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial

from aiosmtpd.smtp import SMTP
from sqlalchemy.engine import Engine

from digests.channels.email import sender_address
from digests.config import Settings
from digests.inbound import outcomes

log = logging.getLogger(__name__)

# Reports carry the original message; a digest is well under 1 MB, so this is generous.
MAX_MESSAGE_BYTES = 10 * 1024 * 1024


def accepts(settings: Settings, address: str) -> bool:
    domain = address.rpartition("@")[2].lower()
    return domain == settings.bounce_domain.lower() or address.lower() == sender_address(settings).lower()


class Handler:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings, self.engine = settings, engine
        self.results: list[outcomes.Result] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if not accepts(self.settings, address):
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        try:
            result = await asyncio.to_thread(
                outcomes.handle, self.engine, self.settings, raw, list(envelope.rcpt_tos)
            )
        except Exception:
            log.exception("inbound message not stored", extra={"event": "inbound.error"})
            return "451 4.3.0 Cannot store the message now, try again later"
        self.results.append(result)
        return "250 OK"


async def serve(settings: Settings, engine: Engine, stop: asyncio.Event, *, port: int | None = None) -> None:
    """Listen on INBOUND_HOST:INBOUND_PORT until `stop` is set."""
    handler = Handler(settings, engine)
    loop = asyncio.get_running_loop()
    factory = partial(
        SMTP,
        handler,
        hostname=settings.bounce_domain or None,
        data_size_limit=MAX_MESSAGE_BYTES,
        decode_data=False,
        enable_SMTPUTF8=True,
    )
    listen_port = settings.inbound_port if port is None else port
    server = await loop.create_server(factory, host=settings.inbound_host, port=listen_port)
    bound = server.sockets[0].getsockname()[1] if server.sockets else listen_port
    log.info(
        "inbound SMTP listening on %s:%s",
        settings.inbound_host,
        bound,
        extra={"event": "inbound.listening", "host": settings.inbound_host, "port": bound},
    )
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()
