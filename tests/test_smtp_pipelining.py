"""RFC 2920 PIPELINING against scripted servers that hold their replies until a whole group is in.

A client that waits for each reply before the next command would hang against these servers, so
a passing test shows the commands really went ahead of the replies.
"""

from __future__ import annotations

import asyncio
import email
import email.policy

import aiosmtplib
import pytest

from digests.channels import pipelining
from tests.deliver_support import add_subscriber, queue_email
from tests.fakes.smtp import SMTPSink

GREETING = b"220 scripted ESMTP\r\n"
EHLO = b"250-scripted\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 HELP\r\n"


class Scripted:
    """An SMTP server that reads MAIL, RCPT and DATA before it answers any of them.

    `replies` gives the three answers (MAIL, RCPT, DATA) and the answer after the content, for
    each transaction in turn; it records every command line and every message it received.
    """

    def __init__(self, replies: list[tuple[bytes, bytes, bytes, bytes]]) -> None:
        self.replies = list(replies)
        self.commands: list[bytes] = []
        self.messages: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Scripted:
        self.server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _line(self, reader: asyncio.StreamReader) -> bytes:
        line = await reader.readline()
        self.commands.append(line.rstrip(b"\r\n"))
        return line

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(GREETING)
        try:
            while True:
                line = await self._line(reader)
                verb = line[:4].upper()
                if not line or verb == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    break
                if verb == b"EHLO":
                    writer.write(EHLO)
                elif verb == b"RSET":
                    writer.write(b"250 reset\r\n")
                elif verb == b"NOOP":
                    writer.write(b"250 noop ok\r\n")
                elif verb == b"MAIL":
                    await self._line(reader)  # RCPT
                    await self._line(reader)  # DATA: only now does the client get any answer
                    mail, rcpt, data, done = self.replies.pop(0)
                    writer.write(mail + rcpt + data)
                    if data.startswith(b"354"):
                        body = []
                        while (chunk := await reader.readline()) != b".\r\n":
                            body.append(chunk)
                        self.messages.append(b"".join(body))
                        writer.write(done)
                await writer.drain()
        finally:
            writer.close()


def _connected(port: int) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=5, start_tls=False)


async def test_mail_rcpt_and_data_go_in_one_group_and_dots_are_doubled():
    ok = (b"250 sender ok\r\n", b"250 rcpt ok\r\n", b"354 go ahead\r\n", b"250 queued as 1\r\n")
    async with Scripted([ok, ok]) as server:
        smtp = _connected(server.port)
        await smtp.connect()
        await smtp.ehlo()
        assert pipelining.supported(smtp)
        message = b"Subject: hi\r\n\r\n.leading dot\r\nmiddle\r\n.\r\nend"
        await pipelining.transact(smtp, "news@clapper.example", "a@example.org", message, read_timeout=5)
        # The connection is aiosmtplib's again: its own commands work after ours.
        await pipelining.transact(smtp, "news@clapper.example", "b@example.org", b"x\r\n", read_timeout=5)
        assert (await smtp.noop()).message == "noop ok"
        await smtp.quit()
    assert server.messages[0] == b"Subject: hi\r\n\r\n..leading dot\r\nmiddle\r\n..\r\nend\r\n"
    assert server.messages[1] == b"x\r\n"
    assert b"MAIL FROM:<news@clapper.example>" in server.commands
    assert b"RCPT TO:<b@example.org>" in server.commands


async def test_a_refused_recipient_ends_the_data_the_server_took_and_resets():
    # RFC 2920 3.1: the server may answer 354 to DATA though it refused every recipient.
    refused = (b"250 ok\r\n", b"550 5.1.1 no such user\r\n", b"354 go ahead\r\n", b"554 no recipients\r\n")
    ok = (b"250 ok\r\n", b"250 ok\r\n", b"354 go ahead\r\n", b"250 queued\r\n")
    async with Scripted([refused, ok]) as server:
        smtp = _connected(server.port)
        await smtp.connect()
        await smtp.ehlo()
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as caught:
            await pipelining.transact(smtp, "n@clapper.example", "gone@example.org", b"body\r\n")
        assert caught.value.recipients[0].code == 550
        # The empty content and the RSET were answered, so the next message pairs its replies right.
        await pipelining.transact(smtp, "n@clapper.example", "next@example.org", b"second\r\n")
        await smtp.quit()
    assert server.messages == [b"", b"second\r\n"]
    assert b"RSET" in server.commands


async def test_refused_sender_and_refused_data_raise_what_sendmail_raises():
    sender_refused = (b"553 5.7.1 not yours\r\n", b"503 no mail\r\n", b"503 no rcpt\r\n", b"")
    data_refused = (b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n", b"554 5.7.1 spam\r\n")
    async with Scripted([sender_refused, data_refused]) as server:
        smtp = _connected(server.port)
        await smtp.connect()
        await smtp.ehlo()
        with pytest.raises(aiosmtplib.SMTPSenderRefused):
            await pipelining.transact(smtp, "n@clapper.example", "a@example.org", b"x\r\n", read_timeout=5)
        with pytest.raises(aiosmtplib.SMTPDataError) as caught:
            await pipelining.transact(smtp, "n@clapper.example", "a@example.org", b"x\r\n", read_timeout=5)
        assert caught.value.code == 554
        await smtp.quit()


async def test_an_address_with_a_line_break_is_refused_before_anything_is_written():
    async with Scripted([]) as server:
        smtp = _connected(server.port)
        await smtp.connect()
        await smtp.ehlo()
        with pytest.raises(pipelining.Unsendable):
            await pipelining.transact(
                smtp, "n@clapper.example", "a@example.org>\r\nRCPT TO:<b@example.org", b"x\r\n"
            )
        await smtp.quit()
    assert not any(c.startswith(b"MAIL") for c in server.commands)


async def test_a_server_that_never_answers_times_out_and_the_connection_is_dropped():
    async def silent(reader, writer):
        writer.write(GREETING)
        await reader.readline()
        writer.write(EHLO)
        await asyncio.sleep(30)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        smtp = _connected(server.sockets[0].getsockname()[1])
        await smtp.connect()
        await smtp.ehlo()
        with pytest.raises(aiosmtplib.SMTPTimeoutError):
            await pipelining.transact(smtp, "n@clapper.example", "a@example.org", b"x\r\n", read_timeout=0.3)
        assert not smtp.is_connected  # late replies must not pair with the next message's commands
    finally:
        server.close()


@pytest.mark.parametrize("offered", [True, False], ids=["pipelining", "one-command-at-a-time"])
async def test_the_sender_delivers_the_same_mail_with_and_without_pipelining(
    engine, settings, offered, monkeypatch
):
    pipelined: list[str] = []
    real = pipelining.transact

    async def counted(smtp, sender, recipient, message, **kw):
        pipelined.append(recipient)
        await real(smtp, sender, recipient, message, **kw)

    monkeypatch.setattr(pipelining, "transact", counted)
    with SMTPSink(pipelining=offered) as sink:
        cfg = settings.model_copy(update=sink.settings() | {"smtp_connections": 2})
        for i in range(6):
            address = f"reader{i}@example.org"
            queue_email(engine, add_subscriber(engine, email=address), address, f"Digest {i}")
        sink.reply_rcpt("reader3@example.org", "550 5.1.1 No such user")
        from digests.deliver import deliver_once_async

        report = await deliver_once_async(engine, cfg, worker_id="t")
    assert (report.sent, report.bounced) == (5, 1)
    got = sorted(m.rcpt_tos[0] for m in sink.messages)
    assert got == [f"reader{i}@example.org" for i in (0, 1, 2, 4, 5)]
    parsed = email.message_from_bytes(sink.messages[0].raw, policy=email.policy.default)
    assert parsed["List-Unsubscribe"]
    # The pipelined path is taken exactly when the server offers it (every message, refused too).
    assert len(pipelined) == (6 if offered else 0)


def test_wire_data_repairs_bare_line_endings():
    assert pipelining.wire_data(b"a\nb\rc") == b"a\r\nb\r\nc\r\n.\r\n"
    assert pipelining.wire_data(b"a\r\n") == b"a\r\n.\r\n"
