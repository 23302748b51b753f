"""Per-channel delivery lanes as an operator sees them: depth, progress, pace, oldest waiting.

Read-only, for `clapper status` and /stats: each channel is sent by its own lane (digests.deliver),
so one stalled channel shows here while the other keeps moving.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, select

from digests.models import Outbox

CHANNELS = ("telegram", "email")
# "Current send rate" is measured over the last minute: long enough to smooth batches and
# per-chat pauses, short enough to show a stall within a minute.
RATE_WINDOW = timedelta(minutes=1)


@dataclass
class LaneStatus:
    channel: str
    queued: int  # waiting, including those backing off before a retry
    sending: int  # claimed by a worker right now
    sent_last_hour: int
    rate_per_second: float  # sent over the last minute
    oldest_waiting_id: int | None  # the oldest message ready to go (queued, retry time passed)
    oldest_waiting_since: datetime | None
    oldest_waiting_seconds: float | None


def lanes(session: Session, *, now: datetime) -> list[LaneStatus]:
    def per_channel(query) -> dict[str, int]:
        return {channel: int(n) for channel, n in session.exec(query.group_by(Outbox.channel)).all()}

    by_state = {
        state: per_channel(select(Outbox.channel, func.count()).where(Outbox.state == state))
        for state in ("queued", "sending")
    }
    sent = Outbox.state == "sent"
    hour = per_channel(
        select(Outbox.channel, func.count()).where(sent, Outbox.sent_at >= now - timedelta(hours=1))
    )
    minute = per_channel(
        select(Outbox.channel, func.count()).where(sent, Outbox.sent_at >= now - RATE_WINDOW)
    )
    result = []
    for channel in CHANNELS:
        oldest = session.exec(
            select(Outbox.id, Outbox.next_attempt_at)
            .where(Outbox.channel == channel, Outbox.state == "queued", Outbox.next_attempt_at <= now)
            .order_by(Outbox.next_attempt_at, Outbox.id)
            .limit(1)
        ).first()
        since = _aware(oldest[1]) if oldest else None
        result.append(
            LaneStatus(
                channel=channel,
                queued=by_state["queued"].get(channel, 0),
                sending=by_state["sending"].get(channel, 0),
                sent_last_hour=hour.get(channel, 0),
                rate_per_second=round(minute.get(channel, 0) / RATE_WINDOW.total_seconds(), 2),
                oldest_waiting_id=oldest[0] if oldest else None,
                oldest_waiting_since=since,
                oldest_waiting_seconds=round((now - since).total_seconds(), 1) if since else None,
            )
        )
    return result


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)
