"""DKIM: sign the exact bytes an email goes out as, and make the key pair `clapper dkim keygen` writes.

Signing happens after the message is flattened with the SMTP policy; anything that re-encodes the
message afterwards (a different policy, send_message) would break the body hash.
"""

from __future__ import annotations

import base64
import os
from functools import lru_cache
from pathlib import Path

from digests.config import Settings

# RFC 6376 5.4: what a reader sees and what a list message is judged by; the unsubscribe headers
# must be covered or a relay could swap them. The MIME headers tie the body to its structure.
SIGNED_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
)


class DKIMError(Exception):
    """The key file is missing or unreadable, or dkimpy refused to sign."""


@lru_cache(maxsize=4)
def _key(path: str, mtime: float) -> bytes:
    return Path(path).read_bytes()


def private_key(settings: Settings) -> bytes:
    path = settings.dkim_private_key_file
    try:
        return _key(path, os.stat(path).st_mtime)
    except OSError as exc:
        raise DKIMError(f"cannot read DKIM_PRIVATE_KEY_FILE {path}: {exc.strerror}") from exc


def sign(settings: Settings, raw: bytes) -> bytes:
    """`raw` with a DKIM-Signature header on top; unchanged when DKIM is not configured."""
    if not settings.dkim_enabled:
        return raw
    # Sign only the headers present: an absent header signed as empty is fine by RFC 6376, but
    # naming each one keeps the h= list readable in a mail client's "show original".
    present = {line.split(b":", 1)[0].strip().lower() for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")}
    headers = [h.encode() for h in SIGNED_HEADERS if h.lower().encode() in present]
    # Imported here: dkimpy pulls in dnspython, a noticeable start-up cost for senders that never sign.
    import dkim

    try:
        signature = dkim.sign(
            raw,
            settings.dkim_selector.encode(),
            settings.dkim_domain.encode(),
            private_key(settings),
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=headers,
        )
    except dkim.DKIMException as exc:
        raise DKIMError(f"DKIM signing failed: {exc}") from exc
    return signature + raw


def keygen(out: Path, *, bits: int = 2048) -> str:
    """Write a new RSA private key to `out` (mode 0600) and return the public key for DNS (p=)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,  # PKCS#1, what dkimpy reads
        serialization.NoEncryption(),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(public).decode()


def txt_record(public_key: str) -> str:
    return f"v=DKIM1; k=rsa; p={public_key}"


def record_name(selector: str, domain: str) -> str:
    return f"{selector}._domainkey.{domain}"
