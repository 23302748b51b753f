"""One tick of the service: ingest the sources, then queue every digest that is due.

The CLI, the scheduler and the tests call these same functions; what is due is decided from the
database (digests.due via digests.queue), so running a tick twice or after a restart is harmless.
No SQL here: ingest and queue own their queries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from digests.config import Settings
from digests.models import utcnow

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


@dataclass
class TickReport:
    started_at: datetime
    ingest: Any = None  # digests.ingest.IngestReport
    queue: Any = None  # digests.queue.QueueReport
    seconds: float = 0.0


def ingest(engine: Engine, settings: Settings, *, now: datetime, names: list[str] | None = None) -> Any:
    """Fetch every enabled source that is not backing off (digests.ingest.run_sources)."""
    from digests.ingest import run_sources

    report = run_sources(engine, settings, names=names, now=now)
    log.info(
        "ingest done",
        extra={"event": "pipeline.ingest", **_fields(report, "new", "updated")},
    )
    return report


def queue(engine: Engine, settings: Settings, *, now: datetime) -> Any:
    """Queue every digest whose slot has come, watermarks advanced in the same transaction."""
    from digests.queue import queue_due

    report = queue_due(engine, settings, now=now)
    log.info(
        "queue done", extra={"event": "pipeline.queue", **_fields(report, "queued", "digests", "messages")}
    )
    return report


def tick(
    engine: Engine,
    settings: Settings,
    *,
    clock: Clock = utcnow,
    do_ingest: bool = True,
    names: list[str] | None = None,
) -> TickReport:
    """Ingest (optional), then queue at a fresh `now`.

    The queue's `now` is read after ingest on purpose: the watermark becomes that `now`, so it must
    not be earlier than the first_seen_at of anything just ingested, or those articles would come
    again in the next digest. Instant subscribers therefore get one batched message per ingest run.
    """
    started = clock()
    t0 = time.perf_counter()
    report = TickReport(started_at=started)
    if do_ingest:
        report.ingest = ingest(engine, settings, now=started, names=names)
    report.queue = queue(engine, settings, now=max(clock(), started))
    report.seconds = time.perf_counter() - t0
    return report


def _fields(report: Any, *names: str) -> dict[str, Any]:
    # The reports belong to other modules; log whichever counters they carry.
    return {name: getattr(report, name) for name in names if isinstance(getattr(report, name, None), int)}
