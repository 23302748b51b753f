"""DKIM: `clapper dkim keygen`, and every email signed so that dkimpy verifies what the SMTP server got."""

from __future__ import annotations

import re
import stat

import dkim
import pytest

from digests.deliver import deliver_once_async
from tests.deliver_support import add_subscriber, queue_email
from tests.fakes.smtp import SMTPSink


@pytest.fixture
def cli(monkeypatch, tmp_path):
    """`clapper …` in-process; keygen touches no database."""
    from typer.testing import CliRunner

    from digests.cli import app
    from digests.config import get_settings

    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(app, list(args), catch_exceptions=False)
    get_settings.cache_clear()


@pytest.fixture
def keypair(cli, tmp_path):
    """(key file, the TXT record value) as `clapper dkim keygen` printed them."""
    key = tmp_path / "keys" / "dkim.pem"
    result = cli("dkim", "keygen", "--domain", "clapper.test", "--selector", "news2026", "--out", str(key))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "news2026._domainkey.clapper.test" in lines
    [record] = [line for line in lines if line.startswith("v=DKIM1; k=rsa; p=")]
    return key, record


def _dns(record: str):
    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return record.encode() if name == b"news2026._domainkey.clapper.test." else None

    return lookup


def test_keygen_writes_a_private_key_only_its_owner_reads(keypair, cli):
    key, record = keypair
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_bytes().startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    assert len(record) > 300  # a 2048-bit key: p= alone is ~392 base64 characters
    again = cli("dkim", "keygen", "--domain", "clapper.test", "--selector", "news2026", "--out", str(key))
    assert again.exit_code == 1 and "refusing to overwrite" in again.output


async def test_every_email_is_signed_and_verifies_as_received(engine, settings, keypair):
    key, record = keypair
    settings = settings.model_copy(
        update={
            "public_base_url": "https://clapper.test",
            "mail_from": "Clapper <digests@clapper.test>",
            "dkim_domain": "clapper.test",
            "dkim_selector": "news2026",
            "dkim_private_key_file": str(key),
        }
    )
    reader = add_subscriber(engine, email="reader@example.org")
    queue_email(
        engine, reader, "reader@example.org", "Your digest: 3 new articles — Ça tourne",
        html="<p>3 new articles: tournage à Liège</p>", text="3 new articles: tournage à Liège",
    )
    async with SMTPSink() as sink:
        report = await deliver_once_async(engine, settings.model_copy(update=sink.settings()), worker_id="w")
    assert report.sent == 1
    [got] = sink.messages
    assert got.raw.startswith(b"DKIM-Signature: ")
    assert dkim.verify(got.raw, dnsfunc=_dns(record))
    # Signed mail is never 8bit, though the server offers 8BITMIME: a relay that downgrades it
    # would break the signature (RFC 6376 5.3).
    assert got.raw.isascii() and b"quoted-printable" in got.raw
    assert "BODY=8BITMIME" not in got.mail_options

    signature = str(got.message["DKIM-Signature"])
    tags = dict(
        part.strip().split("=", 1) for part in re.sub(r"\s+", " ", signature).split(";") if "=" in part
    )
    assert tags["d"] == "clapper.test" and tags["s"] == "news2026"
    assert tags["c"] == "relaxed/relaxed" and tags["a"] == "rsa-sha256"
    assert tags["h"].replace(" ", "").lower().split(":") == [
        "from", "to", "subject", "date", "message-id", "list-id", "list-unsubscribe",
        "list-unsubscribe-post", "mime-version", "content-type",
    ]  # fmt: skip

    # A relay that swaps the unsubscribe link, or touches the body, breaks the signature.
    swapped = got.raw.replace(
        b"List-Unsubscribe: <https://clapper.test/", b"List-Unsubscribe: <https://evil.test/"
    )
    assert swapped != got.raw and not dkim.verify(swapped, dnsfunc=_dns(record))
    assert not dkim.verify(got.raw.replace(b"new articles", b"new artic1es"), dnsfunc=_dns(record))


async def test_unsigned_without_the_settings_and_kept_queued_when_the_key_is_missing(
    engine, settings, tmp_path
):
    from tests.deliver_support import row

    reader = add_subscriber(engine, email="reader@example.org")
    queue_email(engine, reader, "reader@example.org", "Digest", key="digest:1")
    async with SMTPSink() as sink:
        await deliver_once_async(engine, settings.model_copy(update=sink.settings()), worker_id="w")
        [got] = sink.messages
        assert got.message["DKIM-Signature"] is None

        broken = settings.model_copy(
            update={
                "dkim_domain": "clapper.test",
                "dkim_selector": "s",
                "dkim_private_key_file": str(tmp_path / "nope.pem"),
            }
            | sink.settings()
        )
        row_id = queue_email(engine, reader, "reader@example.org", "Digest", key="digest:2")
        await deliver_once_async(engine, broken, worker_id="w")
    assert len(sink.messages) == 1
    got = row(engine, row_id)
    assert got.state == "queued" and "DKIM_PRIVATE_KEY_FILE" in got.last_error
