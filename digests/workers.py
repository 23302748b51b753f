"""Delivery workers' heartbeats: claims live while their worker's heartbeat does.

Each worker upserts its row every DELIVERY_HEARTBEAT_SECONDS. One silent for DEAD_AFTER_BEATS
heartbeats is dead: any other worker gives its 'sending' rows back to the queue and forgets it. A
row claimed by a worker that never wrote a heartbeat (an older version) falls back to
DELIVERY_CLAIM_TIMEOUT. The same rows tell how many live workers share the bot's Telegram rate.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, or_, update
from sqlalchemy.engine import Engine
from sqlmodel import select

from digests.db import session_scope
from digests.models import DeliveryWorker, Outbox, utcnow

log = logging.getLogger(__name__)

# Missed heartbeats before a worker counts as dead: one late beat (a slow commit, a GC pause) is
# not enough to hand its rows to someone else while it may still be sending them.
DEAD_AFTER_BEATS = 3


def dead_after(heartbeat_seconds: float) -> timedelta:
    return timedelta(seconds=DEAD_AFTER_BEATS * heartbeat_seconds)


def beat(engine: Engine, worker_id: str, *, channels: tuple[str, ...], now: datetime | None = None) -> bool:
    """Write (or create) this worker's heartbeat; False when its row was not there (created now).

    A worker whose row vanished was presumed dead by another, which gave its claims away.
    """
    now = now or utcnow()
    with session_scope(engine) as session:
        result = session.execute(
            update(DeliveryWorker)
            .where(DeliveryWorker.id == worker_id)
            .values(heartbeat_at=now, channels=",".join(channels))
        )
        if result.rowcount == 0:
            session.add(
                DeliveryWorker(id=worker_id, channels=",".join(channels), started_at=now, heartbeat_at=now)
            )
            return False
    return True


def leave(engine: Engine, worker_id: str) -> None:
    """A clean stop: the worker's share of the Telegram rate goes back to the others at once."""
    with session_scope(engine) as session:
        session.execute(delete(DeliveryWorker).where(DeliveryWorker.id == worker_id))


def live_sharing(
    engine: Engine, *, channel: str, heartbeat_seconds: float, now: datetime | None = None
) -> int:
    """How many live workers send on `channel` (at least 1: the caller itself)."""
    now = now or utcnow()
    with session_scope(engine) as session:
        n = session.exec(
            select(func.count())
            .select_from(DeliveryWorker)
            .where(
                DeliveryWorker.heartbeat_at >= now - dead_after(heartbeat_seconds),
                DeliveryWorker.channels.contains(channel),
            )
        ).one()
    return max(1, int(n))


def not_seen_since(
    engine: Engine, worker_id: str, *, since: datetime, heartbeat_seconds: float, now: datetime | None = None
) -> int:
    """Live Telegram workers other than `worker_id` that have not beaten since `since`."""
    now = now or utcnow()
    with session_scope(engine) as session:
        n = session.exec(
            select(func.count())
            .select_from(DeliveryWorker)
            .where(
                DeliveryWorker.id != worker_id,
                DeliveryWorker.channels.contains("telegram"),
                DeliveryWorker.heartbeat_at >= now - dead_after(heartbeat_seconds),
                DeliveryWorker.heartbeat_at <= since,
            )
        ).one()
    return int(n)


def recover_dead(
    engine: Engine, *, heartbeat_seconds: float, claim_timeout: float, now: datetime | None = None
) -> int:
    """Give back the rows of dead workers (and old claims of workers without a heartbeat)."""
    now = now or utcnow()
    limit = now - dead_after(heartbeat_seconds)
    with session_scope(engine) as session:
        dead = select(DeliveryWorker.id).where(DeliveryWorker.heartbeat_at < limit)
        known = select(DeliveryWorker.id)
        result = session.execute(
            update(Outbox)
            .where(
                Outbox.state == "sending",
                or_(
                    Outbox.claimed_by.in_(dead),
                    and_(
                        Outbox.claimed_by.not_in(known),
                        Outbox.claimed_at < now - timedelta(seconds=claim_timeout),
                    ),
                ),
            )
            .values(state="queued", claimed_by=None, claimed_at=None, next_attempt_at=now)
            .execution_options(synchronize_session=False)
        )
        session.execute(delete(DeliveryWorker).where(DeliveryWorker.heartbeat_at < limit))
    if result.rowcount:
        log.warning("returned %d row(s) held by dead worker(s) to the queue", result.rowcount)
    return result.rowcount


def list_live(
    engine: Engine, *, heartbeat_seconds: float, now: datetime | None = None
) -> list[DeliveryWorker]:
    now = now or utcnow()
    with session_scope(engine) as session:
        rows = session.exec(
            select(DeliveryWorker)
            .where(DeliveryWorker.heartbeat_at >= now - dead_after(heartbeat_seconds))
            .order_by(DeliveryWorker.id)
        ).all()
        session.expunge_all()
        return list(rows)
