"""How often a code email may go to one address (and from one chat), and how many wrong codes an
address may see: the state lives in EmailCodeLog, apart from the subscriber row, so `/email off`,
`/stop` or asking again resets nothing.

Addresses are stored as a keyed hash: the limits must outlive a forgotten address without
keeping the address itself.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, func
from sqlmodel import Session, select

from digests.config import Settings
from digests.models import EmailCodeLog

# A second code within this delay is refused, so /email cannot be used to flood someone's inbox.
INTERVAL = timedelta(seconds=60)
WINDOW = timedelta(days=1)
PER_ADDRESS_PER_DAY = 5
PER_CHAT_PER_DAY = 10
# Wrong /verify codes per address per day, whichever code they were aimed at.
WRONG_PER_ADDRESS_PER_DAY = 5

SENT = "sent"
WRONG = "wrong"


@dataclass(frozen=True)
class Refusal:
    """Why no code goes out now; `reason` picks the wording in the templates."""

    reason: str  # too_soon | too_many_today | too_many_wrong
    extra: dict[str, object] = field(default_factory=dict)


def address_key(settings: Settings, address: str) -> str:
    return hmac.new(
        settings.secret().encode(), f"clapper.code-limit:{address}".encode(), hashlib.sha256
    ).hexdigest()


def _events(session: Session, *, kind: str, since: datetime, address_hash: str | None = None,
            chat_id: int | None = None) -> tuple[int, datetime | None, datetime | None]:
    """(count, oldest, newest) of `kind` events since `since`, for one address or one chat."""
    query = select(func.count(), func.min(EmailCodeLog.at), func.max(EmailCodeLog.at)).where(
        EmailCodeLog.kind == kind, EmailCodeLog.at > since
    )
    if address_hash is not None:
        query = query.where(EmailCodeLog.address_hash == address_hash)
    else:
        query = query.where(EmailCodeLog.chat_id == chat_id)
    count, oldest, newest = session.exec(query).one()
    return count, oldest, newest


def wrong_codes(session: Session, settings: Settings, address: str, *, now: datetime) -> int:
    """Wrong codes tried for `address` in the last day."""
    return _events(session, kind=WRONG, since=now - WINDOW, address_hash=address_key(settings, address))[0]


def refusal(
    session: Session, settings: Settings, *, address: str, chat_id: int | None, now: datetime
) -> Refusal | None:
    """None when a code email to `address` (asked from `chat_id`, if any) may go out now."""
    key = address_key(settings, address)
    since = now - WINDOW
    if wrong_codes(session, settings, address, now=now) >= WRONG_PER_ADDRESS_PER_DAY:
        return Refusal("too_many_wrong")
    counts = [(_events(session, kind=SENT, since=since, address_hash=key), PER_ADDRESS_PER_DAY)]
    if chat_id is not None:
        counts.append((_events(session, kind=SENT, since=since, chat_id=chat_id), PER_CHAT_PER_DAY))
    waits = [newest + INTERVAL - now for (_n, _o, newest), _cap in counts if newest is not None]
    wait = max(waits, default=timedelta(0))
    if wait > timedelta(0):
        return Refusal("too_soon", {"seconds": int(wait.total_seconds()) + 1})
    for (count, oldest, _newest), cap in counts:
        if count >= cap and oldest is not None:
            hours = max(1, math.ceil((oldest + WINDOW - now).total_seconds() / 3600))
            return Refusal("too_many_today", {"hours": hours})
    return None


def record(
    session: Session, settings: Settings, *, address: str, chat_id: int | None, kind: str, now: datetime
) -> None:
    """Count one code sent (or one wrong code tried) for `address`; forget what is past the window."""
    session.execute(delete(EmailCodeLog).where(EmailCodeLog.at <= now - WINDOW))
    session.add(EmailCodeLog(address_hash=address_key(settings, address), chat_id=chat_id, kind=kind, at=now))
    session.flush()
