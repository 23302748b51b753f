"""Soak test (not in CI): `clapper run` with many subscribers against the fake Bot API.

    .venv/bin/python bench/soak.py                 # 10,000 subscribers, 10 minutes
    .venv/bin/python bench/soak.py --minutes 3     # shorter
    .venv/bin/python bench/soak.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test

Every minute a new listing page (new articles) appears on a local site and the fake Bot API is told
to answer some sends with 429 (retry_after) and 500/502. Most readers get a daily digest whose
local delivery time falls inside the run (spread over its minutes, across timezones); a share are
instant readers, who get one message per ingest run. After the run the queue is drained, the
process gets SIGTERM, and the bench prints: messages sent, lost (must be 0), duplicated, peak
memory (RSS) and CPU of the `clapper` process.

Lost = an outbox row the database calls sent that the fake API never accepted, a row given up
(dead), or a row still unsent after the drain; plus, for instant readers, an article they follow
that never reached them. Duplicated = the same message accepted twice for one chat.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, func, insert, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlmodel import select  # noqa: E402

from digests import db  # noqa: E402
from digests.db import session_scope  # noqa: E402
from digests.models import Article, Outbox, Source, Subscriber, Subscription  # noqa: E402
from tests.fakes.botapi import FakeBotAPI  # noqa: E402
from tests.fakes.listing_site import ListingSite  # noqa: E402

ZONES = ["UTC", "Europe/Brussels", "America/New_York", "Asia/Tokyo", "Australia/Sydney", "Pacific/Chatham"]
CHAT_BASE = 700_000_000
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# ----------------------------------------------------------------------------- database


def fresh_database(url: str | None, workdir: Path) -> tuple[str, callable]:
    if not url:
        path = workdir / "soak.db"
        return f"sqlite:///{path}", lambda: None
    name = f"clapper_soak_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        db.get_engine.cache_clear()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return make_url(url).set(database=name).render_as_string(hide_password=False), drop


def seed(engine, *, subscribers: int, instant_share: float, minutes: int, start: datetime) -> set[int]:
    """Readers spread over zones; daily slots spread over the run's minutes. Returns instant chat ids."""
    rnd = random.Random(42)
    instant: set[int] = set()
    readers, follows = [], []
    for i in range(subscribers):
        chat = CHAT_BASE + i
        zone = ZONES[i % len(ZONES)]
        if rnd.random() < instant_share:
            frequency = "instant"
            instant.add(chat)
            slot = start
        else:
            frequency = "daily"
            slot = start + timedelta(minutes=1 + (i % max(1, minutes)), seconds=30)
        local = slot.astimezone(ZoneInfo(zone))
        readers.append(
            dict(
                id=i + 1,
                telegram_chat_id=chat,
                chat_type="private",
                frequency=frequency,
                timezone=zone,
                delivery_time=f"{local:%H:%M}",
                weekly_day=0,
                paused=False,
                send_empty=False,
                email_status="none",
                email_frequency="weekly",
                email_code_attempts=0,
                created_at=start,
            )
        )
        # Most follow Belgium; some France (articles are Belgian, some co-produced with France).
        roll = rnd.random()
        if roll < 0.7:
            follows.append(dict(subscriber_id=i + 1, kind="country", value="Belgium", created_at=start))
        elif roll < 0.9:
            follows.append(dict(subscriber_id=i + 1, kind="country", value="France", created_at=start))
        else:
            follows.append(dict(subscriber_id=i + 1, kind="country", value="Belgium", created_at=start))
            follows.append(dict(subscriber_id=i + 1, kind="section", value="Production", created_at=start))
    with engine.begin() as conn:
        for chunk in range(0, len(readers), 2000):
            conn.execute(insert(Subscriber), readers[chunk : chunk + 2000])
        for chunk in range(0, len(follows), 2000):
            conn.execute(insert(Subscription), follows[chunk : chunk + 2000])
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT setval('subscriber_id_seq', (SELECT max(id) FROM subscriber))"))
    return instant


# ----------------------------------------------------------------------------- process metrics


class Monitor(threading.Thread):
    """Samples the process's RSS once a second (peak kept) and reads its CPU time from /proc."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_rss = 0
        self.cpu_seconds = 0.0
        self.done = threading.Event()

    def sample(self) -> None:
        try:
            with open(f"/proc/{self.pid}/statm") as f:
                self.peak_rss = max(self.peak_rss, int(f.read().split()[1]) * PAGE)
            with open(f"/proc/{self.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
                self.cpu_seconds = (int(fields[11]) + int(fields[12])) / CLK_TCK
        except (FileNotFoundError, ProcessLookupError, IndexError):
            pass

    def run(self) -> None:
        while not self.done.wait(1.0):
            self.sample()


# ----------------------------------------------------------------------------- the run


def queue_left(engine) -> int:
    with session_scope(engine) as s:
        return s.exec(
            select(func.count()).select_from(Outbox).where(Outbox.state.in_(("queued", "sending")))
        ).one()


def articles_stored(engine) -> int:
    with session_scope(engine) as s:
        return s.exec(select(func.count()).select_from(Article)).one()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--instant-share", type=float, default=0.03)
    parser.add_argument("--articles-per-minute", type=int, default=3)
    parser.add_argument("--drain-minutes", type=float, default=15, help="give up waiting for the queue after")
    parser.add_argument("--database-url", default="", help="PostgreSQL admin URL; default: a SQLite file")
    parser.add_argument("--command", default="run", choices=["run", "scheduler"])
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="clapper-soak-"))
    url, drop = fresh_database(args.database_url, workdir)
    db.upgrade(url)
    engine = db.get_engine(url)
    minutes = max(1, int(args.minutes))
    start = datetime.now(UTC)
    instant = seed(
        engine, subscribers=args.subscribers, instant_share=args.instant_share, minutes=minutes, start=start
    )
    print(
        f"soak: {args.subscribers} subscribers ({len(instant)} instant), {args.minutes} min, "
        f"database {engine.dialect.name}, workdir {workdir}",
        flush=True,
    )

    with FakeBotAPI.in_thread() as api, ListingSite.in_thread() as site:
        titles_by_minute: list[list[tuple[str, str]]] = []

        def new_page(minute: int) -> None:
            page = []
            for n in range(args.articles_per_minute):
                countries = "France/Belgium" if n % 3 == 0 else "Belgium"
                title = f"Soak minute {minute} shoot {n} begins"
                site.add(title, countries=countries, summary=f"Article {minute}.{n} of the soak run.")
                page.append((title, countries))
            titles_by_minute.append(page)

        new_page(0)
        with session_scope(engine) as s:
            s.add(Source(name="soak-belgium", url=site.url, kind="listing", created_at=start))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "SMTP_", "DATABASE_"))}
        env.update(
            DATABASE_URL=url,
            TELEGRAM_BOT_TOKEN=api.token,
            TELEGRAM_API_BASE_URL=api.base_url,
            TELEGRAM_API_FILE_URL=api.base_file_url,
            INGEST_EVERY_MINUTES="1",
            LISTING_MAX_PAGES="1",
            HTTP_RETRIES="0",
            LOG_JSON="true",
            LOG_LEVEL="WARNING",
            SECRET_KEY="soak-secret-key-0123456789abcdef-0123456789",
            PUBLIC_BASE_URL="",
            PYTHONPATH=str(ROOT),
        )
        log_path = workdir / "clapper.log"
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-c", "from digests.cli import main; main()", args.command],
            cwd=workdir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log_path.open("w"),
        )
        monitor = Monitor(proc.pid)
        monitor.start()
        faults = Counter()
        try:
            minute = 0
            while time.monotonic() - t0 < args.minutes * 60:
                time.sleep(1)
                if proc.poll() is not None:
                    raise SystemExit(f"clapper exited early ({proc.returncode}); see {log_path}")
                if time.monotonic() - t0 >= (minute + 1) * 60:
                    minute += 1
                    new_page(minute)
                    api.inject_errors("429", count=5, retry_after=1)
                    api.inject_errors("500", count=3)
                    api.inject_errors("502", count=2)
                    faults.update({"429": 5, "500": 3, "502": 2})
                    print(
                        f"  minute {minute}: sent {len(api.sent)}, queued {queue_left(engine)}, "
                        f"rss {monitor.peak_rss / 2**20:.0f} MiB",
                        flush=True,
                    )
            # Drain: everything published is stored and every due digest has left the queue.
            # The last daily slot is start + minutes + 30 s; the minute job queues it within 60 s.
            total_articles = sum(len(p) for p in titles_by_minute)
            last_queued = start + timedelta(minutes=minutes, seconds=30 + 65)
            drain_until = time.monotonic() + args.drain_minutes * 60
            while time.monotonic() < drain_until:
                time.sleep(2)
                if datetime.now(UTC) < last_queued:
                    continue
                if articles_stored(engine) >= total_articles and queue_left(engine) == 0:
                    time.sleep(3)  # one more queue pass for the last instant batch
                    if queue_left(engine) == 0:
                        break
            wall = time.monotonic() - t0
            monitor.sample()
            cpu = monitor.cpu_seconds
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(120)
        finally:
            monitor.done.set()
            if proc.poll() is None:
                proc.kill()

        # ------------------------------------------------------------------ the figures
        with session_scope(engine) as s:
            rows = s.exec(select(Outbox).where(Outbox.channel == "telegram")).all()
        accepted = Counter((m.chat_id, m.text) for m in api.sent if m.chat_id >= CHAT_BASE)
        by_state = Counter(r.state for r in rows)
        lost_rows = [r for r in rows if r.state == "sent" and (int(r.recipient), r.body) not in accepted]
        unsent = [r for r in rows if r.state in ("queued", "sending", "failed", "dead")]
        duplicated = sum(n - 1 for n in accepted.values() if n > 1)
        # Instant readers: every article they follow, published after they joined, reached them once.
        texts_by_chat: dict[int, list[str]] = {}
        for m in api.sent:
            texts_by_chat.setdefault(m.chat_id, []).append(m.text)
        with session_scope(engine) as s:
            follows = s.exec(
                select(Subscriber.telegram_chat_id, Subscription.kind, Subscription.value)
                .join(Subscription, Subscription.subscriber_id == Subscriber.id)
                .where(Subscriber.frequency == "instant")
            ).all()
        wanted: dict[int, set[str]] = {}
        for chat, _kind, value in follows:
            wanted.setdefault(chat, set()).add(value)
        missing_articles = doubled_articles = 0
        all_titles = [t for page in titles_by_minute for t in page]
        for chat, values in wanted.items():
            body = "\n".join(texts_by_chat.get(chat, []))
            for title, countries in all_titles:
                follows_it = bool(values & set(countries.split("/"))) or "Production" in values
                if not follows_it:
                    continue
                seen = body.count(title)
                missing_articles += seen == 0
                doubled_articles += seen > 1
        print()
        print(
            f"clapper {args.command}: {args.subscribers} subscribers, "
            f"{wall / 60:.1f} min wall, exit code {rc}"
        )
        print(f"  faults injected        {dict(faults)} (429 retry_after=1 s, 5xx)")
        answered = Counter(str(r["status"]) for r in api.rejected)
        print(f"  errors answered        {dict(answered)} (injected + the fake's own flood control)")
        print(f"  outbox rows            {dict(by_state)}")
        print(f"  messages sent          {len(api.sent)} accepted by the fake API ({len(rows)} outbox rows)")
        print(
            f"  lost                   {len(lost_rows) + len(unsent) + missing_articles}"
            f"  (sent-but-not-received {len(lost_rows)}, unsent/dead {len(unsent)},"
            f" instant articles missing {missing_articles})"
        )
        print(f"  duplicated             {duplicated}  (instant articles received twice: {doubled_articles})")
        print(
            f"  send rate              {len(api.sent) / wall:.1f} msg/s average, max {api.max_rate()} in 1 s"
        )
        print(f"  peak RSS               {monitor.peak_rss / 2**20:.1f} MiB")
        print(f"  CPU                    {cpu:.1f} s = {100 * cpu / wall:.0f}% of one core over the run")
        ok = rc == 0 and not lost_rows and not unsent and not missing_articles and not duplicated
    engine.dispose()
    drop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
