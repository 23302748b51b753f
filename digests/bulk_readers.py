"""Many email readers at once (a CSV import): what emails.add_reader stores, a chunk at a time.

Added one by one, each reader cost a savepoint, ORM objects with their validation and four round
trips: 2,000 readers took seconds. Here a chunk of readers costs one SELECT of the addresses
already stored and one multi-row INSERT per table (INSERT … RETURNING gives the new ids).

Each reader stays all-or-nothing. Refusals (known address, limits) are found before anything is
written, with add_reader's own checks and wording. If an INSERT fails anyway, another process
stored one of the addresses after our SELECT: the chunk is rolled back to its savepoint and added
reader by reader as before, so only the raced reader is refused.

Unconfirmed readers go one by one: each needs its own confirmation mail rendered and queued,
which costs far more than the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from digests import catalog, emails, phrases
from digests.config import Settings
from digests.emails import EmailError, NewReader
from digests.models import Follow, Subscriber, Subscription, utcnow

# Addresses per SELECT … IN and rows per INSERT: well under SQLite's bound-parameter limit.
CHUNK = 500


def add_readers(
    session: Session,
    settings: Settings,
    readers: Sequence[NewReader],
    *,
    confirmed: bool,
    now: datetime | None = None,
) -> list[EmailError | None]:
    """Store each reader as add_reader does; per reader, in order, None or the EmailError refusing it."""
    now = now or utcnow()
    if not confirmed:
        return [add_one(session, settings, reader, confirmed=False, now=now) for reader in readers]
    results: list[EmailError | None] = []
    for start in range(0, len(readers), CHUNK):
        results += _add_chunk(session, settings, readers[start : start + CHUNK], now)
    return results


def add_one(
    session: Session, settings: Settings, reader: NewReader, *, confirmed: bool, now: datetime
) -> EmailError | None:
    """One reader in its own savepoint; None, or the EmailError refusing it."""
    try:
        with session.begin_nested():
            emails.add_reader(session, settings, reader, confirmed=confirmed, now=now)
    except EmailError as exc:
        return exc
    except IntegrityError:
        # Another process added the same address between our check and the insert.
        return EmailError("exists", "already known")
    return None


def known_statuses(session: Session, addresses: Sequence[str]) -> dict[str, str]:
    """address -> email status, for those of `addresses` already stored."""
    rows = session.exec(
        select(Subscriber.email, Subscriber.email_status).where(col(Subscriber.email).in_(addresses))
    )
    return dict(rows.all())


def _add_chunk(
    session: Session, settings: Settings, readers: Sequence[NewReader], now: datetime
) -> list[EmailError | None]:
    known = known_statuses(session, [r.email for r in readers])
    results: list[EmailError | None] = []
    fresh: list[NewReader] = []
    for reader in readers:
        try:
            emails.check_new_reader(settings, reader, known.get(reader.email), confirmed=True)
        except EmailError as exc:
            results.append(exc)
            continue
        results.append(None)
        fresh.append(reader)
    if not fresh:
        return results
    try:
        with session.begin_nested():
            _insert(session, fresh, now)
    except IntegrityError:
        return [
            add_one(session, settings, reader, confirmed=True, now=now) if refused is None else refused
            for reader, refused in zip(readers, results, strict=True)
        ]
    return results


def _insert(session: Session, readers: Sequence[NewReader], now: datetime) -> None:
    # One model object gives every default the ORM would fill (timezone, delivery time, flags…);
    # only the address and the frequency differ between the readers new_subscriber builds.
    template = emails.new_subscriber(readers[0], confirmed=True, now=now).model_dump(exclude={"id"})
    table = Subscriber.__table__
    # A column left out without a default is NULL all the same, and every bound parameter costs
    # (psycopg parses each placeholder): leaving out the empty ones halves PostgreSQL's INSERT.
    template = {
        name: value for name, value in template.items()
        if value is not None or table.c[name].default is not None or table.c[name].server_default is not None
    }
    rows = [template | {"email": r.email, "email_frequency": r.frequency} for r in readers]
    conn = session.connection()
    returned = conn.execute(insert(table).returning(table.c.id, table.c.email), rows)
    ids = {email: id_ for id_, email in returned}
    # add_reader's child rows take the clock when they are made, not the import's `now`.
    stamp = utcnow()
    terms = [
        {"subscriber_id": ids[r.email], "kind": kind, "value": value, "created_at": stamp}
        for r in readers
        for kind, values in ((catalog.COUNTRY, r.countries), (catalog.SECTION, r.sections))
        for value in values
    ]
    if terms:
        conn.execute(insert(Subscription.__table__), terms)
    # Keyed as follows.replace_all keys them: one row per phrases.key.
    followed = [
        {"subscriber_id": ids[r.email], "phrase": phrase, "key": key, "created_at": stamp}
        for r in readers
        for key, phrase in {phrases.key(p): p for p in r.follows}.items()
    ]
    if followed:
        conn.execute(insert(Follow.__table__), followed)
