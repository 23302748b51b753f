"""Signed tokens for email links (confirm, unsubscribe, preferences): one subscriber, one purpose."""

from __future__ import annotations

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from digests.config import Settings

PURPOSES = ("confirm", "unsubscribe", "preferences", "view", "feed")
# Unsubscribe links must keep working in old emails; confirmation links should not live forever.
# "view" (an email's own web page) and "feed" (a reader's RSS/Atom feed) sit in old emails and
# feed readers too.
MAX_AGE = {"confirm": 7 * 24 * 3600, "unsubscribe": None, "preferences": None, "view": None, "feed": None}


class InvalidToken(ValueError):
    """Forged, altered, expired, or made for another purpose."""


class ExpiredToken(InvalidToken):
    """Genuine but too old (a confirmation link after 7 days): worth offering a new one."""


def _serializer(settings: Settings, purpose: str) -> URLSafeTimedSerializer:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    return URLSafeTimedSerializer(settings.secret(), salt=f"clapper.{purpose}")


def make_token(settings: Settings, subscriber_id: int, purpose: str) -> str:
    return _serializer(settings, purpose).dumps(subscriber_id)


def read_token(settings: Settings, token: str, purpose: str) -> int:
    """The subscriber id in `token`, or InvalidToken."""
    try:
        value = _serializer(settings, purpose).loads(token, max_age=MAX_AGE[purpose])
    except SignatureExpired as exc:
        raise ExpiredToken("this link has expired") from exc
    except BadSignature as exc:
        raise InvalidToken("this link is not valid") from exc
    if not isinstance(value, int):
        raise InvalidToken("this link is not valid")
    return value


def link(settings: Settings, subscriber_id: int, purpose: str) -> str | None:
    """The public URL for `purpose`, or None when no PUBLIC_BASE_URL is configured."""
    if not settings.public_base_url:
        return None
    base = settings.public_base_url.rstrip("/")
    return f"{base}/{purpose}?token={make_token(settings, subscriber_id, purpose)}"


def read_expired(settings: Settings, token: str, purpose: str) -> int:
    """Like read_token, but a genuine expired token still names its subscriber (to send a new link)."""
    try:
        value = _serializer(settings, purpose).loads(token)
    except BadSignature as exc:
        raise InvalidToken("this link is not valid") from exc
    if not isinstance(value, int):
        raise InvalidToken("this link is not valid")
    return value
