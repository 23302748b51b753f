"""The scheduler driven by a controlled clock (no sleeps): real `schedule` jobs, real database."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from digests.db import session_scope
from digests.models import Article, ArticleTag, Outbox, Subscriber, Subscription
from digests.scheduler import ServiceScheduler, ingest_interval_seconds


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def run_for(sched: ServiceScheduler, clock: FakeClock, *, minutes: int, step: float = 1) -> None:
    """Tick once per `step` minutes, the way the runner ticks once a second in real time."""
    end = clock.now + timedelta(minutes=minutes)
    while clock.now < end:
        sched.run_pending()
        clock.advance(minutes=step)


def test_ingest_interval_accepts_fractions(settings):
    assert ingest_interval_seconds(settings.model_copy(update={"ingest_every_minutes": 0.05})) == 3
    assert ingest_interval_seconds(settings.model_copy(update={"ingest_every_minutes": 0})) == 1
    assert ingest_interval_seconds(settings) == 30 * 60


def test_jobs_run_on_their_intervals_by_the_injected_clock(engine, settings):
    clock = FakeClock(datetime(2026, 11, 26, 9, 0, tzinfo=UTC))
    calls: list[tuple[str, datetime]] = []
    sched = ServiceScheduler(
        engine,
        settings.model_copy(update={"ingest_every_minutes": 30}),
        clock=clock,
        ingest_step=lambda e, s, *, now: calls.append(("ingest", now)),
        queue_step=lambda e, s, *, now: calls.append(("queue", now)),
    )
    run_for(sched, clock, minutes=121)
    ingests = [t for kind, t in calls if kind == "ingest"]
    start = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    # At start (catch-up after a restart), then every 30 minutes.
    assert ingests == [start + timedelta(minutes=m) for m in (0, 30, 60, 90, 120)]
    queues = [t for kind, t in calls if kind == "queue"]
    # Every minute, plus right after each ingest (instant subscribers get the new articles at once).
    assert len(queues) == 120 + len(ingests)
    for t in ingests:
        i = calls.index(("ingest", t))
        assert calls[i + 1] == ("queue", t)


def test_a_raising_job_is_logged_and_the_loop_goes_on(engine, settings, caplog):
    caplog.set_level(logging.ERROR, logger="digests.scheduler")
    clock = FakeClock(datetime(2026, 11, 26, 9, 0, tzinfo=UTC))
    ingested: list[datetime] = []
    queued: list[datetime] = []

    def bad_ingest(e, s, *, now):
        ingested.append(now)
        raise RuntimeError("source exploded")

    sched = ServiceScheduler(
        engine,
        settings.model_copy(update={"ingest_every_minutes": 10}),
        clock=clock,
        ingest_step=bad_ingest,
        queue_step=lambda e, s, *, now: queued.append(now),
    )
    run_for(sched, clock, minutes=31)
    # Unguarded, `schedule` would leave the job overdue and re-run it on every tick (31 times).
    assert len(ingested) == 4
    assert sched.failures["ingest"] == 4
    assert len(queued) == 30  # minutes 1..30: the failing ingest skipped its queue, the minute job went on
    failures = [r for r in caplog.records if getattr(r, "event", None) == "scheduler.job_failed"]
    assert len(failures) == 4 and "source exploded" in failures[0].exc_text


def test_idle_seconds_follows_the_clock(engine, settings):
    clock = FakeClock(datetime(2026, 11, 26, 9, 0, tzinfo=UTC))
    sched = ServiceScheduler(
        engine,
        settings,
        clock=clock,
        ingest_step=lambda e, s, *, now: None,
        queue_step=lambda e, s, *, now: None,
    )
    assert sched.idle_seconds() == 0.0  # the start-up run is pending
    sched.run_pending()
    assert sched.idle_seconds() == pytest.approx(60)
    clock.advance(seconds=45)
    assert sched.idle_seconds() == pytest.approx(15)


# ----------------------------------------------------------------------------- with the real queue
# The ingest step is faked (it stamps new Belgian articles at the clock's `now`); queueing is the
# real pipeline (digests.queue.queue_due), so what is due comes from the database.


class FakeIngest:
    def __init__(self, per_run: int = 1) -> None:
        self.per_run = per_run
        self.count = 0

    def __call__(self, engine, settings, *, now: datetime) -> None:
        with session_scope(engine) as s:
            for _ in range(self.per_run):
                self.count += 1
                article = Article(
                    url=f"https://news.test/a/{self.count}",
                    title=f"Shoot {self.count} starts in Ghent",
                    summary="Principal photography begins.",
                    published=now.date(),
                    first_seen_at=now,
                    updated_at=now,
                )
                s.add(article)
                s.flush()
                s.add(ArticleTag(article_id=article.id, kind="country", value="Belgium"))


def add_reader(engine, chat_id: int, *, created: datetime, **fields) -> int:
    with session_scope(engine) as s:
        reader = Subscriber(telegram_chat_id=chat_id, chat_type="private", created_at=created, **fields)
        s.add(reader)
        s.flush()
        s.add(Subscription(subscriber_id=reader.id, kind="country", value="Belgium"))
        return reader.id


def digests_of(engine) -> dict[int, list[tuple[datetime, int]]]:
    """{chat id: [(queued at, articles)]}, one entry per digest (split parts counted once)."""
    with session_scope(engine) as s:
        rows = s.exec(select(Outbox).where(Outbox.channel == "telegram").order_by(Outbox.id)).all()
    found: dict[int, dict[str, int]] = {}
    for row in rows:
        key = row.digest_key.split("#", 1)[0]
        found.setdefault(int(row.recipient), {})[key] = row.article_count
    return {
        chat: [(datetime.fromisoformat(k.removeprefix("digest:")), n) for k, n in keys.items()]
        for chat, keys in found.items()
    }


def make_scheduler(engine, settings, clock, ingest, *, step_minutes: int) -> ServiceScheduler:
    return ServiceScheduler(
        engine,
        settings.model_copy(update={"ingest_every_minutes": 60}),
        clock=clock,
        ingest_step=ingest,
        queue_every_seconds=step_minutes * 60,
    )


DAILY = [  # chat id, zone
    (101, "Europe/Brussels"),
    (102, "America/New_York"),
    (103, "Asia/Tokyo"),
    (104, "Australia/Sydney"),
    (105, "Pacific/Chatham"),
]


def test_daily_and_weekly_digests_come_at_the_local_hour_across_a_dst_change(engine, settings):
    start = datetime(2026, 10, 23, 0, 0, tzinfo=UTC)  # Brussels leaves summer time on 25 Oct
    for chat, zone in DAILY:
        add_reader(engine, chat, created=start, frequency="daily", timezone=zone, delivery_time="08:00")
    add_reader(
        engine,
        201,
        created=start,
        frequency="weekly",
        timezone="Europe/Brussels",
        delivery_time="07:30",
        weekly_day=0,
    )  # Monday 26 Oct, the day after the change
    add_reader(
        engine,
        202,
        created=start,
        frequency="weekly",
        timezone="Asia/Tokyo",
        delivery_time="18:00",
        weekly_day=5,
    )  # Saturday 24 Oct
    clock = FakeClock(start)
    ingest = FakeIngest()
    # Quarter-hour ticks: every slot here (Chatham is UTC+13:45/+12:45) falls on one.
    sched = make_scheduler(engine, settings, clock, ingest, step_minutes=15)
    run_for(sched, clock, minutes=4 * 24 * 60, step=15)

    got = digests_of(engine)
    for chat, zone in DAILY:
        local = [t.astimezone(ZoneInfo(zone)) for t, _ in got[chat]]
        assert [(t.hour, t.minute) for t in local] == [(8, 0)] * len(local), (zone, local)
        assert len({t.date() for t in local}) == len(local) in (3, 4)
    brussels = [t for t, _ in got[101]]
    assert {t.hour for t in brussels} == {6, 7}  # 08:00 CEST then 08:00 CET
    assert [t.astimezone(ZoneInfo("Europe/Brussels")) for t, _ in got[201]] == [
        datetime(2026, 10, 26, 7, 30, tzinfo=ZoneInfo("Europe/Brussels"))
    ]
    assert [t for t, _ in got[202]] == [datetime(2026, 10, 24, 9, 0, tzinfo=UTC)]
    # Every article ingested after sign-up (hourly, from the start) reaches each daily reader once.
    for chat, _zone in DAILY:
        articles = sum(n for _, n in got[chat])
        last_digest = got[chat][-1][0]
        assert articles == (last_digest - start) // timedelta(hours=1)


def test_a_restart_in_the_middle_of_the_day_sends_nothing_twice(engine, settings):
    start = datetime(2026, 11, 26, 5, 0, tzinfo=UTC)
    add_reader(
        engine,
        301,
        created=start - timedelta(days=3),
        frequency="daily",
        timezone="Europe/Brussels",
        delivery_time="08:00",
        last_digest_at=datetime(2026, 11, 25, 7, 0, tzinfo=UTC),
    )
    add_reader(engine, 302, created=start - timedelta(days=3), frequency="instant")
    clock = FakeClock(start)
    ingest = FakeIngest(per_run=2)
    first = make_scheduler(engine, settings, clock, ingest, step_minutes=15)
    run_for(first, clock, minutes=7 * 60, step=15)  # 05:00 -> 12:00 UTC, the digest went at 07:00
    # The process restarts at noon: new scheduler, same database, start-up ingest and queue at once.
    second = make_scheduler(engine, settings, clock, ingest, step_minutes=15)
    run_for(second, clock, minutes=11 * 60, step=15)  # -> 23:00 UTC

    got = digests_of(engine)
    assert [t for t, _ in got[301]] == [datetime(2026, 11, 26, 7, 0, tzinfo=UTC)]
    # Instant: one message per ingest run (both at the restart), every article exactly once.
    instant = got[302]
    assert len(instant) == len({t for t, _ in instant}) == ingest.count // 2
    assert sum(n for _, n in instant) == ingest.count
    assert all(n == 2 for _, n in instant)


def test_a_week_of_downtime_yields_one_catch_up_digest_per_reader(engine, settings):
    start = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)  # a Monday
    readers = {
        401: dict(frequency="daily", timezone="Europe/Brussels", delivery_time="08:00"),
        402: dict(frequency="daily", timezone="America/New_York", delivery_time="07:00"),
        403: dict(frequency="weekly", timezone="Asia/Tokyo", delivery_time="09:00", weekly_day=2),
        404: dict(frequency="instant"),
    }
    for chat, fields in readers.items():
        add_reader(engine, chat, created=start - timedelta(days=10), **fields)
    clock = FakeClock(start)
    ingest = FakeIngest()
    first = make_scheduler(engine, settings, clock, ingest, step_minutes=60)
    run_for(first, clock, minutes=24 * 60, step=60)  # Monday
    before = {chat: len(d) for chat, d in digests_of(engine).items()}

    clock.advance(days=7, hours=3)  # down for a week; back Tuesday 03:00 UTC, before any local slot
    back = clock.now
    second = make_scheduler(engine, settings, clock, ingest, step_minutes=60)
    second.run_pending()
    got = digests_of(engine)
    for chat in readers:
        caught_up = [(t, n) for t, n in got[chat] if t == back]
        assert len(got[chat]) == before.get(chat, 0) + 1, chat
        assert len(caught_up) == 1, chat
    # The catch-up covers what was left from before the downtime plus the start-up ingest.
    assert sum(n for _, n in got[401]) == ingest.count
    # Then back on schedule: nothing more until each reader's next local slot.
    run_for(second, clock, minutes=60, step=60)
    assert {c: len(d) for c, d in digests_of(engine).items() if c != 404} == {
        c: len(got[c]) for c in (401, 402, 403)
    }


def test_one_pipeline_tick_ingests_then_queues_one_batched_instant_message(engine, settings):
    from digests import pipeline
    from digests.models import Source
    from tests.fakes.listing_site import ListingSite

    settings = settings.model_copy(update={"listing_max_pages": 1, "http_retries": 0})
    with ListingSite.in_thread() as site:
        with session_scope(engine) as s:
            s.add(Source(name="belgium", url=site.url, kind="listing"))
        joined = datetime.now(UTC) - timedelta(minutes=1)
        add_reader(engine, 601, created=joined, frequency="instant")
        add_reader(engine, 602, created=joined, frequency="daily", timezone="UTC", delivery_time="08:00")
        site.add("Shoot starts in Ghent")
        site.add("Shoot starts in Mons")
        report = pipeline.tick(engine, settings)
        assert report.ingest.new == 2 and report.queue.digests == 1
        again = pipeline.tick(engine, settings)  # nothing new on the page: nothing queued
        assert again.ingest.new == 0 and again.queue.messages == 0
    got = digests_of(engine)
    assert [n for _, n in got[601]] == [2] and 602 not in got


def test_a_failing_source_backs_off_and_recovers(engine, settings):
    from digests import status
    from digests.models import Source
    from tests.fakes.listing_site import ListingSite

    settings = settings.model_copy(
        update={"listing_max_pages": 1, "http_retries": 0, "ingest_every_minutes": 10}
    )
    with ListingSite.in_thread() as site:
        site.add("Shoot starts in Ghent")
        site.fail_next = 10_000  # the site is down
        start = datetime.now(UTC)
        with session_scope(engine) as s:
            s.add(Source(name="belgium", url=site.url, kind="listing", created_at=start))
        clock = FakeClock(start)
        sched = ServiceScheduler(engine, settings, clock=clock)  # the real pipeline
        run_for(sched, clock, minutes=181, step=10)
        # Tried at 0, 10, 30, 70 and 150 min (10 min doubled per failure), not at all 19 ticks.
        assert site.requests == 5
        with session_scope(engine) as s:
            source = s.exec(select(Source)).one()
        assert source.error_count == 5 and "503" in (source.last_error or "")
        assert source.next_fetch_at == start + timedelta(minutes=150 + 160)
        health = status.collect(engine, settings, now=clock.now)
        assert not health.healthy and "no source ingested yet" in health.problems[0]

        site.fail_next = 0  # back up: the try at 310 min succeeds, then every 10 minutes again
        run_for(sched, clock, minutes=140, step=10)  # ticks 190 .. 320 min
        assert site.requests == 7
        with session_scope(engine) as s:
            source = s.exec(select(Source)).one()
            articles = s.exec(select(Article)).all()
        assert source.error_count == 0 and source.next_fetch_at is None and len(articles) == 1
        assert status.collect(engine, settings, now=clock.now).healthy
