"""A worker's channels each in a process of its own: `clapper deliver` and `clapper run` with both on.

Lanes as tasks of one process (digests.deliver) never wait for each other's I/O, but they share
one interpreter lock: PTB and httpx spend about 4 ms of CPU on every Telegram message, and while
Telegram sends at its rate that CPU comes out of email's pace (measured: email beside Telegram at
0.5-0.75 of email alone). In processes of their own, neither takes the other's CPU, and a lane
that crashes is restarted while the other goes on.

The parent only supervises: each child is an ordinary worker for one channel, named
`<worker id>/<channel>`, with its own heartbeat, claims and share of the Telegram rate. A child
whose parent died (SIGKILL, OOM) notices within ORPHAN_CHECK_SECONDS and stops as on SIGTERM:
the sends in flight finish, the rest of its claims go back to the queue.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pickle
import signal
import sys
from collections.abc import Sequence

from sqlalchemy.engine import make_url

from digests.config import Settings
from digests.settling import DeliveryReport

log = logging.getLogger(__name__)

ORPHAN_CHECK_SECONDS = 0.5
# A lane that exits on its own is started again after this, doubling up to RESTART_MAX.
RESTART_FIRST, RESTART_MAX = 1.0, 60.0
# On stop, a lane has this long to finish its sends in flight before it is killed.
STOP_GRACE_SECONDS = 120.0


class LaneFailed(Exception):
    """A lane of `clapper deliver --once` did not finish (its rows stay queued for the next run)."""


def channels_of(settings: Settings) -> tuple[str, ...]:
    return tuple(
        c for c, on in (("telegram", settings.telegram_enabled), ("email", settings.email_enabled)) if on
    )


def splits(settings: Settings) -> bool:
    """Whether a worker runs each channel in a process of its own (DELIVERY_LANE_PROCESSES)."""
    if not settings.delivery_lane_processes or len(channels_of(settings)) < 2:
        return False
    url = make_url(settings.database_url)
    # An in-memory SQLite database is private to its process: the lanes would not see the queue.
    in_memory = url.get_backend_name() == "sqlite" and (
        url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"
    )
    return not in_memory


# ------------------------------------------------------------------------------------ the child


async def _orphan_watch(parent: int, stop: asyncio.Event) -> None:
    while not stop.is_set():
        if os.getppid() != parent:
            log.warning("the worker that started this lane is gone; stopping")
            stop.set()
            return
        try:
            await asyncio.wait_for(stop.wait(), ORPHAN_CHECK_SECONDS)
        except TimeoutError:
            pass


async def _lane(
    settings: Settings, channel: str, worker_id: str, once: bool, limit: int | None, parent: int
) -> DeliveryReport:
    from digests import db
    from digests.deliver import deliver_once_async, run_worker

    engine = db.get_engine(settings.database_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watch = asyncio.create_task(_orphan_watch(parent, stop))
    try:
        if once:
            return await deliver_once_async(
                engine, settings, worker_id=worker_id, limit=limit, channels=(channel,), stop=stop
            )
        return await run_worker(engine, settings, stop=stop, worker_id=worker_id, channels=(channel,))
    finally:
        watch.cancel()
        engine.dispose()


def main() -> None:
    """The child process (`python -m digests.lane_processes`): one channel's worker.

    Its job arrives pickled on stdin from the parent (the settings as the parent resolved them,
    so a child never reads another .env); its counts leave as one JSON line on stdout.
    """
    job = pickle.loads(sys.stdin.buffer.read())
    settings: Settings = job["settings"]
    from digests import logs

    logs.configure(settings)
    report = asyncio.run(
        _lane(settings, job["channel"], job["worker_id"], job["once"], job["limit"], job["parent"])
    )
    sys.stdout.write(json.dumps(report.as_dict()) + "\n")


# ----------------------------------------------------------------------------------- the parent


async def _run_one(proc: asyncio.subprocess.Process, name: str, stop: asyncio.Event) -> bytes:
    """Wait for the lane to end (its stdout); on `stop`, SIGTERM it and give it STOP_GRACE_SECONDS."""
    assert proc.stdout is not None
    output = asyncio.create_task(proc.stdout.read())
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({output, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not output.done():
            proc.terminate()
            try:
                await asyncio.wait_for(asyncio.shield(output), STOP_GRACE_SECONDS)
            except TimeoutError:
                log.error("%s did not stop in %.0f s; killing it", name, STOP_GRACE_SECONDS)
                proc.kill()
        out = await output
        await proc.wait()
        return out
    finally:
        stopping.cancel()


async def run(
    settings: Settings,
    *,
    worker_id: str,
    stop: asyncio.Event,
    once: bool = False,
    limit: int | None = None,
    channels: Sequence[str] | None = None,
) -> DeliveryReport:
    """Start one process per channel and supervise them until `stop` (or, with `once`, until done).

    A long-running lane that exits is started again (with a growing pause) while the others go on;
    with `once` it is not, and LaneFailed is raised once the others have finished.
    """
    total = DeliveryReport()
    failed: list[str] = []

    async def lane(channel: str) -> None:
        pause = RESTART_FIRST
        job = {
            "settings": settings,
            "channel": channel,
            "worker_id": f"{worker_id}/{channel}",
            "once": once,
            "limit": limit,
            "parent": os.getpid(),
        }
        while True:
            # A fresh interpreter, not a fork: the parent holds threads and database connections.
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "digests.lane_processes",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            assert proc.stdin is not None
            # On stdin, not in argv or the environment: the settings hold secrets `ps` would show.
            proc.stdin.write(pickle.dumps(job))
            await proc.stdin.drain()
            proc.stdin.close()
            log.info("%s lane started (pid %s)", channel, proc.pid)
            out = await _run_one(proc, f"{channel} lane", stop)
            lines = out.decode(errors="replace").strip().splitlines()
            if proc.returncode == 0 and lines:
                total.add(DeliveryReport(**json.loads(lines[-1])))
            if proc.returncode == 0:
                return
            if once or stop.is_set():
                if proc.returncode != -signal.SIGTERM:
                    failed.append(f"{channel} (exit code {proc.returncode})")
                return
            log.error(
                "%s lane exited with code %s; starting it again in %.0f s", channel, proc.returncode, pause
            )
            try:
                await asyncio.wait_for(stop.wait(), pause)
                return
            except TimeoutError:
                pause = min(pause * 2, RESTART_MAX)

    await asyncio.gather(*(lane(c) for c in channels or channels_of(settings)))
    if failed:
        raise LaneFailed("delivery lane(s) failed: " + ", ".join(failed) + "; their rows stay queued")
    return total


if __name__ == "__main__":
    main()
