"""The long-running service: bot polling, the scheduler ticker, the delivery worker (and the web app)
in ONE asyncio loop, stopped cleanly by Ctrl-C or SIGTERM.

This is the composition root, so it is the one place in digests/ that imports bot/ (lazily, so
`clapper scheduler` runs without python-telegram-bot handlers loaded).

Stopping: one event tells every part, and each finishes what it has in flight: polling ends and
running handlers complete; the scheduler finishes its current job (one transaction per step, so
nothing is half-written); the worker finishes its in-flight sends and gives claimed, unsent rows
back to the queue (digests.deliver.run_worker); the web server closes its connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

from digests.config import Settings
from digests.scheduler import ServiceScheduler

log = logging.getLogger(__name__)

# Exit status for "cannot run with these settings" (sysexits EX_CONFIG): supervisors stop retrying.
EXIT_CONFIG = 78
# The longest the scheduler thread sleeps between two looks at the clock and the stop event.
TICK_SECONDS = 1.0


@dataclass
class Parts:
    # The bot's application factory (bot.app.build_application), handed in by the CLI: the core
    # never imports bot/ itself. None: no bot.
    bot: Callable[[Settings, Engine], Any] | None = None
    scheduler: bool = True
    worker: bool = True
    web: bool = False
    inbound: bool = False  # the SMTP listener for bounces and mailed unsubscribes (digests.inbound)


def worker_id(prefix: str = "run") -> str:
    return f"{prefix}:{socket.gethostname()}:{os.getpid()}"


async def scheduler_loop(sched: ServiceScheduler, stop: asyncio.Event) -> None:
    """Call schedule's run_pending about once a second; the blocking DB work runs in a thread."""
    while not stop.is_set():
        await asyncio.to_thread(sched.run_pending)
        timeout = min(TICK_SECONDS, max(0.05, sched.idle_seconds()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout)


class ConfigError(Exception):
    """A setting the service cannot run with; reported in one line, exit status 78, no traceback."""


async def _bot(settings: Settings, engine: Engine, stop: asyncio.Event, build: Callable) -> None:
    from telegram.error import InvalidToken

    application = build(settings, engine)
    try:
        await application.initialize()
    except InvalidToken as exc:
        raise ConfigError(
            f"Telegram refused TELEGRAM_BOT_TOKEN ({exc}); copy it again from @BotFather (/token)"
        ) from None
    # Not run_polling(): it owns the loop and the signals; here they are shared with the other parts.
    async with application:
        await application.start()
        await application.updater.start_polling(drop_pending_updates=False)
        log.info("bot polling", extra={"event": "run.bot_started", "username": application.bot.username})
        await stop.wait()
        await application.updater.stop()
        await application.stop()


async def _web(settings: Settings, engine: Engine, stop: asyncio.Event) -> None:
    import uvicorn

    from digests import web

    app = web.create_app(settings, engine)

    class _Server(uvicorn.Server):
        # uvicorn would take over SIGINT/SIGTERM and re-raise them on exit; the runner owns them.
        @contextlib.contextmanager
        def capture_signals(self):
            yield

    server = _Server(web.server_config(app, settings))

    async def serving() -> None:
        try:
            await server.serve()
        except SystemExit:
            # uvicorn exits the process when it cannot bind; here that must only end this part.
            raise RuntimeError(
                f"web server could not listen on {settings.web_host}:{settings.web_port}"
            ) from None

    task = asyncio.create_task(serving())
    stopping = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if task in done:
        task.result()  # it ended before the stop: raise what stopped it
        return
    server.should_exit = True
    await task


async def _inbound(settings: Settings, engine: Engine, stop: asyncio.Event) -> None:
    from digests.inbound import server

    try:
        await server.serve(settings, engine, stop)
    except OSError as exc:
        where = f"{settings.inbound_host}:{settings.inbound_port}"
        raise ConfigError(f"inbound SMTP could not listen on {where} ({exc.strerror})") from None


async def _worker(settings: Settings, engine: Engine, stop: asyncio.Event, wid: str) -> None:
    from digests import lane_processes
    from digests.deliver import run_worker

    if lane_processes.splits(settings):
        # Out of this process too: the bot and the scheduler's composing take CPU here.
        await lane_processes.run(settings, worker_id=wid, stop=stop)
        return
    await run_worker(engine, settings, stop=stop, worker_id=wid)


async def serve(
    settings: Settings,
    engine: Engine,
    parts: Parts,
    *,
    stop: asyncio.Event | None = None,
    scheduler: ServiceScheduler | None = None,
    install_signals: bool = True,
) -> int:
    """Run the chosen parts until `stop` is set (or a signal); 0 on a clean stop, 1 if a part crashed."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    if install_signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, _on_signal, stop, sig)

    wid = worker_id()
    coros: dict[str, Awaitable[None]] = {}
    if parts.bot is not None:
        coros["bot"] = _bot(settings, engine, stop, parts.bot)
    if parts.scheduler:
        coros["scheduler"] = scheduler_loop(scheduler or ServiceScheduler(engine, settings), stop)
    if parts.worker:
        coros["worker"] = _worker(settings, engine, stop, wid)
    if parts.web:
        coros["web"] = _web(settings, engine, stop)
    if parts.inbound:
        coros["inbound"] = _inbound(settings, engine, stop)
    log.info("service starting", extra={"event": "run.start", "parts": sorted(coros), "worker_id": wid})

    tasks = {asyncio.create_task(coro, name=name): name for name, coro in coros.items()}
    stopping = asyncio.create_task(stop.wait())
    rc = 0
    try:
        pending: set[asyncio.Task] = set(tasks) | {stopping}
        while not stop.is_set():
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done - {stopping}:
                if not task.cancelled() and task.exception() is None:
                    log.warning(
                        "%s ended on its own",
                        tasks[task],
                        extra={"event": "run.part_ended", "part": tasks[task]},
                    )
            if any(not t.cancelled() and t.exception() is not None for t in done - {stopping}):
                stop.set()  # one part crashed: stop the others and let the supervisor restart us
    finally:
        stop.set()
        stopping.cancel()
        rc = await _drain(tasks)
        if install_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
    log.info("service stopped", extra={"event": "run.stop", "exit_code": rc})
    return rc


async def _drain(tasks: dict[asyncio.Task, str]) -> int:
    """Wait for every part to finish what is in flight; 1 if any of them crashed."""
    done, pending = await asyncio.wait(tasks, timeout=120) if tasks else (set(), set())
    for task in pending:
        log.error("%s did not stop in time; cancelling", tasks[task], extra={"event": "run.cancel"})
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=10)
    rc = 1 if pending else 0
    for task in done:
        if not task.cancelled() and isinstance(task.exception(), ConfigError):
            rc = max(rc, EXIT_CONFIG)
            log.error("%s", task.exception(), extra={"event": "run.config_error", "part": tasks[task]})
        elif not task.cancelled() and task.exception() is not None:
            rc = max(rc, 1)
            log.error(
                "%s crashed",
                tasks[task],
                exc_info=task.exception(),
                extra={"event": "run.part_crashed", "part": tasks[task]},
            )
    return rc


def _on_signal(stop: asyncio.Event, sig: signal.Signals) -> None:
    if stop.is_set():
        log.warning("already stopping", extra={"event": "run.signal_again", "signal": sig.name})
        return
    log.info("stopping on %s", sig.name, extra={"event": "run.signal", "signal": sig.name})
    stop.set()
