"""The outbox: enqueue (idempotent), claim, mark, retry policy. The database is the queue.

Life of a row: queued -> sending (claimed by one worker) -> sent | queued again (retry later) |
dead (gave up, error kept) | cancelled (an announcement withdrawn, a chat that blocked us).

Messages to one destination (channel + recipient) leave in id order, so the numbered parts of a
split digest arrive in order even with several workers: a worker only takes a destination's rows
when it holds the oldest unfinished one, and nobody takes a destination while one of its rows is
being sent.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from digests import renderings
from digests.config import Settings
from digests.db import session_scope
from digests.models import Outbox, Subscriber, utcnow

log = logging.getLogger(__name__)

STATES = ("queued", "sending", "sent", "failed", "dead", "cancelled")
# Rows that still hold their place in a destination's line.
UNFINISHED = ("queued", "sending")


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


def retry_delay(attempts: int, *, base: float, cap: float) -> float:
    """Seconds to wait after the `attempts`-th failed attempt: base, 2*base, 4*base… up to cap."""
    return min(cap, base * (2 ** max(0, attempts - 1)))


def _blocked_destinations(session: Session, *, now: datetime) -> dict[tuple[str, str], int]:
    """{destination: id of its oldest row in flight or waiting for a retry}; later rows must wait.

    Usually a handful (rows in flight, rows backing off); read through the (state, next_attempt_at)
    index, then used as a dict, which stays fast however large the sent history grows.
    """
    rows = session.exec(
        select(Outbox.channel, Outbox.recipient, func.min(Outbox.id))
        .where(
            or_(
                Outbox.state == "sending",
                and_(Outbox.state == "queued", Outbox.next_attempt_at > now),
            )
        )
        .group_by(Outbox.channel, Outbox.recipient)
    ).all()
    return {(channel, recipient): first for channel, recipient, first in rows}


def _eligible_ids(
    session: Session,
    *,
    now: datetime,
    limit: int,
    channels: tuple[str, ...] | None,
    lock: bool,
    due_before: datetime | None = None,
) -> list:
    blocked = _blocked_destinations(session, now=now)
    found: list = []
    last_id = 0
    page = max(2 * limit, 100)
    while len(found) < limit:
        query = (
            select(Outbox.id, Outbox.channel, Outbox.recipient)
            .where(
                Outbox.state == "queued", Outbox.next_attempt_at <= (due_before or now), Outbox.id > last_id
            )
            .order_by(Outbox.id)
            .limit(page)
        )
        if channels:
            query = query.where(Outbox.channel.in_(channels))
        if lock:
            # Rows another worker is claiming right now are skipped, not waited for.
            query = query.with_for_update(skip_locked=True, of=Outbox)
        # Core rows: the ORM's result machinery cost ~15 µs a row here, for three plain columns.
        rows = session.connection().execute(query).all()
        found.extend(row for row in rows if row.id < blocked.get((row.channel, row.recipient), row.id + 1))
        if len(rows) < page:
            break
        last_id = rows[-1].id
    return found[:limit]


def _in_line_prefix(session: Session, candidates) -> list[int]:
    """Keep, per destination, only the leading run of rows that starts at its oldest unfinished row.

    With SKIP LOCKED a worker can get rows 1 and 3 of a destination while another holds row 2;
    sending 3 before 2 would break the order, so the run stops at the first row we do not hold.
    """
    mine = {row.id for row in candidates}
    groups = {(row.channel, row.recipient) for row in candidates}
    if not groups:
        return []
    # Plain IN lists (one expanding parameter each, compiled once) and the pairs matched here: a
    # tuple IN of 200 literal pairs cost more to build and compile than the claim itself.
    line = session.exec(
        select(Outbox.id, Outbox.channel, Outbox.recipient)
        .where(
            Outbox.state.in_(UNFINISHED),
            Outbox.channel.in_(sorted({channel for channel, _ in groups})),
            Outbox.recipient.in_(sorted({recipient for _, recipient in groups})),
        )
        .order_by(Outbox.id)
    ).all()
    by_group: dict[tuple[str, str], list[int]] = defaultdict(list)
    for row in line:
        if (row.channel, row.recipient) in groups:
            by_group[(row.channel, row.recipient)].append(row.id)
    keep: list[int] = []
    for ids in by_group.values():
        for row_id in ids:
            if row_id not in mine:
                break
            keep.append(row_id)
    return sorted(keep)


def claim(
    engine: Engine,
    *,
    worker_id: str,
    limit: int,
    now: datetime | None = None,
    channels: tuple[str, ...] | None = None,
    due_before: datetime | None = None,
) -> list[Claimed]:
    """Mark up to `limit` due rows 'sending' for `worker_id` and return them (detached), oldest first.

    `due_before` (default `now`) takes only rows that were due by then: `deliver --once` drains
    what was due when it started without chasing rows queued or retried since.

    PostgreSQL: SELECT … FOR UPDATE SKIP LOCKED, so several workers claim disjoint rows at once.
    SQLite has no row locks (SQLAlchemy drops FOR UPDATE there): one worker, and each row is taken
    with `UPDATE … WHERE state='queued'`, which also loses cleanly to a concurrent cancellation.
    """
    now = now or utcnow()
    postgres = engine.dialect.name == "postgresql"
    with session_scope(engine) as session:
        candidates = _eligible_ids(
            session, now=now, limit=limit, channels=channels, lock=postgres, due_before=due_before
        )
        wanted = _in_line_prefix(session, candidates)
        if not wanted:
            return []
        # Guarded by state='queued': a row cancelled since we looked at it is not taken. RETURNING
        # tells exactly which rows we got (the per-row rowcount check, in one statement). Plain
        # rows, not ORM instances: building those was a fifth of a fan-out's sending cost.
        table = Outbox.__table__
        claimed = [
            Claimed(found)
            for found in session.execute(
                update(table)
                .where(table.c.id.in_(wanted), table.c.state == "queued")
                .values(state="sending", claimed_by=worker_id, claimed_at=now)
                .returning(*table.c)
            )
        ]
        missing = renderings.attach(session, claimed)
        if missing:
            # Never sent empty, never left to block the batch again: dead, with the reason kept.
            gone = {row.id for row in missing}
            session.execute(
                update(Outbox)
                .where(Outbox.id.in_(sorted(gone)))
                .values(
                    state="dead", claimed_by=None, claimed_at=None, last_error="its shared rendering is gone"
                )
            )
            log.error("outbox rows %s name a rendering that is gone: marked dead", sorted(gone))
            claimed = [row for row in claimed if row.id not in gone]
        return sorted(claimed, key=lambda row: row.id)


# Columns a Claimed row reads through a property (a fan-out row's are in its rendering).
_OWN_COLUMNS = ("body", "body_text")
# Where each column of `RETURNING *table.c` goes, in order.
_ATTRIBUTES = tuple("_" + c.name if c.name in _OWN_COLUMNS else c.name for c in Outbox.__table__.columns)


class Claimed:
    """An outbox row as a worker holds it: the row's columns as plain attributes, detached from
    any session (nothing set here is ever written back).

    A fan-out row names a shared rendering (`rendering`, attached by the claim) instead of
    holding its body: `body` and `body_text` are that reader's own, filled in when first read.
    The email sender reads the rendering itself and splices the links into bytes built once
    (digests.channels.splice), so most rows never build their text at all.
    """

    __slots__ = (
        *(c.name for c in Outbox.__table__.columns if c.name not in _OWN_COLUMNS),
        "_body",
        "_body_text",
        "rendering",
        "_personal",
    )

    def __init__(self, row) -> None:
        for name, value in zip(_ATTRIBUTES, row, strict=True):
            setattr(self, name, value)
        self.rendering = None
        self._personal: tuple[str, str] | None = None

    def _own(self) -> tuple[str, str | None]:
        if self.rendering is None:
            return self._body, self._body_text
        if self._personal is None:
            self._personal = renderings.personal(self.rendering, self.links)
        return self._personal

    @property
    def body(self) -> str:
        return self._own()[0]

    @property
    def body_text(self) -> str | None:
        return self._own()[1]

    def __repr__(self) -> str:
        return f"Claimed(id={self.id}, channel={self.channel!r}, recipient={self.recipient!r})"


def _mine(row_id: int, worker_id: str):
    # A worker only settles rows it still holds: if it was presumed dead and its row went back to
    # the queue, the row belongs to whoever claimed it next.
    return and_(Outbox.id == row_id, Outbox.state == "sending", Outbox.claimed_by == worker_id)


def mark_sent(engine: Engine, row_id: int, *, worker_id: str, now: datetime | None = None) -> bool:
    with session_scope(engine) as session:
        result = session.execute(
            update(Outbox)
            .where(_mine(row_id, worker_id))
            .values(
                state="sent",
                sent_at=now or utcnow(),
                attempts=Outbox.attempts + 1,
                last_error=None,
                claimed_by=None,
                claimed_at=None,
            )
        )
        return result.rowcount == 1


def mark_sent_many(engine: Engine, row_ids: list[int], *, worker_id: str, now: datetime | None = None) -> int:
    """Settle many sent rows in one commit (email's group commit); returns how many were still ours."""
    return _update_ours(
        engine,
        row_ids,
        worker_id,
        state="sent",
        sent_at=now or utcnow(),
        attempts=Outbox.__table__.c.attempts + 1,
        last_error=None,
        claimed_by=None,
        claimed_at=None,
    )


def _update_ours(engine: Engine, row_ids: list[int], worker_id: str, **values) -> int:
    """Set `values` on the rows of `row_ids` this worker still holds; how many it still held."""
    if not row_ids:
        return 0
    table = Outbox.__table__
    # Core, not the ORM's bulk update: this settles every email of a fan-out, and the ORM's
    # bookkeeping (no objects to synchronise here) was a quarter of its cost.
    statement = (
        update(table)
        .where(table.c.id.in_(row_ids), table.c.state == "sending", table.c.claimed_by == worker_id)
        .values(**values)
    )
    with engine.begin() as connection:
        return connection.execute(statement).rowcount


def mark_retry(
    engine: Engine,
    row_id: int,
    *,
    worker_id: str,
    settings: Settings,
    error: str,
    now: datetime | None = None,
) -> str | None:
    """Count a failed attempt: back to 'queued' after a backoff, or 'dead' past the limit.

    Returns the new state, or None when the row was no longer ours.
    """
    now = now or utcnow()
    with session_scope(engine) as session:
        row = session.exec(select(Outbox).where(_mine(row_id, worker_id)).with_for_update()).first()
        if row is None:
            return None
        row.attempts += 1
        row.last_error = error
        row.claimed_by = None
        row.claimed_at = None
        if row.attempts >= settings.delivery_max_attempts:
            row.state = "dead"
        else:
            row.state = "queued"
            delay = retry_delay(
                row.attempts, base=settings.delivery_retry_base, cap=settings.delivery_retry_max
            )
            row.next_attempt_at = now + timedelta(seconds=delay)
        session.add(row)
        return row.state


def mark_dead(engine: Engine, row_id: int, *, worker_id: str, error: str) -> bool:
    with session_scope(engine) as session:
        result = session.execute(
            update(Outbox)
            .where(_mine(row_id, worker_id))
            .values(
                state="dead",
                attempts=Outbox.attempts + 1,
                last_error=error,
                claimed_by=None,
                claimed_at=None,
            )
        )
        return result.rowcount == 1


def mark_cancelled(engine: Engine, row_id: int, *, worker_id: str, reason: str) -> bool:
    """Not attempted: its destination turned out to be gone earlier in the same batch."""
    with session_scope(engine) as session:
        result = session.execute(
            update(Outbox)
            .where(_mine(row_id, worker_id))
            .values(state="cancelled", last_error=reason, claimed_by=None, claimed_at=None)
        )
        return result.rowcount == 1


def requeue(
    engine: Engine,
    row_ids: list[int],
    *,
    worker_id: str,
    delay: float = 0.0,
    error: str | None = None,
    now: datetime | None = None,
) -> int:
    """Give claimed rows back without counting an attempt (shutdown, flood wait, server down)."""
    if not row_ids:
        return 0
    now = now or utcnow()
    values: dict = {
        "state": "queued",
        "claimed_by": None,
        "claimed_at": None,
        "next_attempt_at": now + timedelta(seconds=delay),
    }
    if error is not None:
        values["last_error"] = error
    return _update_ours(engine, row_ids, worker_id, **values)


def touch(engine: Engine, row_ids: list[int], *, worker_id: str, now: datetime | None = None) -> int:
    """Heartbeat: keep rows this worker is still busy with from looking abandoned."""
    return _update_ours(engine, row_ids, worker_id, claimed_at=now or utcnow())


def recover_stale(engine: Engine, *, timeout: float, now: datetime | None = None) -> int:
    """Return rows left 'sending' longer than `timeout` seconds (their worker died) to the queue.

    The message that was in flight when the worker died may have left already: that one can be
    sent twice, never more, and nothing is lost.
    """
    now = now or utcnow()
    with session_scope(engine) as session:
        result = session.execute(
            update(Outbox)
            .where(Outbox.state == "sending", Outbox.claimed_at < now - timedelta(seconds=timeout))
            .values(state="queued", claimed_by=None, claimed_at=None, next_attempt_at=now)
        )
    if result.rowcount:
        log.warning("returned %d abandoned outbox row(s) to the queue", result.rowcount)
    return result.rowcount


def release_worker(engine: Engine, *, worker_id: str, now: datetime | None = None) -> int:
    """Return every row still claimed by `worker_id` (a restarted worker reusing its id)."""
    with session_scope(engine) as session:
        result = session.execute(
            update(Outbox)
            .where(Outbox.state == "sending", Outbox.claimed_by == worker_id)
            .values(state="queued", claimed_by=None, claimed_at=None, next_attempt_at=now or utcnow())
        )
        return result.rowcount


def cancel_destination(
    engine: Engine, *, subscriber_id: int | None, channel: str, recipient: str, reason: str
) -> int:
    """Cancel the queued rows for one destination (a chat that blocked us, a bounced address)."""
    conditions = [Outbox.channel == channel, Outbox.state == "queued"]
    if subscriber_id is not None:
        conditions.append(or_(Outbox.subscriber_id == subscriber_id, Outbox.recipient == recipient))
    else:
        conditions.append(Outbox.recipient == recipient)
    with session_scope(engine) as session:
        result = session.execute(
            update(Outbox).where(*conditions).values(state="cancelled", last_error=reason)
        )
        return result.rowcount


def mark_blocked(
    engine: Engine, row_id: int, *, worker_id: str, subscriber_id: int | None, recipient: str, error: str
) -> int:
    """403 from Telegram: the row dies, the chat is marked blocked, its other queued rows are cancelled."""
    now = utcnow()
    mark_dead(engine, row_id, worker_id=worker_id, error=error)
    with session_scope(engine) as session:
        if subscriber_id is not None:
            session.execute(
                update(Subscriber)
                .where(Subscriber.id == subscriber_id, Subscriber.telegram_blocked_at.is_(None))
                .values(telegram_blocked_at=now)
            )
    return cancel_destination(
        engine, subscriber_id=subscriber_id, channel="telegram", recipient=recipient, reason=error
    )


def mark_bounced(
    engine: Engine, row_id: int, *, worker_id: str, subscriber_id: int | None, recipient: str, error: str
) -> int:
    """A 5xx for the address: the row dies, the address is 'bounced', its other queued mail is cancelled."""
    mark_dead(engine, row_id, worker_id=worker_id, error=error)
    with session_scope(engine) as session:
        if subscriber_id is not None:
            session.execute(
                update(Subscriber)
                .where(Subscriber.id == subscriber_id, Subscriber.email == recipient)
                .values(email_status="bounced")
            )
    return cancel_destination(
        engine, subscriber_id=subscriber_id, channel="email", recipient=recipient, reason=error
    )


def migrate_chat(engine: Engine, *, old_chat_id: int, new_chat_id: int, subscriber_id: int | None) -> None:
    """A group became a supergroup: follow it to its new id, on the subscriber and unsent rows."""
    with session_scope(engine) as session:
        session.execute(
            update(Outbox)
            .where(
                Outbox.channel == "telegram",
                Outbox.recipient == str(old_chat_id),
                Outbox.state.in_(UNFINISHED),
            )
            .values(recipient=str(new_chat_id))
        )
    try:
        with session_scope(engine) as session:
            session.execute(
                update(Subscriber)
                .where(Subscriber.telegram_chat_id == old_chat_id)
                .values(telegram_chat_id=new_chat_id)
            )
    except IntegrityError:
        # The new chat already has its own subscriber (someone /started it): keep both as they are.
        log.warning(
            "chat %s migrated to %s, which already has a subscriber; subscriber %s kept its old id",
            old_chat_id,
            new_chat_id,
            subscriber_id,
        )


def counts(engine: Engine, *, channel: str | None = None) -> dict[str, int]:
    """Rows per state (every state present, zeros included), for status and stats."""
    query = select(Outbox.state, func.count()).group_by(Outbox.state)
    if channel:
        query = query.where(Outbox.channel == channel)
    with session_scope(engine) as session:
        found = dict(session.exec(query).all())
    return {state: int(found.get(state, 0)) for state in STATES} | {
        state: int(n) for state, n in found.items() if state not in STATES
    }


def sent_since(session: Session, since: datetime) -> dict[str, int]:
    """{channel: rows sent at or after `since`}, for status and stats."""
    rows = session.exec(
        select(Outbox.channel, func.count())
        .where(Outbox.state == "sent", Outbox.sent_at >= since)
        .group_by(Outbox.channel)
    ).all()
    return {channel: int(n) for channel, n in rows}


def dead_since(session: Session, since: datetime) -> int:
    """Rows given up on since `since`, for status and stats."""
    # Dead rows carry no timestamp of their own; the last attempt is the closest we have.
    return int(
        session.exec(
            select(func.count())
            .select_from(Outbox)
            .where(Outbox.state == "dead", Outbox.next_attempt_at >= since)
        ).one()
    )
