"""Signed tokens for email links (confirm, unsubscribe, preferences): one reader, one address, one purpose.

A token carries the subscriber id and a keyed digest of (id, address it was mailed to). An id
alone is not an identity: a chat switches addresses, an operator removes a reader. So a link
acts only while the row it names still holds that address (`check`), and is stale otherwise.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlmodel import Session

from digests.config import Settings
from digests.models import Subscriber

PURPOSES = ("confirm", "unsubscribe", "preferences", "view", "feed")
# Unsubscribe links must keep working in old emails; confirmation links should not live forever.
# "view" (an email's own web page) and "feed" (a reader's RSS/Atom feed) sit in old emails and
# feed readers too.
MAX_AGE = {"confirm": 7 * 24 * 3600, "unsubscribe": None, "preferences": None, "view": None, "feed": None}


class InvalidToken(ValueError):
    """Forged, altered, expired, or made for another purpose."""


class ExpiredToken(InvalidToken):
    """Genuine but too old (a confirmation link after 7 days): worth offering a new one."""


class StaleToken(InvalidToken):
    """Genuine, but the reader it names no longer holds the address it was mailed to."""


class Holder(Protocol):
    """What a token is made for: a Subscriber row fits, so does Recipient."""

    @property
    def id(self) -> int | None: ...

    @property
    def email(self) -> str | None: ...


@dataclass(frozen=True)
class Recipient:
    """A subscriber id and the address a message goes to, when the row itself is not at hand."""

    id: int
    email: str


@dataclass(frozen=True)
class Claim:
    """What a valid token says: which subscriber, and the address binding to check against the row."""

    subscriber_id: int
    binding: str


def _serializer(settings: Settings, purpose: str) -> URLSafeTimedSerializer:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    return _cached_serializer(settings.secret(), purpose)


@lru_cache(maxsize=64)
def _cached_serializer(secret: str, purpose: str) -> URLSafeTimedSerializer:
    # Every email of a fan-out signs two links: building the serializer each time showed up there.
    return URLSafeTimedSerializer(secret, salt=f"clapper.{purpose}")


def binding(settings: Settings, subscriber_id: int, address: str) -> str:
    # Keyed, so the URL does not reveal the address to whoever sees it (an unkeyed hash of an
    # address is a dictionary lookup away); 96 bits is plenty under a signature.
    mac = hmac.new(
        settings.secret().encode(), f"clapper.bind:{subscriber_id}:{address}".encode(), hashlib.sha256
    )
    return base64.urlsafe_b64encode(mac.digest()[:12]).decode()


def make_token(settings: Settings, subscriber: Holder, purpose: str) -> str:
    if subscriber.id is None or not subscriber.email:
        raise ValueError("a token needs a stored subscriber with an address")
    return _serializer(settings, purpose).dumps(
        [subscriber.id, binding(settings, subscriber.id, subscriber.email)]
    )


def read_token(settings: Settings, token: str, purpose: str) -> Claim:
    """The claim in `token`, or InvalidToken. Say nothing about the row yet: see `check`."""
    try:
        value = _serializer(settings, purpose).loads(token, max_age=MAX_AGE[purpose])
    except SignatureExpired as exc:
        raise ExpiredToken("this link has expired") from exc
    except BadSignature as exc:
        raise InvalidToken("this link is not valid") from exc
    return _claim(value)


def _claim(value: object) -> Claim:
    # Tokens of the id-only format (a bare int) are refused: they are what the attacks used.
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not isinstance(value[0], int)
        or isinstance(value[0], bool)
        or not isinstance(value[1], str)
    ):
        raise InvalidToken("this link is not valid")
    return Claim(value[0], value[1])


def check(settings: Settings, claim: Claim, subscriber: Holder | None) -> bool:
    """True when `subscriber` (the row loaded for claim.subscriber_id) still holds the address
    the token was made for. The one test every route applies before showing or changing anything."""
    if subscriber is None or subscriber.id != claim.subscriber_id or not subscriber.email:
        return False
    expected = binding(settings, claim.subscriber_id, subscriber.email)
    return hmac.compare_digest(expected, claim.binding)


def link(settings: Settings, subscriber: Holder, purpose: str) -> str | None:
    """The public URL for `purpose`, or None when no PUBLIC_BASE_URL is configured."""
    if not settings.public_base_url:
        return None
    return url(settings, purpose, make_token(settings, subscriber, purpose))


def url(settings: Settings, purpose: str, token: str) -> str | None:
    """The public URL carrying an already made `token`, or None without PUBLIC_BASE_URL."""
    if not settings.public_base_url:
        return None
    return f"{settings.public_base_url.rstrip('/')}/{purpose}?token={token}"


def read_expired(settings: Settings, token: str, purpose: str) -> Claim:
    """Like read_token, but a genuine expired token still makes its claim (to send a new link)."""
    try:
        value = _serializer(settings, purpose).loads(token)
    except BadSignature as exc:
        raise InvalidToken("this link is not valid") from exc
    return _claim(value)


def load(session: Session, settings: Settings, claim: Claim) -> Subscriber | None:
    """The row `claim` names, checked: None when it is gone or holds no address any more (nothing
    to show or change), StaleToken when it now holds another address than the one mailed."""
    subscriber = session.get(Subscriber, claim.subscriber_id)
    if subscriber is None or subscriber.email is None:
        return None
    if not check(settings, claim, subscriber):
        raise StaleToken("this link was sent to an address this subscription no longer uses")
    return subscriber
