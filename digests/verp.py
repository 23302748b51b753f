"""Compact signed tokens for the envelope sender (VERP), Message-IDs and the unsubscribe mailto.

A bounce comes back to `bounces+<token>@BOUNCE_DOMAIN`, so the token must fit a local part (at
most 64 characters, RFC 5321) and survive MTAs that lower-case addresses: base36 ids and a
lower-case base32 HMAC, not an itsdangerous blob. The MAC binds the outbox row, the subscriber and
the address the mail went to, so a token for an address the reader has since changed is void.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from digests.config import Settings

PURPOSE = "bounce"
# 80 bits: nobody guesses a valid token by sending mail at us.
_MAC_BYTES = 10
_TOKEN = re.compile(r"^([0-9a-z]{1,13})-([0-9a-z]{1,13})-([a-z2-7]{16})$")
BOUNCES = "bounces"
UNSUBSCRIBE = "unsubscribe"


@dataclass(frozen=True)
class Claim:
    """What a token says; believe it only after `check` with the subscriber's current address."""

    outbox_id: int
    subscriber_id: int
    mac: str


def _b36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if not number:
            return out


def _mac(settings: Settings, outbox_id: int, subscriber_id: int, address: str) -> str:
    key = hashlib.sha256(f"clapper.{PURPOSE}:{settings.secret()}".encode()).digest()
    text = f"{outbox_id}.{subscriber_id}.{address.strip().lower()}".encode()
    digest = hmac.new(key, text, hashlib.sha256).digest()[:_MAC_BYTES]
    return base64.b32encode(digest).decode().lower()


def make(settings: Settings, *, outbox_id: int, subscriber_id: int, address: str) -> str:
    return f"{_b36(outbox_id)}-{_b36(subscriber_id)}-{_mac(settings, outbox_id, subscriber_id, address)}"


def parse(token: str) -> Claim | None:
    """The ids a token names (not yet verified), or None when it is not shaped like one."""
    match = _TOKEN.match(token.strip().lower())
    if not match:
        return None
    return Claim(int(match[1], 36), int(match[2], 36), match[3])


def check(settings: Settings, claim: Claim, address: str | None) -> bool:
    if not address:
        return False
    expected = _mac(settings, claim.outbox_id, claim.subscriber_id, address)
    return hmac.compare_digest(expected, claim.mac)


def address(settings: Settings, kind: str, token: str) -> str:
    """`bounces+<token>@BOUNCE_DOMAIN` (or `unsubscribe+…`)."""
    return f"{kind}+{token}@{settings.bounce_domain}"


def split_address(text: str) -> tuple[str, str] | None:
    """(kind, token) of `kind+token@domain`, or None."""
    local, at, _domain = text.strip().strip("<>").rpartition("@")
    kind, plus, token = local.partition("+")
    if not at or not plus:
        return None
    return kind.lower(), token


def message_id(settings: Settings, token: str, domain: str) -> str:
    # Replies and complaint reports quote our Message-ID: carrying the token, it names the reader.
    return f"<{token}.{secrets.token_hex(6)}@{domain}>"


def token_in_message_id(text: str) -> str | None:
    inner = text.strip().strip("<>")
    local = inner.partition("@")[0]
    token = local.partition(".")[0]
    return token if parse(token) else None
