"""`clapper inbound`: real bounces, complaint reports and unsubscribe mails, by --file and over SMTP.

The corpus (tests/corpus/inbound/README.md) is mail other people's servers and clients produced,
adapted only by addressing it to our VERP address. Each token names outbox row 1 and subscriber 1
at the address below, made with the test SECRET_KEY.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import aiosmtplib
import pytest
from sqlmodel import select

from digests import runner, status, subscriptions
from digests.db import session_scope
from digests.inbound import outcomes
from digests.models import InboundEvent, utcnow
from tests.deliver_support import add_subscriber, queue_email, row, subscriber
from tests.fakes.smtp import free_port

CORPUS = Path(__file__).resolve().parent / "corpus" / "inbound"
BOUNCE_DOMAIN = "bounce.clapper.test"

# file: (reader's address, kind read, reader's email_status after, their queued mail after)
CASES = {
    "dsn_04.eml": ("HAASM@yogi.urz.unibas.ch", "hard_bounce", "bounced", "cancelled"),
    "postfix_01.eml": ("xxxxx@local.ie", "hard_bounce", "bounced", "cancelled"),
    "qmail_01.eml": ("psadisc@wwwmail.n-h.de", "hard_bounce", "bounced", "cancelled"),
    "exim_01.eml": ("delangen@its.tudelft.nl", "hard_bounce", "bounced", "cancelled"),
    "yahoo_01.eml": ("subscribe.motorcycles@listsociety.com", "hard_bounce", "bounced", "cancelled"),
    "dsn_05_delayed.eml": ("pkocmid@atlas.cz", "soft_bounce", "confirmed", "queued"),
    "simple_03_warning.eml": ("jacobus@geo.co.za", "soft_bounce", "confirmed", "queued"),
    "dsn_03_delivered.eml": ("reader@example.org", "ignored", "confirmed", "queued"),
    "arf_rfc5965_abuse.eml": ("user@example.com", "complaint", "unsubscribed", "cancelled"),
    "arf_abuse_minimal.eml": ("user@example.com", "complaint", "unsubscribed", "cancelled"),
    "arf_opendmarc_auth_failure.eml": ("address@myotherdomain.name", "ignored", "confirmed", "queued"),
    "reply_outlook_unsubscribe.eml": ("bmurthyv@nvidia.com", "unsubscribe", "unsubscribed", "cancelled"),
    "mailto_outlook_unsubscribe.eml": ("bmurthyv@nvidia.com", "unsubscribe", "unsubscribed", "cancelled"),
}
# Where each arrives: the VERP address in its To:, or (a reply) the MAIL_FROM address.
RCPT = {
    "dsn_04.eml": f"bounces+1-1-ar2xdmo3y2smfpmz@{BOUNCE_DOMAIN}",
    "arf_rfc5965_abuse.eml": f"bounces+1-1-gywkp7e3eenasvny@{BOUNCE_DOMAIN}",
    "reply_outlook_unsubscribe.eml": "digests@clapper.test",
    "mailto_outlook_unsubscribe.eml": f"unsubscribe+1-1-grwq4rblynxfjjdc@{BOUNCE_DOMAIN}",
    "dsn_05_delayed.eml": f"bounces+1-1-z7y6rrmcs5agkov3@{BOUNCE_DOMAIN}",
}


@pytest.fixture
def inbound_settings(settings):
    return settings.model_copy(
        update={"bounce_domain": BOUNCE_DOMAIN, "mail_from": "Clapper <digests@clapper.test>"}
    )


@pytest.fixture
def sqlite_url(tmp_path):
    """A migrated SQLite database, for the tests that run once per corpus file."""
    from digests import db

    url = f"sqlite:///{tmp_path / 'corpus.db'}"
    db.upgrade(url)
    yield url
    db.get_engine(url).dispose()


def _cli(db_url, monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from digests.cli import app
    from digests.config import get_settings

    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("SECRET_KEY", "test-secret-key-0123456789abcdef-012")
    monkeypatch.setenv("BOUNCE_DOMAIN", BOUNCE_DOMAIN)
    monkeypatch.setenv("MAIL_FROM", "Clapper <digests@clapper.test>")
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    runner = CliRunner()
    return lambda *args, **kw: runner.invoke(app, list(args), catch_exceptions=False, **kw)


@pytest.fixture
def cli(db_url, monkeypatch, tmp_path):
    from digests.config import get_settings

    yield _cli(db_url, monkeypatch, tmp_path)
    get_settings.cache_clear()


@pytest.fixture
def sqlite_cli(sqlite_url, monkeypatch, tmp_path):
    from digests import db
    from digests.config import get_settings

    yield _cli(sqlite_url, monkeypatch, tmp_path), db.init(sqlite_url)
    get_settings.cache_clear()


def _reader_and_bystander(engine, address: str) -> tuple[int, int, int, int]:
    """The reader the corpus tokens name (subscriber 1, outbox row 1) and someone else."""
    reader = add_subscriber(engine, email=address)
    reader_row = queue_email(engine, reader, address, "Your digest")
    other = add_subscriber(engine, email="bystander@example.org")
    other_row = queue_email(engine, other, "bystander@example.org", "Your digest")
    assert (reader, reader_row) == (1, 1)
    return reader, reader_row, other, other_row


def _events(engine) -> list[tuple[str, str, int | None]]:
    with session_scope(engine) as session:
        rows = session.exec(select(InboundEvent).order_by(InboundEvent.id)).all()
        return [(e.kind, e.outcome, e.subscriber_id) for e in rows]


def _assert_outcome(engine, name, ids):
    address, kind, status_after, row_after = CASES[name]
    reader, reader_row, other, other_row = ids
    assert subscriber(engine, reader).email_status == status_after
    assert row(engine, reader_row).state == row_after
    assert subscriber(engine, other).email_status == "confirmed"
    assert row(engine, other_row).state == "queued"
    changed = {"bounced": "bounced", "unsubscribed": "unsubscribed"}.get(status_after, "none")
    assert _events(engine) == [(kind, changed, reader)]


@pytest.mark.parametrize("name", sorted(CASES))
def test_real_message_by_file(name, sqlite_cli):
    cli, engine = sqlite_cli
    ids = _reader_and_bystander(engine, CASES[name][0])
    result = cli("inbound", "--file", str(CORPUS / name))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(CASES[name][1].replace("_", " ") + ": ")
    _assert_outcome(engine, name, ids)


def test_real_message_on_stdin(cli, engine):
    ids = _reader_and_bystander(engine, CASES["qmail_01.eml"][0])
    result = cli("inbound", "--file", "-", input=(CORPUS / "qmail_01.eml").read_bytes())
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("hard bounce: reader #1 is now bounced (bounce: psadisc@wwwmail.n-h.de)")
    _assert_outcome(engine, "qmail_01.eml", ids)


@pytest.mark.parametrize("name", sorted(RCPT))
async def test_real_message_over_smtp(name, engine, inbound_settings):
    import asyncio

    ids = _reader_and_bystander(engine, CASES[name][0])
    port = free_port()
    stop = asyncio.Event()
    # As `clapper run` starts it when BOUNCE_DOMAIN and INBOUND_PORT are set (digests.runner).
    listen = inbound_settings.model_copy(update={"inbound_host": "127.0.0.1", "inbound_port": port})
    parts = runner.Parts(bot=None, scheduler=False, worker=False, inbound=True)
    listening = asyncio.create_task(runner.serve(listen, engine, parts, stop=stop, install_signals=False))
    try:
        for _ in range(100):
            try:
                smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=5)
                await smtp.connect()
                break
            except OSError:
                await asyncio.sleep(0.02)
        # A bounce comes with the null sender (RFC 5321 4.5.5); the rest from the writer.
        sender = "" if "dsn" in name or "arf" in name else CASES[name][0]
        errors, _reply = await smtp.sendmail(sender, [RCPT[name]], (CORPUS / name).read_bytes())
        assert errors == {}
        # Not an open door: mail for other domains is refused at RCPT.
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
            await smtp.sendmail("x@example.net", ["someone@example.net"], b"Subject: hi\r\n\r\nhi\r\n")
        assert refused.value.recipients[0].code == 550
        await smtp.quit()
    finally:
        stop.set()
        assert await listening == 0
    _assert_outcome(engine, name, ids)


def test_forged_stale_misdirected_and_unmatched_mail_changes_nothing(cli, engine, tmp_path):
    reader, reader_row, *_ = _reader_and_bystander(engine, "HAASM@yogi.urz.unibas.ch")
    dsn = (CORPUS / "dsn_04.eml").read_bytes()
    reply = (CORPUS / "reply_outlook_unsubscribe.eml").read_bytes()
    variants = {
        # one letter of the MAC changed
        "forged": dsn.replace(b"bounces+1-1-ar2xdmo3y2smfpmz@", b"bounces+1-1-ar2xdmo3y2smfpmq@"),
        # a valid token, but for an address subscriber 1 does not have (bmurthyv@nvidia.com)
        "stale": reply,
        # the address alone is never trusted: without the token nobody is bounced
        "unmatched": dsn.replace(b"<bounces+1-1-ar2xdmo3y2smfpmz@bounce.clapper.test>", b"<pm@x.org>"),
    }  # fmt: skip
    for label, raw in variants.items():
        assert raw != dsn or label == "stale"
        path = tmp_path / f"{label}.eml"
        path.write_bytes(raw)
        result = cli("inbound", "--file", str(path))
        expected = "unmatched" if label == "unmatched" else "forged"
        assert result.stdout.startswith(f"{expected}: nothing changed"), (label, result.stdout)
    assert subscriber(engine, reader).email_status == "confirmed"
    assert row(engine, reader_row).state == "queued"
    assert _events(engine) == [
        ("forged", "none", None),
        ("forged", "none", None),
        ("unmatched", "none", None),
    ]


def test_a_reply_is_believed_only_from_the_readers_own_address(sqlite_cli, tmp_path):
    cli, engine = sqlite_cli
    reader, *_ = _reader_and_bystander(engine, "bmurthyv@nvidia.com")
    raw = (CORPUS / "reply_outlook_unsubscribe.eml").read_bytes()
    path = tmp_path / "other.eml"
    path.write_bytes(
        raw.replace(b"From:   Bhanu Murthy V <bmurthyv@nvidia.com>", b"From: Mallory <m@example.net>")
    )
    result = cli("inbound", "--file", str(path))
    assert result.stdout.startswith("forged: nothing changed")
    assert subscriber(engine, reader).email_status == "confirmed"


def test_three_soft_bounces_within_seven_days_bounce_the_address(engine, inbound_settings):
    reader, reader_row, *_ = _reader_and_bystander(engine, "pkocmid@atlas.cz")
    raw = (CORPUS / "dsn_05_delayed.eml").read_bytes()
    now = utcnow()
    for days_ago, expected in ((9, "none"), (5, "none"), (2, "none"), (0, "bounced")):
        result = outcomes.handle(engine, inbound_settings, raw, now=now - timedelta(days=days_ago))
        assert (result.kind, result.outcome) == ("soft_bounce", expected), days_ago
    # The one 9 days ago fell out of the window, so it took a fourth.
    assert subscriber(engine, reader).email_status == "bounced"
    assert row(engine, reader_row).state == "cancelled"


def test_a_bounce_after_an_unsubscribe_keeps_the_unsubscribe(engine, inbound_settings):
    reader, *_ = _reader_and_bystander(engine, "user@example.com")
    outcomes.handle(engine, inbound_settings, (CORPUS / "arf_rfc5965_abuse.eml").read_bytes())
    assert subscriber(engine, reader).email_status == "unsubscribed"
    again = outcomes.handle(engine, inbound_settings, (CORPUS / "arf_abuse_minimal.eml").read_bytes())
    assert (again.kind, again.outcome) == ("complaint", "none")


def test_outcomes_are_counted_in_status_stats_and_listed(cli, engine, inbound_settings):
    _reader_and_bystander(engine, "HAASM@yogi.urz.unibas.ch")
    outcomes.handle(engine, inbound_settings, (CORPUS / "dsn_04.eml").read_bytes())
    # dsn_03's token names another address for subscriber 1
    outcomes.handle(engine, inbound_settings, (CORPUS / "dsn_03_delivered.eml").read_bytes())
    health = status.collect(engine, inbound_settings)
    assert health.inbound_24h == {"forged": 1, "hard_bounce": 1}
    assert health.to_dict()["inbound_24h"] == {"forged": 1, "hard_bounce": 1}
    assert subscriptions.stats(engine).inbound_today == {"forged": 1, "hard_bounce": 1}

    listed = cli("subscribers", "list", "--json")
    rows = {r["email"]: r["status"] for r in map(json.loads, listed.stdout.splitlines())}
    assert rows == {"HAASM@yogi.urz.unibas.ch": "bounced", "bystander@example.org": "confirmed"}
    text = cli("status")
    assert "Mail read in the last 24 h: forged 1, hard bounce 1" in text.stdout


async def test_an_email_sent_with_bounce_domain_bounces_back_to_the_corpus_address(engine, inbound_settings):
    """The VERP address we send from is exactly the one the real DSN in the corpus is addressed to."""
    from digests.deliver import deliver_once_async
    from tests.fakes.smtp import SMTPSink

    _reader_and_bystander(engine, "HAASM@yogi.urz.unibas.ch")
    async with SMTPSink() as sink:
        await deliver_once_async(engine, inbound_settings.model_copy(update=sink.settings()), worker_id="w")
    [got] = sink.to("HAASM@yogi.urz.unibas.ch")
    assert got.mail_from == "bounces+1-1-ar2xdmo3y2smfpmz@bounce.clapper.test"
    assert len(got.mail_from.partition("@")[0]) <= 64  # RFC 5321 local-part limit
    assert str(got.message["Message-ID"]).startswith("<1-1-ar2xdmo3y2smfpmz.")
    assert str(got.message["List-Unsubscribe"]) == (
        "<mailto:unsubscribe+1-1-ar2xdmo3y2smfpmz@bounce.clapper.test?subject=unsubscribe>"
    )
    [other] = sink.to("bystander@example.org")
    assert other.mail_from == "bounces+2-2-" + other.mail_from.split("-", 2)[2]
    assert other.mail_from != got.mail_from


def test_without_bounce_domain_the_envelope_sender_is_mail_from():
    from digests.channels.email import envelope_sender
    from digests.config import Settings
    from digests.models import Outbox

    settings = Settings(_env_file=None, secret_key="test-secret-key-0123456789abcdef-012")
    row_ = Outbox(id=5, subscriber_id=3, channel="email", digest_key="d", recipient="a@example.org", body="")
    assert envelope_sender(settings, row_) == "clapper@localhost"
    with_domain = settings.model_copy(update={"bounce_domain": "b.example.org"})
    assert envelope_sender(with_domain, row_).startswith("bounces+5-3-")
    assert envelope_sender(with_domain, row_).endswith("@b.example.org")


def test_clapper_inbound_listens_until_sigterm(tmp_path):
    """The command as an MTA relays to it: a real process, a real SMTP session, then SIGTERM.

    One database is enough here (a process start is slow); the SMTP path runs on both in-process.
    """
    import os
    import signal
    import smtplib
    import subprocess
    import sys
    import time

    from digests import db

    db_url = f"sqlite:///{tmp_path / 'inbound.db'}"
    engine = db.init(db_url)
    ids = _reader_and_bystander(engine, "user@example.com")
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "SECRET_KEY": "test-secret-key-0123456789abcdef-012",
        "BOUNCE_DOMAIN": BOUNCE_DOMAIN,
        "MAIL_FROM": "Clapper <digests@clapper.test>",
        "INBOUND_HOST": "127.0.0.1",
        "INBOUND_PORT": str(port),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", "from digests.cli import main; main()", "inbound"], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                client = smtplib.SMTP("127.0.0.1", port, timeout=5)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
                time.sleep(0.05)
        with client:
            # On the wire every line ends in CRLF (smtplib sends bytes as they are).
            wire = (CORPUS / "arf_rfc5965_abuse.eml").read_bytes().replace(b"\n", b"\r\n")
            client.sendmail("", ["bounces+1-1-gywkp7e3eenasvny@" + BOUNCE_DOMAIN], wire)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert "inbound complaint: unsubscribed" in out
    assert subscriber(engine, ids[0]).email_status == "unsubscribed"
    assert row(engine, ids[1]).state == "cancelled"


def test_the_old_mailto_of_emails_sent_before_bounce_domain_still_unsubscribes(engine, inbound_settings):
    """Before BOUNCE_DOMAIN the mailto went to MAIL_FROM with the signed link token in the subject."""
    from digests import tokens

    reader, reader_row, *_ = _reader_and_bystander(engine, "ann@example.org")
    ann = tokens.Recipient(reader, "ann@example.org")
    subject = "unsubscribe " + tokens.make_token(inbound_settings, ann, "unsubscribe")
    raw = (
        f"From: Ann <ann@example.org>\r\nTo: digests@clapper.test\r\nSubject: {subject}\r\n"
        "Message-ID: <x1@example.org>\r\n\r\n\r\n"
    ).encode()
    result = outcomes.handle(engine, inbound_settings, raw, ["digests@clapper.test"])
    assert (result.kind, result.outcome, result.subscriber_id) == ("unsubscribe", "unsubscribed", reader)
    assert row(engine, reader_row).state == "cancelled"
    tampered = raw.replace(subject.encode(), subject.encode()[:-2] + b"xx")
    assert outcomes.handle(engine, inbound_settings, tampered, ["digests@clapper.test"]).kind == "forged"
