"""One SMTP transaction with PIPELINING (RFC 2920), on a connection aiosmtplib opened.

aiosmtplib connects, greets, negotiates TLS and logs in; we keep it for all of that. But it sends
each command and awaits its reply (MAIL, RCPT, DATA, the message: four round trips a message), and
its protocol drops a reply that arrives before it is awaited, so commands cannot simply be written
ahead. For the length of one transaction the transport's protocol is swapped for `_Replies`, which
keeps every reply in order; MAIL, RCPT and DATA go out in one write (two round trips a message),
then aiosmtplib's protocol is put back. Outcomes are raised as the aiosmtplib exceptions its own
`sendmail` raises, so the caller maps both paths the same way.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque

import aiosmtplib
from aiosmtplib.protocol import normalize_message_line_endings

# A reply line that continues: three digits and "-". Any other line ends the reply (a malformed
# one too: its code reads as -1 and the caller fails the message, rather than wait for more).
_CONTINUES = re.compile(rb"^\d{3}-")
# Longer replies are a server misbehaving; bounded so it cannot grow our memory (as aiosmtplib does).
MAX_REPLY_BYTES = 32 * 1024
# What no address on a command line may hold: control characters would inject commands.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Unsendable(ValueError):
    """The message cannot be put on the wire (checked before anything was written)."""


def supported(smtp: aiosmtplib.SMTP) -> bool:
    return smtp.supports_extension("pipelining")


class _Replies(asyncio.Protocol):
    """Collects server replies, in order, while it owns the transport; tells aiosmtplib of a loss."""

    def __init__(self, owner: asyncio.BaseProtocol) -> None:
        self.owner = owner
        self.buffer = bytearray()
        self.replies: deque[tuple[int, str]] = deque()
        self.lost: BaseException | None = None
        self.waiter: asyncio.Future | None = None

    def data_received(self, data: bytes) -> None:
        self.buffer.extend(data)
        start = 0
        while True:
            end = self.buffer.find(b"\n", start)
            if end < 0:
                break
            # A whole reply ends at its last line; lines of a multi-line reply are joined.
            line = bytes(self.buffer[start : end + 1])
            start = end + 1
            if not _CONTINUES.match(line):
                lines = bytes(self.buffer[:start]).splitlines()
                try:
                    code = int(lines[-1][:3])
                except ValueError:
                    code = -1
                text = "\n".join(x[4:].strip().decode("utf-8", "surrogateescape") for x in lines)
                self.replies.append((code, text))
                del self.buffer[:start]
                start = 0
        if len(self.buffer) > MAX_REPLY_BYTES:
            self._lose(aiosmtplib.SMTPResponseException(-1, "reply too long"))
        self._wake()

    def _lose(self, exc: BaseException) -> None:
        self.lost = self.lost or exc
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def eof_received(self) -> bool:
        self._lose(aiosmtplib.SMTPServerDisconnected("Unexpected EOF received"))
        return False  # closes the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._lose(aiosmtplib.SMTPServerDisconnected(f"Connection lost: {exc}" if exc else "Connection lost"))
        self.owner.connection_lost(exc)

    # Flow control belongs to the owner: it must not miss a resume while we hold the transport.
    def pause_writing(self) -> None:
        self.owner.pause_writing()

    def resume_writing(self) -> None:
        self.owner.resume_writing()

    async def reply(self, read_timeout: float | None) -> tuple[int, str]:
        while not self.replies:
            if self.lost is not None:
                raise self.lost
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self.waiter, read_timeout)
            except TimeoutError as exc:
                raise aiosmtplib.SMTPReadTimeoutError("Timed out waiting for server response") from exc
            finally:
                self.waiter = None
        return self.replies.popleft()


def wire_data(message: bytes, *, crlf: bool = False) -> bytes:
    """The message as DATA carries it: CRLF lines, leading dots doubled, the final "." line.

    `crlf`: the caller built every line end as CRLF, so the scan for bare ones is skipped.
    """
    if not crlf and not message.count(b"\n") == message.count(b"\r") == message.count(b"\r\n"):
        message = normalize_message_line_endings(message)
    elif not message.endswith(b"\r\n"):
        message += b"\r\n"
    # RFC 5321 4.5.2: a line that starts with "." gets another.
    message = message.replace(b"\r\n.", b"\r\n..")
    if message.startswith(b"."):
        message = b"." + message
    return message + b".\r\n"


def _command_address(address: str) -> bytes:
    if _CONTROL.search(address) or "<" in address or ">" in address:
        raise Unsendable(f"an address that cannot go on a command line: {address!r}")
    return f"<{address}>".encode()


async def transact(
    smtp: aiosmtplib.SMTP,
    sender: str,
    recipient: str,
    message: bytes,
    *,
    mail_options: list[str] | tuple[str, ...] = (),
    read_timeout: float | None = None,
    crlf: bool = False,
) -> None:
    """Send `message` to one recipient; raise what aiosmtplib.sendmail would raise on a refusal.

    The caller has greeted the server (EHLO) and checked `supported(smtp)`.
    """
    mail = b"MAIL FROM:" + _command_address(sender)
    for option in mail_options:
        mail += b" " + option.encode("ascii")
    rcpt = b"RCPT TO:" + _command_address(recipient)
    data = wire_data(message, crlf=crlf)
    protocol = smtp.protocol
    transport = protocol.transport if protocol is not None else None
    if protocol is None or transport is None or transport.is_closing():
        raise aiosmtplib.SMTPServerDisconnected("Connection lost")
    replies = _Replies(protocol)
    transport.set_protocol(replies)
    try:
        transport.write(mail + b"\r\n" + rcpt + b"\r\nDATA\r\n")
        mailed, rcpted, started = [await replies.reply(read_timeout) for _ in range(3)]
        if started[0] == 354 and (mailed[0] != 250 or rcpted[0] not in (250, 251)):
            # RFC 2920 3.1: DATA was taken though the transaction failed; end it with no content.
            transport.write(b".\r\n")
            await replies.reply(read_timeout)
        if mailed[0] == 421 or rcpted[0] == 421 or started[0] == 421:
            code, text = next(r for r in (mailed, rcpted, started) if r[0] == 421)
            raise aiosmtplib.SMTPResponseException(code, text)
        failed = mailed[0] != 250 or rcpted[0] not in (250, 251) or started[0] != 354
        if failed:
            transport.write(b"RSET\r\n")  # the server may still hold the MAIL: start the next clean
            await replies.reply(read_timeout)
        if mailed[0] != 250:
            raise aiosmtplib.SMTPSenderRefused(mailed[0], mailed[1], sender)
        if rcpted[0] not in (250, 251):
            refused = aiosmtplib.SMTPRecipientRefused(rcpted[0], rcpted[1], recipient)
            raise aiosmtplib.SMTPRecipientsRefused([refused])
        if started[0] != 354:
            raise aiosmtplib.SMTPDataError(started[0], started[1])
        transport.write(data)
        code, text = await replies.reply(read_timeout)
        if code != 250:
            raise aiosmtplib.SMTPDataError(code, text)
    except aiosmtplib.SMTPTimeoutError:
        # Replies may still come for commands we gave up on: the connection cannot be reused.
        smtp.close()
        raise
    finally:
        if not transport.is_closing():
            transport.set_protocol(protocol)
