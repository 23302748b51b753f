"""The outbox: enqueue (idempotent), claim, mark. The database is the queue."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from digests.models import Outbox


def enqueue(session: Session, message: Outbox) -> bool:
    """Add `message` unless one with its (subscriber, channel, digest_key) exists; True if added.

    A savepoint keeps the caller's transaction usable when the unique key says "already queued".
    """
    existing = session.exec(
        select(Outbox.id).where(
            Outbox.subscriber_id == message.subscriber_id,
            Outbox.channel == message.channel,
            Outbox.digest_key == message.digest_key,
        )
    ).first()
    if existing is not None:
        return False
    try:
        with session.begin_nested():
            session.add(message)
    except IntegrityError:
        return False
    return True
