"""Turn a parsed inbound message into reader status, and record it (one InboundEvent each).

hard bounce -> bounced; a 3rd soft bounce within 7 days -> bounced; complaint or mailed
unsubscribe -> unsubscribed. Queued mail for the address is withdrawn, as an unsubscribe by link
does. A token that does not verify against the reader's current address changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from digests import emails, tokens, verp
from digests.config import Settings
from digests.db import session_scope
from digests.inbound import parse as parsing
from digests.models import InboundEvent, Outbox, Subscriber, utcnow

log = logging.getLogger(__name__)

SOFT_LIMIT = 3
SOFT_WINDOW = timedelta(days=7)
# Mail still deliverable: a bounce or complaint about an address already stopped changes nothing.
_LIVE = ("confirmed", "pending")
UNMATCHED, FORGED = "unmatched", "forged"
KINDS = (
    parsing.HARD,
    parsing.SOFT,
    parsing.COMPLAINT,
    parsing.UNSUBSCRIBE,
    parsing.IGNORED,
    UNMATCHED,
    FORGED,
)


@dataclass(frozen=True)
class Result:
    kind: str  # one of KINDS
    outcome: str  # bounced | unsubscribed | none
    subscriber_id: int | None
    detail: str


def _reader(
    session: Session, settings: Settings, found: parsing.Parsed
) -> tuple[Subscriber | None, int | None, bool]:
    """(subscriber, outbox id, forged): the first token that verifies, else whether any was offered."""
    for token in found.tokens:
        claim = verp.parse(token)
        if claim is None:
            continue
        subscriber = session.get(Subscriber, claim.subscriber_id)
        if subscriber is not None and verp.check(settings, claim, subscriber.email):
            return subscriber, claim.outbox_id, False
    if found.legacy_unsubscribe:
        try:
            # Bound to the address it was mailed to, like the one-click link it duplicates.
            claim = tokens.read_token(settings, found.legacy_unsubscribe, "unsubscribe")
            subscriber = tokens.load(session, settings, claim)
        except tokens.InvalidToken:  # StaleToken too: the reader has moved to another address
            return None, None, True
        if subscriber is not None:
            return subscriber, None, False
    return None, None, bool(found.tokens or found.legacy_unsubscribe)


def _withdraw(session: Session, subscriber_id: int, reason: str) -> int:
    result = session.execute(
        update(Outbox)
        .where(Outbox.subscriber_id == subscriber_id, Outbox.channel == "email", Outbox.state == "queued")
        .values(state="cancelled", last_error=reason)
    )
    return result.rowcount or 0


def _soft_count(session: Session, subscriber_id: int, now: datetime) -> int:
    return int(
        session.exec(
            select(func.count())
            .select_from(InboundEvent)
            .where(
                InboundEvent.subscriber_id == subscriber_id,
                InboundEvent.kind == parsing.SOFT,
                InboundEvent.created_at > now - SOFT_WINDOW,
            )
        ).one()
    )


def _apply(session: Session, subscriber: Subscriber, kind: str, detail: str, now: datetime) -> str:
    if subscriber.email_status not in _LIVE:
        return "none"
    if kind in (parsing.COMPLAINT, parsing.UNSUBSCRIBE):
        emails.unsubscribe(session, subscriber.id)
        return "unsubscribed"
    if kind == parsing.SOFT and _soft_count(session, subscriber.id, now) < SOFT_LIMIT:
        return "none"
    if kind in (parsing.HARD, parsing.SOFT):
        subscriber.email_status = "bounced"
        session.add(subscriber)
        _withdraw(session, subscriber.id, f"address bounced: {detail}"[:500])
        return "bounced"
    return "none"


def record(
    engine: Engine, settings: Settings, found: parsing.Parsed, *, now: datetime | None = None
) -> Result:
    now = now or utcnow()
    with session_scope(engine) as session:
        subscriber, outbox_id, forged = _reader(session, settings, found)
        kind, detail = found.kind, found.detail
        if subscriber is None:
            kind = FORGED if forged else (UNMATCHED if found.kind != parsing.IGNORED else parsing.IGNORED)
        elif found.from_reader and (found.sender or "").lower() != (subscriber.email or "").lower():
            kind, detail = FORGED, f"reply from {found.sender}, not from the reader; {detail}"
            subscriber = None
        event = InboundEvent(
            kind=kind,
            subscriber_id=subscriber.id if subscriber else None,
            outbox_id=outbox_id,
            detail=detail[:2000],
            created_at=now,
        )
        session.add(event)
        session.flush()  # the soft-bounce count includes this one
        outcome = _apply(session, subscriber, kind, detail, now) if subscriber is not None else "none"
        event.outcome = outcome
        session.add(event)
        result = Result(kind, outcome, subscriber.id if subscriber else None, detail)
    log.info(
        "inbound %s: %s (%s)",
        kind,
        outcome,
        detail,
        extra={"event": f"inbound.{kind}", "outcome": outcome, "subscriber_id": result.subscriber_id},
    )
    return result


def handle(
    engine: Engine,
    settings: Settings,
    raw: bytes,
    envelope_recipients: list[str] | None = None,
    *,
    now: datetime | None = None,
) -> Result:
    """Read one message (as received over SMTP, or from an MTA pipe) and act on it."""
    return record(engine, settings, parsing.parse(raw, envelope_recipients), now=now)
