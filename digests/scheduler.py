"""The `schedule` library as a ticker: ingest every INGEST_EVERY_MINUTES, queue due digests every minute.

`schedule` keeps no state across restarts and never runs missed jobs, so it only says "about now";
what is due is computed from the database by the pipeline. A job that raises would stay overdue
and re-fire on every tick, so each job is wrapped: the error is logged and the job is rescheduled.

The clock is injectable: `_ClockedJob` reads it instead of `datetime.now()`, so tests drive the
real `schedule` machinery minute by minute without sleeping.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import schedule
from sqlalchemy.engine import Engine

from digests import pipeline
from digests.config import Settings
from digests.models import utcnow

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
# (engine, settings, now) -> report; the pipeline's functions by default, fakes in tests.
Step = Callable[..., Any]

QUEUE_EVERY_SECONDS = 60


def ingest_interval_seconds(settings: Settings) -> int:
    # `schedule` takes whole units; a floor of one second keeps a 0 from spinning.
    return max(1, round(settings.ingest_every_minutes * 60))


class _ClockedScheduler(schedule.Scheduler):
    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock

    def naive_now(self) -> datetime:
        # `schedule` compares naive datetimes; we keep them naive UTC.
        return self.clock().astimezone(UTC).replace(tzinfo=None)

    def every(self, interval: int = 1) -> schedule.Job:
        return _ClockedJob(interval, self)

    @property
    def idle_seconds(self) -> float | None:
        if not self.next_run:
            return None
        return (self.next_run - self.naive_now()).total_seconds()


class _ClockedJob(schedule.Job):
    """An interval job that reads the scheduler's clock (no .at()/.until(): we only use intervals)."""

    scheduler: _ClockedScheduler

    @property
    def should_run(self) -> bool:
        assert self.next_run is not None, "must run _schedule_next_run before"
        return self.scheduler.naive_now() >= self.next_run

    def _schedule_next_run(self) -> None:
        assert self.unit in ("seconds", "minutes", "hours", "days", "weeks"), self.unit
        self.next_run = self.scheduler.naive_now() + timedelta(**{self.unit: self.interval})


class ServiceScheduler:
    """The jobs of `clapper run` / `clapper scheduler`. Call `run_pending()` about once a second."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        clock: Clock = utcnow,
        ingest_step: Step | None = None,
        queue_step: Step | None = None,
        queue_every_seconds: int = QUEUE_EVERY_SECONDS,
        run_at_start: bool = True,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self._ingest_step = ingest_step or pipeline.ingest
        self._queue_step = queue_step or pipeline.queue
        self._run_at_start = run_at_start
        self.runs: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self._schedule = _ClockedScheduler(clock)
        self._schedule.every(ingest_interval_seconds(settings)).seconds.do(
            self._guarded, "ingest", self.ingest
        )
        self._schedule.every(queue_every_seconds).seconds.do(self._guarded, "queue", self.queue)

    # The jobs. Ingest queues right after, so instant subscribers get new articles in the same run.
    def ingest(self) -> None:
        self._ingest_step(self.engine, self.settings, now=self.clock())
        self.queue()

    def queue(self) -> None:
        # Read the clock after ingest: see pipeline.tick on why the watermark must not lag.
        self._queue_step(self.engine, self.settings, now=self.clock())

    def run_pending(self) -> None:
        """Run the jobs whose interval has passed; on the first call, run ingest (and queue) at once."""
        if self._run_at_start:
            self._run_at_start = False
            # After a restart or downtime, catch up now rather than one interval later.
            self._guarded("ingest", self.ingest)
        self._schedule.run_pending()

    def idle_seconds(self) -> float:
        idle = self._schedule.idle_seconds
        return 0.0 if self._run_at_start or idle is None else max(0.0, idle)

    def _guarded(self, name: str, job: Callable[[], None]) -> None:
        self.runs[name] += 1
        try:
            job()
        except Exception:
            self.failures[name] += 1
            log.exception(
                "job %s failed; it runs again at its next interval",
                name,
                extra={"event": "scheduler.job_failed", "job": name, "failures": self.failures[name]},
            )
