"""When a digest is due: pure date maths on a subscriber's frequency, local hour and timezone.

Nothing here reads a clock or the database. The rule is "the first scheduled local slot strictly
after the last digest (or after sign-up when none was sent)"; a digest is due once that slot has
passed. Because the caller moves the watermark to *now* when it queues, a week of downtime yields
one digest covering everything missed, and a restart never repeats a slot.

Daylight-saving changes: a slot is a local wall-clock time. A wall time that does not exist (the
spring gap) is sent at the first valid instant after it (the end of the gap); a wall time that
happens twice (the autumn fold) is sent at its first occurrence only.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

log = logging.getLogger(__name__)

FREQUENCIES = ("instant", "daily", "weekly")
FALLBACK_TIMEZONE = "Europe/Brussels"
FALLBACK_DELIVERY_TIME = "08:00"


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return None


@lru_cache(maxsize=512)
def resolve_zone(name: str | None, default: str = FALLBACK_TIMEZONE) -> ZoneInfo:
    """The zone called `name`, or `default` (logged once per bad name) when it is unknown."""
    zone = _zone(name) if name else None
    if zone is not None:
        return zone
    fallback = _zone(default) or ZoneInfo("UTC")
    log.warning(
        "unknown timezone %r, using %s",
        name,
        fallback.key,
        extra={"event": "due.bad_timezone", "timezone": name, "fallback": fallback.key},
    )
    return fallback


def parse_time(text: str | None, default: str = FALLBACK_DELIVERY_TIME) -> time:
    """'HH:MM' as a time; a malformed value falls back to `default` (logged)."""
    for candidate in (text, default, FALLBACK_DELIVERY_TIME):
        try:
            hours, minutes = str(candidate).strip().split(":")
            return time(int(hours), int(minutes))
        except (ValueError, AttributeError):
            if candidate is text:
                log.warning(
                    "bad delivery time %r, using %s",
                    text,
                    default,
                    extra={"event": "due.bad_delivery_time", "delivery_time": text},
                )
    return time(8, 0)  # pragma: no cover - FALLBACK_DELIVERY_TIME always parses


def _as_utc(moment: datetime) -> datetime:
    # Rows written by hand or by an old driver may come back naive; they are UTC by convention.
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def local_slot(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of wall time `at` on `day` in `zone`, with the DST rules above."""
    naive = datetime.combine(day, at)
    # fold=0 is the first of two ambiguous occurrences, and the pre-transition offset in a gap.
    first = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == naive:
        return first
    # In a gap: the transition lies between the reading with the post-transition offset (fold=1,
    # earlier) and the pre-transition reading (fold=0). Bisect to the second where the offset jumps.
    low = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = first
    before = low.astimezone(zone).utcoffset()
    while high - low > timedelta(seconds=1):
        mid = low + (high - low) / 2
        mid = mid.replace(microsecond=0)
        if mid <= low:
            break
        if mid.astimezone(zone).utcoffset() == before:
            low = mid
        else:
            high = mid
    return high


def next_due(
    *,
    frequency: str,
    timezone: str | None,
    delivery_time: str | None,
    weekly_day: int | None,
    last: datetime | None,
    created: datetime,
    default_timezone: str = FALLBACK_TIMEZONE,
    default_delivery_time: str = FALLBACK_DELIVERY_TIME,
) -> datetime:
    """The UTC instant of the next digest: the first slot strictly after `last` (or `created`)."""
    anchor = _as_utc(last if last is not None else created)
    if frequency == "instant":
        return anchor
    if frequency not in FREQUENCIES:
        log.warning(
            "unknown frequency %r, treating as daily",
            frequency,
            extra={"event": "due.bad_frequency", "frequency": frequency},
        )
        frequency = "daily"
    zone = resolve_zone(timezone, default_timezone)
    at = parse_time(delivery_time, default_delivery_time)
    weekday = (weekly_day if isinstance(weekly_day, int) else 0) % 7
    # Start one local day early: a slot of the previous day pushed forward by a gap can land after.
    day = anchor.astimezone(zone).date() - timedelta(days=1)
    # Enough days for a weekly slot even when one of them is skipped (Samoa, 30 Dec 2011).
    for _ in range(16):
        if frequency == "daily" or day.weekday() == weekday:
            slot = local_slot(day, at, zone)
            if slot > anchor:
                return slot
        day += timedelta(days=1)
    raise AssertionError("no slot within 16 days")  # pragma: no cover - unreachable for real zones


def is_due(
    *,
    frequency: str,
    timezone: str | None,
    delivery_time: str | None,
    weekly_day: int | None,
    last: datetime | None,
    created: datetime,
    now: datetime,
    default_timezone: str = FALLBACK_TIMEZONE,
    default_delivery_time: str = FALLBACK_DELIVERY_TIME,
) -> bool:
    """Whether the next digest's slot has come (`now` included)."""
    return next_due(
        frequency=frequency,
        timezone=timezone,
        delivery_time=delivery_time,
        weekly_day=weekly_day,
        last=last,
        created=created,
        default_timezone=default_timezone,
        default_delivery_time=default_delivery_time,
    ) <= _as_utc(now)
