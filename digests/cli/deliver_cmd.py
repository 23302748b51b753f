"""`clapper deliver`: the delivery worker (send queued Telegram messages and emails)."""

from __future__ import annotations

import asyncio
import signal

import typer

from digests import deliver, lane_processes
from digests.cli.common import setup
from digests.settling import DeliveryReport


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
        _run_lanes(settings, worker, once=once)
        return
    if once:
        report = deliver.deliver_once(engine, settings, worker_id=worker)
        typer.echo(" ".join(f"{k}={v}" for k, v in report.as_dict().items()))
        return

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            # Stop taking new work; sends in flight finish, the rest goes back to the queue.
            loop.add_signal_handler(sig, stop.set)
        await deliver.run_worker(engine, settings, stop=stop, worker_id=worker)

    asyncio.run(main())


def _run_lanes(settings, worker: str, *, once: bool) -> None:
    """Each channel in a process of its own (DELIVERY_LANE_PROCESSES); this one supervises."""

    async def main() -> DeliveryReport:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await lane_processes.run(settings, worker_id=worker, stop=stop, once=once)

    try:
        report = asyncio.run(main())
    except lane_processes.LaneFailed as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    if once:
        typer.echo(" ".join(f"{k}={v}" for k, v in report.as_dict().items()))


def register(app: typer.Typer) -> None:
    app.command("deliver")(deliver_command)
