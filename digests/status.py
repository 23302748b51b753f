"""Service health: last ingest per source, queue depth, oldest waiting message, recent deliveries.

`collect` reads the database only; `problems` on the result says why the service looks stuck, so
`clapper status` can exit non-zero for a container health check.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import select

from digests import outbox, store
from digests.config import Settings
from digests.db import session_scope
from digests.inbound import events
from digests.models import Outbox, Source, utcnow


@dataclass
class SourceStatus:
    name: str
    enabled: bool
    last_fetched_at: datetime | None
    last_success_at: datetime | None
    error_count: int
    last_error: str | None
    next_fetch_at: datetime | None
    last_new_articles: int


@dataclass
class Status:
    now: datetime
    sources: list[SourceStatus]
    queue: dict[str, int]
    # The oldest message that is ready to go (queued, its retry time passed) and when it became ready.
    oldest_ready_id: int | None
    oldest_ready_since: datetime | None
    oldest_queued_at: datetime | None
    stale_sending: int
    sent_24h: dict[str, int]
    dead_24h: int
    last_ingest_success_at: datetime | None
    problems: list[str] = field(default_factory=list)
    # What `clapper inbound` read in the last 24 h, by kind (hard_bounce, complaint, unsubscribe...).
    inbound_24h: dict[str, int] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return not self.problems

    @property
    def oldest_ready_age(self) -> timedelta | None:
        return self.now - self.oldest_ready_since if self.oldest_ready_since else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["healthy"] = self.healthy
        age = self.oldest_ready_age
        data["oldest_ready_age_seconds"] = round(age.total_seconds(), 1) if age is not None else None
        return _jsonable(data)


def collect(
    engine: Engine,
    settings: Settings,
    *,
    now: datetime | None = None,
    max_queue_age: timedelta | None = None,
    max_ingest_intervals: int | None = None,
) -> Status:
    now = now or utcnow()
    max_queue_age = max_queue_age or timedelta(minutes=settings.status_max_queue_age_minutes)
    intervals = max_ingest_intervals or settings.status_max_ingest_intervals
    day_ago = now - timedelta(hours=24)
    with session_scope(engine) as session:
        sources = [
            SourceStatus(
                name=s.name,
                enabled=s.enabled,
                last_fetched_at=s.last_fetched_at,
                last_success_at=s.last_success_at,
                error_count=s.error_count,
                last_error=s.last_error,
                next_fetch_at=s.next_fetch_at,
                last_new_articles=s.last_new_articles,
            )
            for s in store.list_sources(session)
        ]
        enabled_created = session.exec(select(func.min(Source.created_at)).where(Source.enabled)).one()
        oldest_ready = session.exec(
            select(Outbox.id, Outbox.next_attempt_at)
            .where(Outbox.state == "queued", Outbox.next_attempt_at <= now)
            .order_by(Outbox.next_attempt_at, Outbox.id)
            .limit(1)
        ).first()
        oldest_queued_at = session.exec(
            select(func.min(Outbox.created_at)).where(Outbox.state == "queued")
        ).one()
        stale_sending = session.exec(
            select(func.count())
            .select_from(Outbox)
            .where(Outbox.state == "sending", Outbox.claimed_at < now - max_queue_age)
        ).one()
        sent_24h = outbox.sent_since(session, day_ago)
        dead_24h = outbox.dead_since(session, day_ago)
        inbound_24h = events.counts_since(session, day_ago)

    successes = [s.last_success_at for s in sources if s.enabled and s.last_success_at]
    status = Status(
        now=now,
        sources=sources,
        queue=outbox.counts(engine),
        oldest_ready_id=oldest_ready[0] if oldest_ready else None,
        oldest_ready_since=_aware(oldest_ready[1]) if oldest_ready else None,
        oldest_queued_at=_aware(oldest_queued_at),
        stale_sending=int(stale_sending),
        sent_24h=sent_24h,
        dead_24h=dead_24h,
        last_ingest_success_at=max(successes) if successes else None,
        inbound_24h=inbound_24h,
    )

    age = status.oldest_ready_age
    if age is not None and age > max_queue_age:
        status.problems.append(
            f"message #{status.oldest_ready_id} has waited {_minutes(age)} min to be sent "
            f"(limit {_minutes(max_queue_age)} min): is a delivery worker running?"
        )
    if status.stale_sending:
        status.problems.append(
            f"{status.stale_sending} message(s) claimed by a worker more than "
            f"{_minutes(max_queue_age)} min ago and not finished"
        )
    ingest_limit = timedelta(minutes=settings.ingest_every_minutes * intervals)
    # A fresh install has had no chance to ingest yet: count from when its first source was added.
    reference = status.last_ingest_success_at or _aware(enabled_created)
    if reference is not None and now - reference > ingest_limit:
        what = "no successful ingest" if status.last_ingest_success_at else "no source ingested yet"
        status.problems.append(
            f"{what} for {_minutes(now - reference)} min ({intervals} ingest intervals "
            f"= {_minutes(ingest_limit)} min): is the scheduler running?"
        )
    return status


def _aware(moment: datetime | None) -> datetime | None:
    # Aggregates (min/max) bypass the UTCDateTime column type and can come back naive on SQLite.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _minutes(delta: timedelta) -> int:
    return int(delta.total_seconds() // 60)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value
