"""Due-time maths against a controlled clock: local hours, weekdays, DST changes, downtime."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from digests import due

ZONES = ["Europe/Brussels", "America/New_York", "Asia/Tokyo", "Australia/Sydney", "Pacific/Chatham"]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def simulate(*, start: datetime, end: datetime, step=timedelta(minutes=1), **sub) -> list[datetime]:
    """Tick a clock from start to end; whenever a digest is due, "queue" it (watermark = now)."""
    sent: list[datetime] = []
    last = sub.pop("last", None)
    created = sub.pop("created", start)
    now = start
    while now <= end:
        if due.is_due(**sub, last=last, created=created, now=now):
            sent.append(now)
            last = now
        now += step
    return sent


@pytest.mark.parametrize("zone", ZONES)
def test_daily_comes_at_the_local_hour_once_a_day(zone):
    tz = ZoneInfo(zone)
    start = utc(2026, 6, 1)
    sent = simulate(
        start=start,
        end=start + timedelta(days=5),
        frequency="daily",
        timezone=zone,
        delivery_time="08:00",
        weekly_day=0,
    )
    local = [s.astimezone(tz) for s in sent]
    assert [(t.hour, t.minute) for t in local] == [(8, 0)] * len(local)
    days = [t.date() for t in local]
    assert len(days) == len(set(days)) and len(days) in (4, 5)
    assert all(b - a == timedelta(days=1) for a, b in zip(days, days[1:], strict=False))


@pytest.mark.parametrize("zone", ZONES)
def test_weekly_comes_on_the_chosen_weekday_at_the_local_hour(zone):
    tz = ZoneInfo(zone)
    start = utc(2026, 1, 5)
    sent = simulate(
        start=start,
        end=start + timedelta(days=22),
        step=timedelta(minutes=5),
        frequency="weekly",
        timezone=zone,
        delivery_time="09:15",
        weekly_day=4,
    )
    local = [s.astimezone(tz) for s in sent]
    assert len(local) == 3
    assert all(t.weekday() == 4 and (t.hour, t.minute) == (9, 15) for t in local)


def test_first_slot_is_strictly_after_creation():
    created = utc(2026, 11, 26, 7, 0)  # exactly 08:00 in Brussels
    got = due.next_due(
        frequency="daily",
        timezone="Europe/Brussels",
        delivery_time="08:00",
        weekly_day=0,
        last=None,
        created=created,
    )
    assert got == utc(2026, 11, 27, 7, 0)
    assert not due.is_due(
        frequency="daily",
        timezone="Europe/Brussels",
        delivery_time="08:00",
        weekly_day=0,
        last=None,
        created=created,
        now=created + timedelta(hours=23, minutes=59),
    )


def test_instant_is_always_due_from_the_watermark():
    last = utc(2026, 11, 26, 10)
    assert (
        due.next_due(
            frequency="instant",
            timezone="Asia/Tokyo",
            delivery_time="08:00",
            weekly_day=0,
            last=last,
            created=utc(2026, 1, 1),
        )
        == last
    )
    assert due.next_due(
        frequency="instant",
        timezone="Asia/Tokyo",
        delivery_time="08:00",
        weekly_day=0,
        last=None,
        created=utc(2026, 1, 1),
    ) == utc(2026, 1, 1)


def daily_around(zone: str, day: tuple[int, int, int], at: str) -> list[datetime]:
    """Daily digests at `at` sent over four days, from two local days before `day`."""
    start = (datetime(*day, tzinfo=ZoneInfo(zone)) - timedelta(days=2)).astimezone(UTC)
    return simulate(
        start=start,
        end=start + timedelta(days=4),
        frequency="daily",
        timezone=zone,
        delivery_time=at,
        weekly_day=0,
    )


# (zone, day of the change, wall time in the gap, expected UTC instant = end of the gap)
SPRING = [
    ("Europe/Brussels", (2026, 3, 29), "02:30", utc(2026, 3, 29, 1, 0)),
    ("America/New_York", (2026, 3, 8), "02:30", utc(2026, 3, 8, 7, 0)),
    ("Australia/Sydney", (2026, 10, 4), "02:30", utc(2026, 10, 3, 16, 0)),
    ("Pacific/Chatham", (2026, 9, 27), "03:00", utc(2026, 9, 26, 14, 0)),
]


@pytest.mark.parametrize(("zone", "day", "at", "expected"), SPRING)
def test_spring_gap_sends_at_the_end_of_the_gap_once(zone, day, at, expected):
    tz = ZoneInfo(zone)
    sent = daily_around(zone, day, at)
    assert expected in sent
    local_days = [s.astimezone(tz).date() for s in sent]
    assert len(local_days) == len(set(local_days)) == 4
    # The days around the change keep the wall time.
    hh, mm = map(int, at.split(":"))
    assert all((s.astimezone(tz).hour, s.astimezone(tz).minute) == (hh, mm) for s in sent if s != expected)


# (zone, day of the change, ambiguous wall time, expected UTC instant = first occurrence)
AUTUMN = [
    ("Europe/Brussels", (2026, 10, 25), "02:30", utc(2026, 10, 25, 0, 30)),
    ("America/New_York", (2026, 11, 1), "01:30", utc(2026, 11, 1, 5, 30)),
    ("Australia/Sydney", (2026, 4, 5), "02:30", utc(2026, 4, 4, 15, 30)),
    ("Pacific/Chatham", (2026, 4, 5), "03:00", utc(2026, 4, 4, 13, 15)),
]


@pytest.mark.parametrize(("zone", "day", "at", "expected"), AUTUMN)
def test_autumn_fold_sends_at_the_first_occurrence_only(zone, day, at, expected):
    tz = ZoneInfo(zone)
    sent = daily_around(zone, day, at)
    assert expected in sent
    # The second occurrence of the same wall time (one hour later in UTC, or 1 h for Chatham) is skipped.
    assert not [s for s in sent if expected < s < expected + timedelta(hours=3)]
    local_days = [s.astimezone(tz).date() for s in sent]
    assert len(local_days) == len(set(local_days)) == 4


def test_dst_does_not_move_the_local_hour_for_an_ordinary_time():
    tz = ZoneInfo("Europe/Brussels")
    start = utc(2026, 3, 26)
    sent = simulate(
        start=start,
        end=start + timedelta(days=6),
        frequency="daily",
        timezone="Europe/Brussels",
        delivery_time="08:00",
        weekly_day=0,
    )
    assert {(s.astimezone(tz).hour, s.astimezone(tz).minute) for s in sent} == {(8, 0)}
    # 07:00 UTC before the change, 06:00 UTC after it.
    assert {s.hour for s in sent} == {7, 6}


def test_a_week_of_downtime_gives_one_due_slot_then_back_on_schedule():
    kwargs = dict(frequency="daily", timezone="Asia/Tokyo", delivery_time="07:00", weekly_day=0)
    last = utc(2026, 11, 2, 22, 0)  # Tuesday 07:00 in Tokyo
    back = last + timedelta(days=7, hours=5)
    # The process was down: the clock jumps a week; one check, one digest.
    assert due.is_due(**kwargs, last=last, created=utc(2026, 1, 1), now=back)
    assert due.next_due(**kwargs, last=last, created=utc(2026, 1, 1)) == utc(2026, 11, 3, 22, 0)
    # Queued at `back`: the watermark moves to now and the next slot is tomorrow's.
    nxt = due.next_due(**kwargs, last=back, created=utc(2026, 1, 1))
    assert nxt == utc(2026, 11, 10, 22, 0) and nxt > back
    sent = simulate(start=back, end=back + timedelta(days=2), last=last, **kwargs)
    assert sent[0] == back and len(sent) == 3  # catch-up, then one per day


def test_weekly_downtime_of_three_weeks_is_one_digest():
    kwargs = dict(frequency="weekly", timezone="America/New_York", delivery_time="18:00", weekly_day=6)
    last = utc(2026, 11, 1, 23, 0)  # Sunday 18:00 EST
    back = last + timedelta(weeks=3, hours=1)
    sent = simulate(start=back, end=back + timedelta(days=6), step=timedelta(minutes=10), last=last, **kwargs)
    assert sent == [back]


def test_unknown_timezone_falls_back_to_the_default_and_is_logged(caplog):
    caplog.set_level(logging.WARNING, logger="digests.due")
    got = due.next_due(
        frequency="daily",
        timezone="Mars/Olympus_Mons",
        delivery_time="08:00",
        weekly_day=0,
        last=None,
        created=utc(2026, 6, 1, 12),
        default_timezone="Asia/Tokyo",
    )
    assert got == utc(2026, 6, 1, 23, 0)  # 08:00 in Tokyo
    assert any("Mars/Olympus_Mons" in r.getMessage() for r in caplog.records)


def test_bad_delivery_time_and_frequency_fall_back(caplog):
    caplog.set_level(logging.WARNING, logger="digests.due")
    got = due.next_due(
        frequency="hourly",
        timezone="UTC",
        delivery_time="25:99",
        weekly_day=0,
        last=None,
        created=utc(2026, 6, 1, 12),
        default_delivery_time="09:30",
    )
    assert got == utc(2026, 6, 2, 9, 30)
    assert len(caplog.records) == 2


def test_naive_watermark_is_read_as_utc():
    aware = due.next_due(
        frequency="daily",
        timezone="UTC",
        delivery_time="08:00",
        weekly_day=0,
        last=utc(2026, 6, 1, 8),
        created=utc(2026, 1, 1),
    )
    naive = due.next_due(
        frequency="daily",
        timezone="UTC",
        delivery_time="08:00",
        weekly_day=0,
        last=datetime(2026, 6, 1, 8),
        created=utc(2026, 1, 1),
    )
    assert aware == naive == utc(2026, 6, 2, 8)


def test_a_skipped_calendar_day_moves_the_slot_to_the_next_valid_instant():
    # Samoa skipped 30 Dec 2011 entirely; a weekly Friday digest lands at the start of 31 Dec.
    got = due.next_due(
        frequency="weekly",
        timezone="Pacific/Apia",
        delivery_time="08:00",
        weekly_day=4,
        last=utc(2011, 12, 28),
        created=utc(2011, 1, 1),
    )
    assert got.astimezone(ZoneInfo("Pacific/Apia")) == datetime(
        2011, 12, 31, 0, 0, tzinfo=ZoneInfo("Pacific/Apia")
    )
