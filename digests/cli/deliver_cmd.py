"""`clapper deliver`: the delivery worker (send queued Telegram messages and emails)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer

from digests import deliver, lane_processes
from digests.cli.common import setup

T = TypeVar("T")


def deliver_command(
    once: bool = typer.Option(False, "--once", help="Send what is due now, then exit."),
    worker_id: str = typer.Option(
        "",
        "--worker-id",
        help="Name of this worker in claims, unique among running workers (default host:pid).",
    ),
) -> None:
    """Send queued messages. On PostgreSQL several workers may run at once; on SQLite run one."""
    settings, engine = setup()
    worker = worker_id or deliver.default_worker_id()
    if lane_processes.splits(settings):
        # Each channel in a process of its own (DELIVERY_LANE_PROCESSES); this one supervises.
        try:
            report = _until_signalled(
                lambda stop: lane_processes.run(settings, worker_id=worker, stop=stop, once=once)
            )
        except lane_processes.LaneFailed as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from None
    elif once:
        report = deliver.deliver_once(engine, settings, worker_id=worker)
    else:
        _until_signalled(lambda stop: deliver.run_worker(engine, settings, stop=stop, worker_id=worker))
        return
    if once:
        typer.echo(" ".join(f"{k}={v}" for k, v in report.as_dict().items()))


def _until_signalled(run: Callable[[asyncio.Event], Awaitable[T]]) -> T:
    """Run `run(stop)`; SIGTERM or SIGINT sets `stop`: no new work, sends in flight finish, the
    rest goes back to the queue."""

    async def main() -> T:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await run(stop)

    return asyncio.run(main())


def register(app: typer.Typer) -> None:
    app.command("deliver")(deliver_command)
