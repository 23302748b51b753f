"""The delivery worker: one lane per channel, each claiming its own rows, sending, settling each.

Telegram and email never wait for each other: each channel has its own claim loop, so a slow or
failing SMTP server does not hold Telegram (and the reverse). A Telegram row is settled the moment
its answer arrives; sent emails are settled in short group commits (EMAIL_SETTLE_BATCH rows or
EMAIL_SETTLE_SECONDS), everything else at once. A worker killed mid-batch therefore leaves unsettled
at most the Telegram requests in flight, plus on the email lane 2 x (EMAIL_SETTLE_BATCH +
SMTP_CONNECTIONS) sent messages (digests.settling.SentBuffer): those may be sent twice, nothing
is lost. Its claims go back to the queue once its heartbeat (digests.workers) is
DEAD_AFTER_BEATS beats old.

On PostgreSQL any number of workers may run (claims use SKIP LOCKED); on SQLite run one. They
share TELEGRAM_MAX_RATE: each live Telegram worker sends at most its share.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import os
import socket
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.engine import Engine

from digests import outbox, settling, workers
from digests.channels import Outcome
from digests.config import Settings
from digests.models import Outbox, utcnow
from digests.settling import DeliveryReport, SentBuffer

log = logging.getLogger(__name__)

# Sleep between polls when the queue is empty.
IDLE_SLEEP = 1.0
# Batches a lane keeps going at once, so the next one is claimed while the last rows of the
# current one go out (Telegram: the last chats wait for their turn in the rate; email: claiming
# rewrites big rows). Email batches share the SMTP_CONNECTIONS connections (EmailSender's pool).
BATCHES_AT_ONCE = {"telegram": 2, "email": 2}
# A worker joining others waits this many heartbeats before its first Telegram send, so the
# others have lowered their share of the rate by then (no moment above the cap).
JOIN_WAIT_BEATS = 2


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


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
    """One worker's senders (a Bot, SMTP settings), its heartbeat and its claims on the outbox."""

    def __init__(
        self, engine: Engine, settings: Settings, *, worker_id: str, channels: Sequence[str] | None = None
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.worker_id = worker_id
        self.telegram = None
        self.email = None
        # Live Telegram workers sharing the bot's rate, as of the last heartbeat.
        self.sharing = 1
        # One claim at a time per channel in this process, so two batches of a lane never split
        # one destination's line between them (another process is kept out by SKIP LOCKED).
        self._claiming = {"telegram": asyncio.Lock(), "email": asyncio.Lock()}
        self._sent = SentBuffer(engine, settings, worker_id)
        # Telegram batches in progress (a share of the rate is held while there are any).
        self._telegram_batches = 0
        self._telegram_gate = asyncio.Lock()
        self._beat_thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="beat")
        self._beats = 0
        # Set when this worker learns it was presumed dead: batches claimed before stop sending.
        self._fence = asyncio.Event()
        # `channels`: this process is one lane of a worker (digests.lane_processes); None: all.
        wanted = set(channels) if channels is not None else {"telegram", "email"}
        if settings.telegram_enabled and "telegram" in wanted:
            from digests.channels.telegram import TelegramSender

            self.telegram = TelegramSender(settings)
        if settings.email_enabled and "email" in wanted:
            from digests.channels.email import EmailSender

            self.email = EmailSender(settings)

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(name for name, sender in (("telegram", self.telegram), ("email", self.email)) if sender)

    async def close(self) -> None:
        self._beat_thread.shutdown(wait=False)
        if self.telegram is not None:
            await self.telegram.close()
        if self.email is not None:
            await self.email.close()

    async def _db(self, fn, *args, **kwargs):
        # Short synchronous statements, off the event loop so other chats keep sending meanwhile.
        return await asyncio.to_thread(fn, *args, **kwargs)

    # ---------------------------------------------------------------- heartbeat and shared rate

    async def beat(self) -> None:
        """Write the heartbeat, then take this worker's share of TELEGRAM_MAX_RATE."""
        s = self.settings
        # Its own thread: a heartbeat queued behind a burst of settles could make a live worker
        # look dead.
        # Only a worker with Telegram rows in hand takes a share of the rate; an idle one leaves
        # the whole rate to the busy ones.
        busy = tuple(c for c in self.channels if c != "telegram" or self._telegram_batches)
        write = functools.partial(workers.beat, self.engine, self.worker_id, channels=busy)
        known = await asyncio.get_running_loop().run_in_executor(self._beat_thread, write)
        if not known and self._beats:
            # Presumed dead (stalled past three heartbeats): its claims went to others. Stop
            # sending what the running batches still hold, so the duplicates end here.
            log.error("worker %s was presumed dead; dropping the rows it held", self.worker_id)
            self._fence.set()
            self._fence = asyncio.Event()
        self._beats += 1
        if self.telegram is not None:
            self.sharing = await self._db(
                workers.live_sharing,
                self.engine,
                channel="telegram",
                heartbeat_seconds=s.delivery_heartbeat_seconds,
            )
            self.telegram.limiter.set_rate(s.telegram_max_rate / self.sharing)

    async def heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.settings.delivery_heartbeat_seconds)
            try:
                await self.beat()
            except Exception:
                # A missed beat is survivable (the limit is three); a dead heartbeat task is not.
                log.exception("worker %s: heartbeat failed", self.worker_id)

    async def join(self) -> None:
        """The first heartbeat: this worker's claims are live from now on."""
        await self.beat()

    async def _telegram_busy(self, stop: asyncio.Event | None) -> None:
        """A Telegram batch starts; the first one makes this worker take a share of the rate.

        It waits until the other busy workers have counted it (each beats after its first busy
        beat), so together they never exceed the rate; one that does not (stalled, or on a skewed
        clock) is waited for at most JOIN_WAIT_BEATS heartbeats.
        """
        # Counted before the first await, so the caller's `finally` always has something to undo.
        self._telegram_batches += 1
        first = self._telegram_batches == 1
        async with self._telegram_gate:  # a second batch waits while the first makes room
            if not first:
                return
            joined = utcnow()
            await self.beat()
            if self.sharing <= 1:
                return
            beat = self.settings.delivery_heartbeat_seconds
            log.info("worker %s: %d workers share Telegram; making room", self.worker_id, self.sharing)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + JOIN_WAIT_BEATS * beat
            while loop.time() < deadline and not (stop is not None and stop.is_set()):
                behind = await self._db(
                    workers.not_seen_since, self.engine, self.worker_id, since=joined, heartbeat_seconds=beat
                )
                if not behind:
                    return
                await asyncio.sleep(min(0.2, beat / 10))

    async def recover(self) -> int:
        s = self.settings
        return await self._db(
            workers.recover_dead,
            self.engine,
            heartbeat_seconds=s.delivery_heartbeat_seconds,
            claim_timeout=s.delivery_claim_timeout,
        )

    # ---------------------------------------------------------------- settling

    # ---------------------------------------------------------------- lanes

    async def run_batch(
        self,
        channel: str,
        *,
        limit: int | None = None,
        stop: asyncio.Event | None = None,
        due_before: datetime | None = None,
        report: DeliveryReport | None = None,
    ) -> DeliveryReport:
        """One lane's batch: claim what is due on `channel` (up to `limit`), send it, settle every row."""
        report = report if report is not None else DeliveryReport()
        sender = self.telegram if channel == "telegram" else self.email if channel == "email" else None
        if sender is None:
            return report
        async with self._claiming[channel]:
            rows = await self._db(
                outbox.claim,
                self.engine,
                worker_id=self.worker_id,
                limit=limit or self.settings.delivery_batch_size,
                channels=(channel,),
                due_before=due_before,
            )
        report.claimed += len(rows)
        if not rows:
            return report
        unsettled = {row.id for row in rows}
        groups = group_by_destination(rows)[channel]
        buffer = self._sent if channel == "email" else None

        async def settle(row: Outbox, outcome: Outcome) -> None:
            if buffer is not None and outcome.status == "sent":
                report.sent += 1
                await buffer.add(row.id, unsettled)
            else:
                await settling.settle(
                    self.engine, self.settings, self.worker_id, row, outcome, report, unsettled
                )

        flusher = asyncio.create_task(buffer.every(self.settings.email_settle_seconds)) if buffer else None
        # The senders' stop: the worker stopping, or the rows of this batch no longer being ours.
        halt = asyncio.Event()
        fence = self._fence

        async def watch() -> None:
            waits = [asyncio.create_task(fence.wait())]
            if stop is not None:
                waits.append(asyncio.create_task(stop.wait()))
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()
            halt.set()

        watcher = asyncio.create_task(watch())
        try:
            if channel == "telegram":
                await self._telegram_busy(stop)
            await sender.send_groups(groups, settle, stop=halt)
        finally:
            if channel == "telegram":
                self._telegram_batches -= 1
            watcher.cancel()
            if flusher is not None:
                flusher.cancel()
                await asyncio.shield(buffer.flush())
            if unsettled:
                # Only after a crash inside a sender: nothing claimed may stay stuck in 'sending'.
                await asyncio.shield(
                    self._db(outbox.requeue, self.engine, list(unsettled), worker_id=self.worker_id)
                )
        return report

    async def drain(
        self,
        channel: str,
        *,
        due_before: datetime,
        report: DeliveryReport,
        limit: int | None = None,
        stop: asyncio.Event | None = None,
    ) -> None:
        """Batch after batch until nothing that was due by `due_before` is left on `channel` (or `stop`)."""

        async def one() -> None:
            while not (stop is not None and stop.is_set()):
                claimed = report.claimed
                await self.run_batch(channel, limit=limit, due_before=due_before, report=report, stop=stop)
                if report.claimed == claimed:
                    return

        await asyncio.gather(*(one() for _ in range(BATCHES_AT_ONCE[channel])))

    async def lane(
        self, channel: str, *, stop: asyncio.Event, report: DeliveryReport, idle_sleep: float
    ) -> None:
        """A channel's claim loops until `stop`; a failure here never touches the other lane."""
        loops = (
            self._claim_loop(channel, stop=stop, report=report, idle_sleep=idle_sleep)
            for _ in range(BATCHES_AT_ONCE[channel])
        )
        await asyncio.gather(*loops)

    async def _claim_loop(
        self, channel: str, *, stop: asyncio.Event, report: DeliveryReport, idle_sleep: float
    ) -> None:
        while not stop.is_set():
            batch = DeliveryReport()
            try:
                batch.recovered = await self.recover()
                await self.run_batch(channel, stop=stop, report=batch)
            except Exception:
                # A database hiccup must not kill the lane; its claims are freed if the worker dies.
                log.exception("%s delivery batch failed; retrying shortly", channel)
            report.add(batch)
            if batch.claimed:
                log.info("worker %s, %s: %s", self.worker_id, channel, batch.as_dict())
                continue
            if channel == "email" and self.email is not None:
                await self.email.close()  # nothing to send: do not hold idle SMTP connections open
            try:
                await asyncio.wait_for(stop.wait(), timeout=idle_sleep)
            except TimeoutError:
                pass


async def deliver_once_async(
    engine: Engine,
    settings: Settings,
    *,
    worker_id: str | None = None,
    limit: int | None = None,
    channels: Sequence[str] | None = None,
    stop: asyncio.Event | None = None,
) -> DeliveryReport:
    """Send everything that is due now on every channel (each in its own lane), then return.

    `stop` ends it early: the sends in flight finish, what is still claimed goes back to the queue.
    """
    deliverer = Deliverer(engine, settings, worker_id=worker_id or default_worker_id(), channels=channels)
    report = DeliveryReport()
    if not deliverer.channels:
        return report
    await deliverer.join()
    heartbeat = asyncio.create_task(deliverer.heartbeat())
    try:
        report.recovered = await deliverer.recover()
        # After the recovery: what dead workers held counts as due now.
        started = utcnow()
        lanes = [
            deliverer.drain(channel, due_before=started, report=report, limit=limit, stop=stop)
            for channel in deliverer.channels
        ]
        await asyncio.gather(*lanes)
        return report
    finally:
        heartbeat.cancel()
        await deliverer.close()
        await asyncio.shield(asyncio.to_thread(workers.leave, engine, deliverer.worker_id))


def deliver_once(
    engine: Engine, settings: Settings, *, worker_id: str | None = None, limit: int | None = None
) -> DeliveryReport:
    """Send everything due now (all channels, batch after batch), then return the counts."""
    coro = deliver_once_async(engine, settings, worker_id=worker_id, limit=limit)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Called from inside an event loop (e.g. a scheduler job): run on a loop of its own.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def run_worker(
    engine: Engine,
    settings: Settings,
    *,
    stop: asyncio.Event,
    worker_id: str | None = None,
    idle_sleep: float = IDLE_SLEEP,
    channels: Sequence[str] | None = None,
) -> DeliveryReport:
    """Deliver until `stop` is set; then finish the sends in flight and give back the rest."""
    worker_id = worker_id or default_worker_id()
    deliverer = Deliverer(engine, settings, worker_id=worker_id, channels=channels)
    total = DeliveryReport()
    released = await asyncio.to_thread(outbox.release_worker, engine, worker_id=worker_id)
    if released:
        log.info(
            "worker %s: %d row(s) from a previous run under this id back in the queue", worker_id, released
        )
    log.info("delivery worker %s started (channels: %s)", worker_id, ", ".join(deliverer.channels) or "none")
    heartbeat: asyncio.Task | None = None
    try:
        if deliverer.channels:
            await deliverer.join()
            heartbeat = asyncio.create_task(deliverer.heartbeat())
            await asyncio.gather(
                *(
                    deliverer.lane(channel, stop=stop, report=total, idle_sleep=idle_sleep)
                    for channel in deliverer.channels
                )
            )
        else:
            await stop.wait()
    finally:
        if heartbeat is not None:
            heartbeat.cancel()
        await deliverer.close()
        await asyncio.to_thread(outbox.release_worker, engine, worker_id=worker_id)
        await asyncio.to_thread(workers.leave, engine, worker_id)
        log.info("delivery worker %s stopped: %s", worker_id, total.as_dict())
    return total
