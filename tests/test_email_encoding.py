"""Transfer encodings of the fast message builder: as they are where allowed, else quoted-printable.

Expectations are written from RFC 2045/5322/6152: ASCII with short lines needs nothing; UTF-8 may
go as 8bit only to a server that offers 8BITMIME (and MAIL FROM then says BODY=8BITMIME); a line
over 998 octets, or signed mail (RFC 6376 5.3), gets quoted-printable.
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass

from digests.channels.email import EmailSender, RenderedMail
from digests.config import Settings
from tests.fakes.smtp import SMTPSink


@dataclass
class Mail:
    id: int
    subscriber_id: int
    recipient: str
    subject: str
    body: str
    body_text: str | None


FRENCH = "Coproduction belgo-française : « Les Âmes sœurs » — tournage à Liège"


def _settings(**extra) -> Settings:
    return Settings(_env_file=None, secret_key="k" * 40, public_base_url="https://c.example", **extra)


def _parts(raw: bytes):
    message = email.message_from_bytes(raw, policy=email.policy.default)
    return message, {p.get_content_type(): p for p in message.iter_parts()}


def test_ascii_goes_as_7bit_and_utf8_as_8bit_only_when_allowed():
    rendered = RenderedMail(_settings())
    mail = Mail(1, 1, "a@example.org", "Weekly", f"<p>{FRENCH}</p>", "plain ascii news")
    raw, is8 = rendered.build(mail, eightbit=True)
    message, parts = _parts(raw)
    assert is8
    assert parts["text/plain"]["Content-Transfer-Encoding"] == "7bit"
    assert parts["text/html"]["Content-Transfer-Encoding"] == "8bit"
    assert FRENCH.encode("utf-8") in raw  # on the wire as it is, nothing to decode
    assert parts["text/html"].get_content().strip() == f"<p>{FRENCH}</p>"

    raw, is8 = rendered.build(mail, eightbit=False)
    message, parts = _parts(raw)
    assert not is8 and raw.isascii()
    assert parts["text/html"]["Content-Transfer-Encoding"] == "quoted-printable"
    assert parts["text/html"].get_content().strip() == f"<p>{FRENCH}</p>"
    assert parts["text/plain"].get_content().strip() == "plain ascii news"


def test_a_line_over_998_octets_is_quoted_printable_whatever_the_server_takes():
    rendered = RenderedMail(_settings())
    long_line = "<td>" + "x" * 1200 + "</td>"
    raw, is8 = rendered.build(Mail(1, 1, "a@example.org", "S", long_line, None), eightbit=True)
    assert not is8
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["Content-Transfer-Encoding"] == "quoted-printable"
    assert message.get_content().strip() == long_line


def test_a_part_holding_the_boundary_is_quoted_printable():
    rendered = RenderedMail(_settings())
    sneaky = f"before\n--{rendered.boundary}\nafter"
    raw, _ = rendered.build(Mail(1, 1, "a@example.org", "S", "<p>x</p>", sneaky), eightbit=True)
    message, parts = _parts(raw)
    assert list(parts) == ["text/plain", "text/html"]
    assert parts["text/plain"].get_content().replace("\r\n", "\n").strip() == sneaky


async def test_the_sender_says_body_8bitmime_when_it_sends_8bit():
    mail = [Mail(i, i, f"r{i}@example.org", "Weekly", f"<p>{FRENCH}</p>", FRENCH) for i in (1, 2)]
    async with SMTPSink() as sink:
        sender = EmailSender(_settings(**sink.settings()))

        async def report(row, outcome):
            assert outcome.status == "sent", outcome

        await sender.send_groups([[m] for m in mail], report)
    for received in sink.messages:
        message, parts = _parts(received.raw)
        assert parts["text/plain"]["Content-Transfer-Encoding"] == "8bit"
        assert parts["text/plain"].get_content().strip() == FRENCH
    assert [m.mail_options for m in sink.messages] == [["BODY=8BITMIME"]] * 2


def test_the_date_header_is_the_send_time_to_the_second():
    from datetime import UTC, datetime

    from digests.channels.email import _date_header

    at = datetime(2026, 12, 2, 5, 30, 7, 900_000, tzinfo=UTC)
    # RFC 5322 3.3, written by hand: seconds truncated, never rounded up.
    assert _date_header(at) == "Wed, 02 Dec 2026 05:30:07 +0000"
    assert _date_header(at.replace(second=8, microsecond=1)) == "Wed, 02 Dec 2026 05:30:08 +0000"
