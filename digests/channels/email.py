"""Email: build the MIME message for an outbox row, and send batches over a few reused SMTP connections."""

from __future__ import annotations

import asyncio
import binascii
import json
import logging
import re
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from functools import lru_cache
from typing import Protocol
from urllib.parse import quote

import aiosmtplib

from digests import tokens, verp
from digests.channels import SENT, Outcome, dkim, pipelining, splice
from digests.config import Settings
from digests.models import utcnow

log = logging.getLogger(__name__)


class EmailRow(Protocol):
    """What the sender reads from an outbox row (an Outbox instance fits)."""

    id: int | None
    subscriber_id: int | None
    recipient: str
    subject: str
    body: str
    body_text: str | None


Report = Callable[[EmailRow, Outcome], Awaitable[None]]


def sender_address(settings: Settings) -> str:
    """The bare address of MAIL_FROM, used as the envelope sender."""
    return _bare_address(settings.mail_from)


@lru_cache(maxsize=16)
def _bare_address(mail_from: str) -> str:
    # Asked for every message sent: parseaddr is slow enough to show in a fan-out.
    return parseaddr(mail_from)[1] or "clapper@localhost"


def sender_domain(settings: Settings) -> str:
    return sender_address(settings).rpartition("@")[2] or "localhost"


def list_id(settings: Settings) -> str:
    # RFC 2919: a stable identifier, so mail clients can file and filter the digests.
    return f"Clapper digests <digests.{sender_domain(settings)}>"


def verp_token(settings: Settings, outbox_id: int | None, subscriber_id: int | None, to: str) -> str | None:
    """The token `clapper inbound` reads back from bounces and replies; None without BOUNCE_DOMAIN."""
    if not settings.bounce_domain or outbox_id is None or subscriber_id is None:
        return None
    return verp.make(settings, outbox_id=outbox_id, subscriber_id=subscriber_id, address=to)


def envelope_sender(settings: Settings, row: EmailRow) -> str:
    """MAIL FROM: the VERP address when bounces are read, so each bounce names its message."""
    token = verp_token(settings, row.id, row.subscriber_id, row.recipient)
    return verp.address(settings, verp.BOUNCES, token) if token else sender_address(settings)


def unsubscribe_headers(
    settings: Settings,
    subscriber_id: int | None,
    address: str,
    *,
    token: str | None = None,
    signed: str | None = None,
) -> dict[str, str]:
    """List-Unsubscribe (https URL first, then a mailto) and, with a URL, RFC 8058 one-click POST.

    The link token is bound to `address`, the one this message goes to; `signed` is one made
    already for that reader and address (the body's own unsubscribe link). With a VERP `token`
    the mailto goes to the inbound domain, where `clapper inbound` reads it."""
    if subscriber_id is None:
        return {}
    signed = signed or tokens.make_token(settings, tokens.Recipient(subscriber_id, address), "unsubscribe")
    url = tokens.url(settings, "unsubscribe", signed)
    if token:
        mailto = f"mailto:{verp.address(settings, verp.UNSUBSCRIBE, token)}?subject=unsubscribe"
    else:
        mailto = f"mailto:{sender_address(settings)}?subject={quote('unsubscribe ' + signed)}"
    headers = {"List-Unsubscribe": f"<{url}>, <{mailto}>" if url else f"<{mailto}>"}
    if url and url.startswith(("https://", "http://")):
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return headers


# The default policy RFC 2047-encodes a header it cannot fold at 78 columns, and a token URL has
# no space to fold at; an encoded List-Unsubscribe is ignored by mail providers. RFC 5322 allows
# 998-character lines, so headers stay plain.
_POLICY = email_policy.SMTP.clone(max_line_length=998)


def build_message(
    settings: Settings,
    *,
    to: str,
    subject: str,
    html: str,
    text: str | None,
    subscriber_id: int | None = None,
    outbox_id: int | None = None,
    now: datetime | None = None,
) -> EmailMessage:
    """A complete message: multipart/alternative (text, then HTML) with the list headers.

    Also what `clapper demo` writes to an .eml file.
    """
    message = EmailMessage(policy=_POLICY)
    message["Date"] = format_datetime(now or utcnow())
    address = parseaddr(to)[1] or to
    token = verp_token(settings, outbox_id, subscriber_id, address)
    domain = sender_domain(settings)
    message["Message-ID"] = verp.message_id(settings, token, domain) if token else make_msgid(domain=domain)
    message["From"] = settings.mail_from
    message["To"] = to
    message["Subject"] = subject
    message["List-Id"] = list_id(settings)
    for name, value in unsubscribe_headers(settings, subscriber_id, address, token=token).items():
        message[name] = value
    if text:
        message.set_content(text)
        message.add_alternative(html, subtype="html")
    else:
        message.set_content(html, subtype="html")
    return message


def message_for_row(settings: Settings, row: EmailRow, *, now: datetime | None = None) -> EmailMessage:
    return build_message(
        settings,
        to=row.recipient,
        subject=row.subject,
        html=row.body,
        text=row.body_text,
        subscriber_id=row.subscriber_id,
        outbox_id=row.id,
        now=now,
    )


class RenderedMail:
    """Builds each outbox row's message bytes fast: MIME by hand, shared headers built once.

    Every reader's body differs (their own unsubscribe and preferences links), so what is shared
    by the readers of one render is built once per distinct subject: From, Subject (encoded by
    the email package), List-Id. The rest is plain ASCII written directly: per-reader headers and
    a multipart/alternative body whose parts go as they are (7bit, or 8bit where the server takes
    it) or quoted-printable (binascii, in C) when a line is too long or 8bit is not allowed. The result
    parses like `build_message`'s, which stays the reference (previews, .eml, odd cases).
    """

    def __init__(self, settings: Settings, size: int = 256) -> None:
        self.settings = settings
        self.size = size
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._templates_cache: OrderedDict[tuple, tuple] = OrderedDict()
        self.built = 0
        self.spliced = 0
        # Quoted-printable never contains "==" (an "=" is written "=3D"); a part sent as it is is
        # checked for it (and quoted-printable when it holds it).
        self.boundary = f"==============={secrets.token_hex(8)}=="
        self._boundary = self.boundary.encode("ascii")

    def _shared(self, subject: str) -> bytes:
        found = self._cache.get(subject)
        if found is not None:
            self._cache.move_to_end(subject)
            return found
        message = EmailMessage(policy=_POLICY)
        message["From"] = self.settings.mail_from
        message["Subject"] = subject
        message["List-Id"] = list_id(self.settings)
        found = message.as_bytes().split(b"\r\n\r\n", 1)[0] + b"\r\n"
        self.built += 1
        self._cache[subject] = found
        if len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return found

    def _part(self, content: str, subtype: str, eightbit: bool) -> tuple[bytes, bool]:
        """One text part and whether it went as 8bit (MAIL FROM then says BODY=8BITMIME)."""
        raw = splice.normalise(content)
        boundary = self._boundary
        # RFC 5322 caps a line at 998 octets; within that, ASCII needs no encoding at all, and
        # UTF-8 none where the server takes 8BITMIME. Encoding is most of the cost of a message.
        plain = max(map(len, raw.split(b"\n"))) <= splice.MAX_LINE and boundary not in raw
        if plain and raw.isascii():
            cte, body, is8 = "7bit", raw, False
        elif plain and eightbit:
            cte, body, is8 = "8bit", raw, True
        else:
            cte, body, is8 = "quoted-printable", binascii.b2a_qp(raw, istext=True), False
        # The CRLF written after each part belongs to the boundary line that follows (RFC 2046).
        return splice.head(subtype, cte) + b"\r\n" + body.replace(b"\n", b"\r\n") + b"\r\n", is8

    def _templates(self, rendering) -> tuple[splice.PartTemplate | None, splice.PartTemplate | None]:
        """(text, HTML) templates of a shared rendering, prepared once (None: build in full)."""
        key = (rendering.subject, rendering.html, rendering.text)
        found = self._templates_cache.get(key)
        if found is None:
            text = splice.prepare(rendering.text, "plain", self._boundary) if rendering.text else None
            found = (text, splice.prepare(rendering.html, "html", self._boundary))
            self._templates_cache[key] = found
            if len(self._templates_cache) > self.size:
                self._templates_cache.popitem(last=False)
        else:
            self._templates_cache.move_to_end(key)
        return found

    def _spliced(self, row: EmailRow, links: dict, eightbit: bool) -> tuple[list[bytes], bool] | None:
        """A fan-out row's parts from its rendering's templates; None: build them from its text."""
        rendering = getattr(row, "rendering", None)
        if rendering is None:
            return None
        text_t, html_t = self._templates(rendering)
        if html_t is None or (rendering.text and text_t is None):
            return None
        parts, is8 = [], False
        for template in (text_t, html_t):
            if template is None:
                continue
            values = splice.values(links, template.subtype)
            done = values and splice.render(template, values, eightbit=eightbit, boundary=self._boundary)
            if not done:
                return None
            parts.append(done[0])
            is8 = is8 or done[1]
        self.spliced += 1
        return parts, is8

    def build(
        self, row: EmailRow, *, now: datetime | None = None, eightbit: bool = False
    ) -> tuple[bytes, bool]:
        """(the message bytes, whether a part is 8bit); `eightbit` when the server offers 8BITMIME.

        Signed mail (DKIM) should not pass it: a relay that downgrades 8bit to 7bit would
        break the signature (RFC 6376 5.3).
        """
        s = self.settings
        token = verp_token(s, row.id, row.subscriber_id, row.recipient)
        domain = sender_domain(s)
        links = _links(row)
        own = {
            "Date": _date_header(now or utcnow()),
            "Message-ID": verp.message_id(s, token, domain) if token else make_msgid(domain=domain),
            "To": row.recipient,
        } | unsubscribe_headers(s, row.subscriber_id, row.recipient, token=token, signed=_queued_token(links))
        if not row.recipient.isascii() or any(_unsafe(v) for v in own.values()):
            # Rare (an address for SMTPUTF8, a value to encode or refuse): the full builder decides.
            return message_for_row(s, row, now=now).as_bytes(policy=_UTF8_POLICY), False
        head = "".join(f"{name}: {value}\r\n" for name, value in own.items()).encode("ascii")
        shared = self._shared(row.subject)
        spliced = self._spliced(row, links, eightbit)
        if spliced is not None:
            parts, is8 = spliced
        elif not row.body_text:
            html, is8 = self._part(row.body, "html", eightbit)
            parts = [html]
        else:
            text, text8 = self._part(row.body_text, "plain", eightbit)
            html, html8 = self._part(row.body, "html", eightbit)
            parts, is8 = [text, html], text8 or html8
        if len(parts) == 1:
            return head + shared + b"MIME-Version: 1.0\r\n" + parts[0], is8
        b = self._boundary
        return b"".join(
            (
                head,
                shared,
                b'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="' + b + b'"\r\n\r\n',
                b"--" + b + b"\r\n",
                parts[0],
                b"--" + b + b"\r\n",
                parts[1],
                b"--" + b + b"--\r\n",
            )
        ), is8


def _date_header(now: datetime) -> str:
    return _date_of_second(now.replace(microsecond=0))


@lru_cache(maxsize=4)
def _date_of_second(now: datetime) -> str:
    # The header shows whole seconds: a fan-out of hundreds a second formats it once a second.
    return format_datetime(now)


def _links(row: EmailRow) -> dict:
    """The personal links the queue made for this row (a fan-out row's; else none)."""
    links = getattr(row, "links", None)
    return json.loads(links) if links else {}


def _queued_token(links: dict) -> str | None:
    """The unsubscribe token the queue put in this row's body link, made for the same reader and
    address: signing another one per message was a visible part of a fan-out's cost."""
    url = links.get("unsubscribe")
    if not url or "token=" not in url:
        return None
    return url.split("token=", 1)[1].split("&", 1)[0]


def _unsafe(value: str) -> bool:
    return not value.isascii() or "\r" in value or "\n" in value or len(value) > 900


_UTF8_POLICY = _POLICY.clone(utf8=True)


async def _quit(smtp: aiosmtplib.SMTP) -> None:
    if smtp.is_connected:
        try:
            await smtp.quit()
        except (aiosmtplib.SMTPException, OSError):
            smtp.close()


class ServerUnavailable(Exception):
    """No connection to the SMTP server (refused, timed out, TLS or login failed)."""


# RFC 3463 enhanced codes that blame the address or mailbox (5.1.x bad address, 5.2.x mailbox).
_ADDRESS_PROBLEM = re.compile(r"^\s*5\.[12]\.\d+")


def _code_outcome(code: int, text: str, *, permanent: str) -> Outcome:
    error = f"{code} {text}".strip()
    if 400 <= code < 500:
        return Outcome("retry", error)
    if 500 <= code < 600:
        return Outcome(permanent, error)  # type: ignore[arg-type]
    return Outcome("retry", error)


def _data_outcome(code: int, text: str) -> Outcome:
    """A refusal after DATA: bounced when it names the mailbox, else this message is dead.

    A content refusal (5.7.x spam policy, say) says nothing about the reader's address, so it
    must not stop their mail.
    """
    if 500 <= code < 600 and _ADDRESS_PROBLEM.match(text or ""):
        return Outcome("bounced", f"{code} {text}".strip())
    return _code_outcome(code, text, permanent="dead")


@dataclass
class _Batch:
    """What the lanes of one batch share."""

    stop: asyncio.Event | None
    down: str | None = None  # set once the server proved unreachable: the rest goes back to the queue


class EmailSender:
    """Sends batches of rows over SMTP_CONNECTIONS connections, each reused for many messages."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.connections_opened = 0
        self.rendered = RenderedMail(settings)
        # Connections outlive a batch: batches that overlap share SMTP_CONNECTIONS of them.
        self._slots = asyncio.Semaphore(max(1, settings.smtp_connections))
        self._idle: list[aiosmtplib.SMTP] = []

    async def close(self) -> None:
        """Say goodbye on the idle connections (the worker stops or its queue ran dry)."""
        idle, self._idle = self._idle, []
        for smtp in idle:
            await _quit(smtp)

    async def _connect(self) -> aiosmtplib.SMTP:
        s = self.settings
        smtp = aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username or None,
            password=s.smtp_password or None,
            timeout=s.smtp_timeout,
            use_tls=s.smtp_security == "tls",
            start_tls=s.smtp_security == "starttls",
        )
        try:
            await smtp.connect()
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise ServerUnavailable(f"{type(exc).__name__}: {exc}") from exc
        self.connections_opened += 1
        return smtp

    async def _send(self, smtp: aiosmtplib.SMTP, row: EmailRow) -> Outcome:
        """One message on a connected SMTP object; connection loss propagates to the caller.

        Anything wrong with this one message (an address the server cannot take, a header that
        cannot be written) settles it 'dead' with the error kept; the batch goes on.
        """
        options: list[str] = []
        # Without STARTTLS or a login aiosmtplib greets only when sending; the extensions decide
        # what this message may use, so greet first.
        if smtp.is_ehlo_or_helo_needed:
            try:
                await smtp.ehlo()
            except aiosmtplib.SMTPHeloError:
                pass  # an old server: sendmail falls back to HELO
        if not row.recipient.isascii():
            # RFC 6531: a non-ASCII address needs SMTPUTF8; without it the message can never go.
            if not smtp.supports_extension("smtputf8"):
                why = "a non-ASCII address and the server does not offer SMTPUTF8"
                return Outcome("dead", f"{why}: {row.recipient!r}")
            options.append("SMTPUTF8")
        eightbit = smtp.supports_extension("8bitmime") and not self.settings.dkim_enabled
        try:
            # Built by us: send_message would re-fold the headers with the default policy.
            data, is8 = self.rendered.build(row, eightbit=eightbit)
        except Exception as exc:  # a template or header value the message cannot carry
            return Outcome("dead", f"cannot build the message: {type(exc).__name__}: {exc}")
        if is8:
            options.append("BODY=8BITMIME")
        try:
            # The DKIM signature covers exactly the bytes sent.
            data = dkim.sign(self.settings, data)
        except dkim.DKIMError as exc:
            # Our key, not this reader's problem: retried like a refused sender, then dead.
            return Outcome("retry", str(exc))
        try:
            sender = envelope_sender(self.settings, row)
            if pipelining.supported(smtp):
                timeout = self.settings.smtp_timeout
                # Built here with CRLF lines throughout: no need to scan for bare line ends.
                await pipelining.transact(
                    smtp, sender, row.recipient, data, mail_options=options, read_timeout=timeout, crlf=True
                )
            else:
                await smtp.sendmail(sender, [row.recipient], data, mail_options=options)
        except pipelining.Unsendable as exc:
            return Outcome("dead", str(exc))
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0]
            return _code_outcome(refused.code, refused.message, permanent="bounced")
        except aiosmtplib.SMTPSenderRefused as exc:
            # Our own address refused: a configuration problem, not this reader's; retried, then dead.
            return Outcome("retry", f"sender refused: {exc.code} {exc.message}")
        except aiosmtplib.SMTPServerDisconnected:
            raise
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code == 421:  # the server is closing this connection; try again later
                return Outcome("retry", f"{exc.code} {exc.message}")
            return _data_outcome(exc.code, exc.message)
        except aiosmtplib.SMTPTimeoutError as exc:
            return Outcome("retry", f"timeout: {exc}")
        except aiosmtplib.SMTPNotSupported as exc:
            return Outcome("dead", f"not supported by the server: {exc}")
        except aiosmtplib.SMTPException as exc:
            return Outcome("retry", f"{type(exc).__name__}: {exc}")
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception as exc:
            # Raised mid-transaction (MAIL FROM may have gone): the connection is in an unknown
            # state, so it is dropped and the next message opens a fresh one.
            smtp.close()
            return Outcome("dead", f"{type(exc).__name__}: {exc}")
        return SENT

    async def _deliver(
        self, smtp: aiosmtplib.SMTP | None, row: EmailRow
    ) -> tuple[Outcome, aiosmtplib.SMTP | None]:
        """Send `row`, (re)connecting as needed; a dropped connection gets one reconnect and retry.

        Raises ServerUnavailable when no connection can be made at all.
        """
        outcome = Outcome("retry", "not attempted")
        for attempt in (1, 2):
            try:
                if smtp is None or not smtp.is_connected:
                    smtp = await self._connect()
                outcome = await self._send(smtp, row)
                break
            except (aiosmtplib.SMTPServerDisconnected, ConnectionError) as exc:
                smtp = None
                outcome = Outcome("retry", f"connection lost: {exc}")
                log.info("SMTP connection lost (%s); reconnecting (attempt %d)", exc, attempt)
        if smtp is not None and not smtp.is_connected:
            smtp = None
        return outcome, smtp

    async def _lane(self, queue: asyncio.Queue, report: Report, batch: _Batch) -> None:
        """One connection working through groups of rows (one recipient's rows stay in order)."""
        async with self._slots:
            smtp = self._idle.pop() if self._idle else None
            try:
                smtp = await self._work(smtp, queue, report, batch)
            except BaseException:
                if smtp is not None:
                    smtp.close()
                raise
            if smtp is not None and smtp.is_connected:
                self._idle.append(smtp)

    async def _work(
        self, smtp: aiosmtplib.SMTP | None, queue: asyncio.Queue, report: Report, batch: _Batch
    ) -> aiosmtplib.SMTP | None:
        later = self.settings.delivery_retry_base
        while True:
            try:
                group = queue.get_nowait()
            except asyncio.QueueEmpty:
                return smtp
            gone: Outcome | None = None
            for row in group:
                if batch.stop is not None and batch.stop.is_set():
                    outcome = Outcome("requeue", None)
                elif gone is not None:
                    outcome = gone
                elif batch.down is not None:
                    outcome = Outcome("requeue", batch.down, delay=later)
                else:
                    try:
                        outcome, smtp = await self._deliver(smtp, row)
                    except ServerUnavailable as exc:
                        batch.down = batch.down or f"SMTP server unavailable: {exc}"
                        outcome = Outcome("requeue", batch.down, delay=later)
                    if outcome.status == "bounced":
                        gone = Outcome("cancelled", outcome.error)
                await report(row, outcome)

    async def send_groups(
        self, groups: Sequence[Sequence[EmailRow]], report: Report, *, stop: asyncio.Event | None = None
    ) -> None:
        """Send every row, calling `report(row, outcome)` as each one settles.

        Once `stop` is set, messages not yet started are reported 'requeue' (the one in flight ends).
        """
        if not groups:
            return
        queue: asyncio.Queue = asyncio.Queue()
        for group in groups:
            queue.put_nowait(list(group))
        batch = _Batch(stop=stop)
        lanes = max(1, min(self.settings.smtp_connections, len(groups)))
        async with asyncio.TaskGroup() as tasks:
            for _ in range(lanes):
                tasks.create_task(self._lane(queue, report, batch))
        if batch.down:
            log.error(
                "%s (%s:%s); unsent mail stays queued and is retried in %.0f s",
                batch.down,
                self.settings.smtp_host,
                self.settings.smtp_port,
                self.settings.delivery_retry_base,
            )
