"""Settling outbox rows: each outcome at once, or sent emails in short group commits.

The delivery worker (digests.deliver) calls these as its senders report; they only write the
outbox (digests.outbox), off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, fields

from sqlalchemy.engine import Engine

from digests import outbox
from digests.channels import Outcome
from digests.config import Settings
from digests.models import Outbox

log = logging.getLogger("digests.deliver")


async def _db(fn, *args, **kwargs):
    # Short synchronous statements, off the event loop so other chats keep sending meanwhile.
    return await asyncio.to_thread(fn, *args, **kwargs)


@dataclass
class DeliveryReport:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    dead: int = 0
    blocked: int = 0
    bounced: int = 0
    cancelled: int = 0
    requeued: int = 0
    recovered: int = 0

    def add(self, other: DeliveryReport) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


async def settle(
    engine: Engine,
    settings: Settings,
    worker_id: str,
    row: Outbox,
    outcome: Outcome,
    report: DeliveryReport,
    unsettled: set[int],
) -> None:
    """Turn one Outcome into its outbox transition, at once, and count it."""
    w = worker_id
    e = engine
    status = outcome.status
    if status == "sent":
        if outcome.new_chat_id is not None:
            await _db(
                outbox.migrate_chat,
                e,
                old_chat_id=int(row.recipient),
                new_chat_id=outcome.new_chat_id,
                subscriber_id=row.subscriber_id,
            )
        await _db(outbox.mark_sent, e, row.id, worker_id=w)
        report.sent += 1
    elif status == "retry":
        state = await _db(
            outbox.mark_retry, e, row.id, worker_id=w, settings=settings, error=outcome.error or ""
        )
        if state == "dead":
            log.error("giving up on message %s to %s: %s", row.id, row.recipient, outcome.error)
            report.dead += 1
        else:
            report.retried += 1
    elif status == "dead":
        await _db(outbox.mark_dead, e, row.id, worker_id=w, error=outcome.error or "")
        log.error("message %s to %s is dead: %s", row.id, row.recipient, outcome.error)
        report.dead += 1
    elif status in ("blocked", "bounced"):
        blocked = status == "blocked"
        cancelled = await _db(
            outbox.mark_blocked if blocked else outbox.mark_bounced,
            e,
            row.id,
            worker_id=w,
            subscriber_id=row.subscriber_id,
            recipient=row.recipient,
            error=outcome.error or status,
        )
        what = "chat %s is gone" if blocked else "address %s bounced"
        log.info(what + " (%s); %d queued message(s) cancelled", row.recipient, outcome.error, cancelled)
        if blocked:
            report.blocked += 1
        else:
            report.bounced += 1
    elif status == "cancelled":
        await _db(outbox.mark_cancelled, e, row.id, worker_id=w, reason=outcome.error or "cancelled")
        report.cancelled += 1
    else:  # requeue
        await _db(outbox.requeue, e, [row.id], worker_id=w, delay=outcome.delay, error=outcome.error)
        report.requeued += 1
    unsettled.discard(row.id)


class SentBuffer:
    """Email's group commits: sent rows are settled EMAIL_SETTLE_BATCH at a time, in one UPDATE.

    A commit runs while the connections keep sending into the next group; a group that fills up
    before the previous commit ended waits for it. So at any moment at most two groups are
    uncommitted, each of at most EMAIL_SETTLE_BATCH + SMTP_CONNECTIONS rows (every connection
    may add its message while a group is handed over): the duplicate bound after a crash.
    """

    def __init__(self, engine: Engine, settings: Settings, worker_id: str) -> None:
        self.engine, self.settings, self.worker_id = engine, settings, worker_id
        self.rows: list[tuple[int, set[int]]] = []  # (row id, the unsettled set of its batch)
        self.lock = asyncio.Lock()
        self.committing: asyncio.Task | None = None

    async def add(self, row_id: int, unsettled: set[int]) -> None:
        self.rows.append((row_id, unsettled))
        if len(self.rows) >= self.settings.email_settle_batch:
            async with self.lock:
                if len(self.rows) >= self.settings.email_settle_batch:
                    await self._wait()
                    group, self.rows = self.rows, []
                    self.committing = asyncio.create_task(self._commit(group))

    async def flush(self) -> None:
        async with self.lock:
            await self._wait()
            group, self.rows = self.rows, []
            await self._commit(group)

    async def _wait(self) -> None:
        if self.committing is not None:
            task, self.committing = self.committing, None
            await task

    async def _commit(self, group: list[tuple[int, set[int]]]) -> None:
        if not group:
            return
        ids = [row_id for row_id, _ in group]
        await _db(outbox.mark_sent_many, self.engine, ids, worker_id=self.worker_id)
        for row_id, unsettled in group:
            unsettled.discard(row_id)

    async def every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            await self.flush()
