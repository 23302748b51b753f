"""A real SMTP server for tests and benches (aiosmtpd on 127.0.0.1, a free port), recording mail.

    with SMTPSink() as sink:                 # or `async with`
        settings = settings.model_copy(update=sink.settings())
        ...
        sink.messages            # [Received(mail_from, rcpt_tos, message, raw)]
        sink.to("a@example.org")
        sink.connections         # SMTP sessions opened (EHLO/HELO seen)

Behaviours to test a sender against:
    sink.reply_rcpt("x@example.org", "550 5.1.1 No such user")   # every RCPT for x gets this
    sink.reply_rcpt("y@example.org", "451 4.3.0 Try later", times=2)  # then accepted
    sink.reply_data("z@example.org", "554 5.7.1 Rejected as spam")    # refused after DATA
    sink.drop_after = 3        # each connection is cut (no reply) on the 4th MAIL FROM
    SMTPSink(delay=0.05)       # every message takes 50 ms to be accepted
    SMTPSink(smtputf8=False)   # does not offer SMTPUTF8: non-ASCII addresses cannot be sent
    SMTPSink(pipelining=False) # does not offer PIPELINING: one command, one reply
    sink.require_auth("user", "secret")
`dead_port()` is a port nobody listens on: a dead server.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dead_port() -> int:
    """A port that refused connections a moment ago (nothing listens on it)."""
    return free_port()


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes
    mail_options: list[str] = field(default_factory=list)  # MAIL FROM parameters (BODY=8BITMIME…)

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])


class _Handler:
    def __init__(self, sink: SMTPSink) -> None:
        self.sink = sink

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.sink._connection_seen(session)
        session.host_name = hostname
        if self.sink.pipelining:
            # aiosmtpd reads one command line at a time, so commands sent ahead simply wait in its
            # buffer: it can honestly offer RFC 2920, as postfix, exim and the big providers do.
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_HELO(self, server, session, envelope, hostname):
        self.sink._connection_seen(session)
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        sink = self.sink
        done = getattr(session, "clapper_messages", 0)
        if sink.drop_after is not None and done >= sink.drop_after:
            # Cut the line without a word, like a server that crashed or a NAT that timed out.
            with sink._lock:
                sink.drops += 1
            server.transport.close()
            return "421 4.4.2 Connection dropped"
        if sink._auth and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.sink._rcpt_reply(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.sink.delay:
            await asyncio.sleep(self.sink.delay)
        reply = self.sink._data_reply(envelope.rcpt_tos)
        if reply is not None:
            return reply
        raw = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        with self.sink._lock:
            self.sink.messages.append(
                Received(
                    mail_from=envelope.mail_from,
                    rcpt_tos=list(envelope.rcpt_tos),
                    message=message,
                    raw=raw,
                    mail_options=list(envelope.mail_options),
                )
            )
        session.clapper_messages = getattr(session, "clapper_messages", 0) + 1
        return "250 Message accepted for delivery"


class _Authenticator:
    def __init__(self, username: str, password: str) -> None:
        self.username, self.password = username.encode(), password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            self.username,
            self.password,
        )
        return AuthResult(success=ok, handled=False)


class SMTPSink:
    """aiosmtpd in a thread, bound to 127.0.0.1 (its default would be ::1)."""

    def __init__(
        self,
        *,
        port: int | None = None,
        drop_after: int | None = None,
        delay: float = 0.0,
        smtputf8: bool = True,
        pipelining: bool = True,
    ) -> None:
        self.smtputf8 = smtputf8  # offer RFC 6531 SMTPUTF8 (non-ASCII addresses), as aiosmtpd does
        self.pipelining = pipelining  # offer RFC 2920 PIPELINING (False: a server that does not)
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.messages: list[Received] = []
        self.connections = 0
        self.drops = 0
        self.drop_after = drop_after
        self.delay = delay  # seconds each message takes to be accepted (a slow server)
        self._rcpt_replies: dict[str, list] = {}
        self._data_replies: dict[str, list] = {}
        self._auth: tuple[str, str] | None = None
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    # --- behaviour -------------------------------------------------------------------------
    def reply_rcpt(self, address: str, reply: str, *, times: int | None = None) -> None:
        """Answer RCPT TO:<address> with `reply` (e.g. "550 5.1.1 No such user"), `times` times or always."""
        with self._lock:
            self._rcpt_replies[address.lower()] = [reply, times]

    def reply_data(self, address: str, reply: str, *, times: int | None = None) -> None:
        """Refuse the message after DATA (e.g. "554 5.7.1 Rejected as spam") when sent to `address`."""
        with self._lock:
            self._data_replies[address.lower()] = [reply, times]

    def require_auth(self, username: str, password: str) -> None:
        """Refuse mail until the client logs in (call before start())."""
        self._auth = (username, password)

    # --- reading ---------------------------------------------------------------------------
    def to(self, address: str) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if address.lower() in (r.lower() for r in m.rcpt_tos)]

    def count_by_subject(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self._lock:
            for m in self.messages:
                counts[m.subject] = counts.get(m.subject, 0) + 1
        return counts

    def settings(self) -> dict:
        """Settings fields that point a sender at this sink (for Settings.model_copy(update=…))."""
        return {"smtp_host": self.host, "smtp_port": self.port, "smtp_security": "none"}

    def env(self) -> dict[str, str]:
        """The same as environment variables, for a subprocess."""
        return {"SMTP_HOST": self.host, "SMTP_PORT": str(self.port), "SMTP_SECURITY": "none"}

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> SMTPSink:
        kwargs: dict = {"enable_SMTPUTF8": self.smtputf8}
        if self._auth:
            kwargs |= {
                "authenticator": _Authenticator(*self._auth),
                # handle_MAIL insists on a login instead of auth_required=True, which warns without TLS.
                # Tests talk plain SMTP on loopback; production would insist on TLS.
                "auth_require_tls": False,
            }
        self._controller = Controller(_Handler(self), hostname=self.host, port=self.port, **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SMTPSink:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    async def __aenter__(self) -> SMTPSink:
        return self.start()

    async def __aexit__(self, *exc) -> None:
        self.stop()

    # --- internals -------------------------------------------------------------------------
    def _connection_seen(self, session) -> None:
        if not getattr(session, "clapper_counted", False):
            session.clapper_counted = True
            with self._lock:
                self.connections += 1

    def _data_reply(self, rcpt_tos: list[str]) -> str | None:
        for address in rcpt_tos:
            reply = self._take(self._data_replies, address)
            if reply is not None:
                return reply
        return None

    def _rcpt_reply(self, address: str) -> str | None:
        return self._take(self._rcpt_replies, address)

    def _take(self, replies: dict[str, list], address: str) -> str | None:
        with self._lock:
            entry = replies.get(address.lower())
            if entry is None:
                return None
            reply, times = entry
            if times is not None:
                if times <= 0:
                    return None
                entry[1] = times - 1
            return reply


def main(argv: list[str] | None = None) -> None:
    """`python -m tests.fakes.smtp --port N`: a sink in its own process (benches, manual runs)."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(description="Local SMTP sink (aiosmtpd) that accepts and counts mail.")
    parser.add_argument("--port", type=int, default=0, help="0 = a free port")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to accept each message")
    args = parser.parse_args(argv)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    with SMTPSink(port=args.port or None, delay=args.delay) as sink:
        print(f"SMTP sink listening on {sink.host}:{sink.port}", flush=True)
        done.wait()
        print(f"received {len(sink.messages)} message(s) over {sink.connections} connection(s)", flush=True)


if __name__ == "__main__":
    main()
