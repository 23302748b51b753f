"""The scheduler driven by a controlled clock (no sleeps): real `schedule` jobs, real database."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

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
