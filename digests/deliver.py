"""The delivery worker: claim due outbox rows, send them by Telegram and email, settle each row.

A row is settled (sent, retry later, dead…) the moment its outcome is known, so a worker killed
mid-batch leaves only the message in flight unsettled: it goes back to the queue after
DELIVERY_CLAIM_TIMEOUT and may be sent twice, never lost. While a batch runs, a heartbeat keeps
the worker's claims fresh, so a slow batch is not mistaken for a dead worker.

On PostgreSQL any number of workers may run (claims use SKIP LOCKED); on SQLite run one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, fields

from sqlalchemy.engine import Engine

from digests import outbox
from digests.channels import Outcome
from digests.config import Settings
from digests.models import Outbox

log = logging.getLogger(__name__)

# Sleep between polls when the queue is empty.
IDLE_SLEEP = 1.0


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


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


def group_by_destination(rows: Sequence[Outbox]) -> dict[str, list[list[Outbox]]]:
    """{channel: [rows of one recipient, in id order], …}; a destination's rows are sent one by one."""
    groups: dict[tuple[str, str], list[Outbox]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: r.id or 0):
        groups[(row.channel, row.recipient)].append(row)
    by_channel: dict[str, list[list[Outbox]]] = defaultdict(list)
    for (channel, _recipient), group in groups.items():
        by_channel[channel].append(group)
    return by_channel


class Deliverer:
    """One worker's senders (a Bot, SMTP settings) and its claim on the outbox."""

    def __init__(self, engine: Engine, settings: Settings, *, worker_id: str) -> None:
        self.engine = engine
        self.settings = settings
        self.worker_id = worker_id
        self.telegram = None
        self.email = None
        if settings.telegram_enabled:
            from digests.channels.telegram import TelegramSender

            self.telegram = TelegramSender(settings)
        if settings.email_enabled:
            from digests.channels.email import EmailSender

            self.email = EmailSender(settings)

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(name for name, sender in (("telegram", self.telegram), ("email", self.email)) if sender)

    async def close(self) -> None:
        if self.telegram is not None:
            await self.telegram.close()

    async def _db(self, fn, *args, **kwargs):
        # Short synchronous statements, off the event loop so other chats keep sending meanwhile.
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def _settle(
        self, row: Outbox, outcome: Outcome, report: DeliveryReport, unsettled: set[int]
    ) -> None:
        w = self.worker_id
        e = self.engine
        status = outcome.status
        if status == "sent":
            if outcome.new_chat_id is not None:
                await self._db(
                    outbox.migrate_chat,
                    e,
                    old_chat_id=int(row.recipient),
                    new_chat_id=outcome.new_chat_id,
                    subscriber_id=row.subscriber_id,
                )
            await self._db(outbox.mark_sent, e, row.id, worker_id=w)
            report.sent += 1
        elif status == "retry":
            state = await self._db(
                outbox.mark_retry, e, row.id, worker_id=w, settings=self.settings, error=outcome.error or ""
            )
            if state == "dead":
                log.error("giving up on message %s to %s: %s", row.id, row.recipient, outcome.error)
                report.dead += 1
            else:
                report.retried += 1
        elif status == "dead":
            await self._db(outbox.mark_dead, e, row.id, worker_id=w, error=outcome.error or "")
            log.error("message %s to %s is dead: %s", row.id, row.recipient, outcome.error)
            report.dead += 1
        elif status in ("blocked", "bounced"):
            blocked = status == "blocked"
            cancelled = await self._db(
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
            await self._db(outbox.mark_cancelled, e, row.id, worker_id=w, reason=outcome.error or "cancelled")
            report.cancelled += 1
        else:  # requeue
            await self._db(outbox.requeue, e, [row.id], worker_id=w, delay=outcome.delay, error=outcome.error)
            report.requeued += 1
        unsettled.discard(row.id)

    async def _heartbeat(self, unsettled: set[int]) -> None:
        period = max(0.5, self.settings.delivery_claim_timeout / 3)
        while True:
            await asyncio.sleep(period)
            await self._db(outbox.touch, self.engine, list(unsettled), worker_id=self.worker_id)

    async def run_batch(
        self, *, limit: int | None = None, stop: asyncio.Event | None = None
    ) -> DeliveryReport:
        """Claim what is due now (up to `limit`), send it all, settle every row."""
        report = DeliveryReport()
        if not self.channels:
            return report
        report.recovered = await self._db(
            outbox.recover_stale, self.engine, timeout=self.settings.delivery_claim_timeout
        )
        rows = await self._db(
            outbox.claim,
            self.engine,
            worker_id=self.worker_id,
            limit=limit or self.settings.delivery_batch_size,
            channels=self.channels,
        )
        report.claimed = len(rows)
        if not rows:
            return report
        unsettled = {row.id for row in rows}
        by_channel = group_by_destination(rows)

        async def settle(row: Outbox, outcome: Outcome) -> None:
            await self._settle(row, outcome, report, unsettled)

        heartbeat = asyncio.create_task(self._heartbeat(unsettled))
        try:
            jobs = []
            if self.telegram is not None and by_channel.get("telegram"):
                jobs.append(self.telegram.send_groups(by_channel["telegram"], settle, stop=stop))
            if self.email is not None and by_channel.get("email"):
                jobs.append(self.email.send_groups(by_channel["email"], settle, stop=stop))
            await asyncio.gather(*jobs)
        finally:
            heartbeat.cancel()
            if unsettled:
                # Only after a crash inside a sender: nothing claimed may stay stuck in 'sending'.
                await asyncio.shield(
                    self._db(outbox.requeue, self.engine, list(unsettled), worker_id=self.worker_id)
                )
        return report


async def deliver_once_async(
    engine: Engine, settings: Settings, *, worker_id: str | None = None, limit: int | None = None
) -> DeliveryReport:
    deliverer = Deliverer(engine, settings, worker_id=worker_id or default_worker_id())
    try:
        return await deliverer.run_batch(limit=limit)
    finally:
        await deliverer.close()


def deliver_once(
    engine: Engine, settings: Settings, *, worker_id: str | None = None, limit: int | None = None
) -> DeliveryReport:
    """Claim and send what is due now (one batch of up to `limit`, both channels); counts."""
    coro = deliver_once_async(engine, settings, worker_id=worker_id, limit=limit)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Called from inside an event loop (e.g. a scheduler job): run on a loop of its own.
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def run_worker(
    engine: Engine,
    settings: Settings,
    *,
    stop: asyncio.Event,
    worker_id: str | None = None,
    idle_sleep: float = IDLE_SLEEP,
) -> DeliveryReport:
    """Deliver until `stop` is set; then finish the sends in flight and give back the rest."""
    worker_id = worker_id or default_worker_id()
    deliverer = Deliverer(engine, settings, worker_id=worker_id)
    total = DeliveryReport()
    released = await asyncio.to_thread(outbox.release_worker, engine, worker_id=worker_id)
    if released:
        log.info(
            "worker %s: %d row(s) from a previous run under this id back in the queue", worker_id, released
        )
    log.info("delivery worker %s started (channels: %s)", worker_id, ", ".join(deliverer.channels) or "none")
    try:
        while not stop.is_set():
            try:
                batch = await deliverer.run_batch(stop=stop)
            except Exception:
                # A database hiccup must not kill the worker; claims it holds time out if need be.
                log.exception("delivery batch failed; retrying shortly")
                batch = DeliveryReport()
            total.add(batch)
            if batch.claimed:
                log.info("worker %s: %s", worker_id, batch.as_dict())
                continue
            try:
                await asyncio.wait_for(stop.wait(), timeout=idle_sleep)
            except TimeoutError:
                pass
    finally:
        await deliverer.close()
        await asyncio.to_thread(outbox.release_worker, engine, worker_id=worker_id)
        log.info("delivery worker %s stopped: %s", worker_id, total.as_dict())
    return total
