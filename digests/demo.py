"""`clapper demo`: the main job, offline, on embedded defaults (for now: ingest the bundled sample).

Later stages (composing digests) extend `run_demo`; each stage is a small function here.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.engine import Engine
from sqlmodel import select

from digests import ingest
from digests.config import SAMPLE_LISTING, Settings
from digests.db import session_scope
from digests.models import Subscriber, Subscription, utcnow
from digests.sources import ParsedArticle


def articles_table(articles: Iterable[ParsedArticle], *, title: str | None = None) -> Table:
    """A readable table of articles: date, title and summary, sections, countries."""
    table = Table(title=title, show_lines=True, expand=False)
    table.add_column("Date", no_wrap=True)
    table.add_column("Article", ratio=3)
    table.add_column("Sections")
    table.add_column("Countries")
    for a in articles:
        headline = f"[bold]{escape(a.title)}[/bold]"
        if a.kind == "interview":
            headline = f"[italic]Interview[/italic] · {headline}"
        body = f"{headline}\n[dim]{escape(a.summary)}[/dim]" if a.summary else headline
        # Tags come from sources too: Rich markup in them is text ("[/b]" would raise).
        tags = (escape(", ".join(a.sections)), escape(", ".join(a.countries)))
        table.add_row(a.published.isoformat(), body, *tags)
    return table


def ingest_sample(engine: Engine, settings: Settings, *, now: datetime | None = None) -> ingest.SourceResult:
    """Ingest the bundled listing page (idempotent: a second demo finds the same ten, adds none)."""
    return ingest.ingest_file(engine, settings, SAMPLE_LISTING, now=now)


# The demo reader: a chat id no real Telegram user has, and a reserved example address.
DEMO_CHAT_ID = -999_000_001
DEMO_EMAIL = "demo.reader@example.org"
DEMO_FOLLOWS = (("country", "Belgium"),)
# Created "long ago", so their first digest covers the whole bundled sample (from 2017).
DEMO_SINCE = datetime(2000, 1, 1, tzinfo=UTC)


def demo_reader(engine: Engine) -> int:
    """The demo reader (created once, found again on later runs), following Belgium.

    Paused, so a real `clapper run` on the same database never sends to it.
    """
    with session_scope(engine) as session:
        reader = session.exec(select(Subscriber).where(Subscriber.telegram_chat_id == DEMO_CHAT_ID)).first()
        if reader is None:
            reader = Subscriber(
                telegram_chat_id=DEMO_CHAT_ID,
                chat_type="private",
                chat_title="Demo reader",
                email=DEMO_EMAIL,
                email_status="confirmed",
                email_confirmed_at=DEMO_SINCE,
                email_frequency="weekly",
                frequency="daily",
                paused=True,
                created_at=DEMO_SINCE,
            )
            session.add(reader)
            session.flush()
        have = set(
            session.exec(
                select(Subscription.kind, Subscription.value).where(Subscription.subscriber_id == reader.id)
            )
        )
        for kind, value in DEMO_FOLLOWS:
            if (kind, value) not in have:
                session.add(Subscription(subscriber_id=reader.id, kind=kind, value=value))
        return reader.id


def write_demo_digests(
    settings: Settings, engine: Engine, *, out_dir: Path, now: datetime | None = None
) -> list[Path]:
    """Compose the demo reader's Telegram and email digests (nothing queued) into `out_dir`."""
    from digests.preview import preview, write_files

    demo_reader(engine)
    now = now or utcnow()
    _, telegram = preview(engine, settings, now=now, chat_id=DEMO_CHAT_ID)
    _, email = preview(engine, settings, now=now, email=DEMO_EMAIL)
    return write_files(telegram + email, settings, out_dir, stem="demo-digest")


def run_demo(
    settings: Settings,
    engine: Engine,
    *,
    console: Console | None = None,
    now: datetime | None = None,
    out_dir: Path | None = Path("out"),
):
    """Ingest the bundled sample, show it, write a demo reader's digests; returns the ingest result."""
    console = console or Console()
    result = ingest_sample(engine, settings, now=now)
    heading = result.heading or SAMPLE_LISTING.name
    console.print(
        articles_table(
            result.articles, title=f"{heading}: {result.found} articles found in the bundled sample"
        )
    )
    console.print(
        f"Stored in {engine.url.render_as_string()}: {result.new} new, {result.updated} updated, "
        f"{result.unchanged} already known."
    )
    if out_dir is not None:
        paths = write_demo_digests(settings, engine, out_dir=out_dir, now=now)
        console.print(f"\nA demo reader following {', '.join(v for _, v in DEMO_FOLLOWS)} got these digests:")
        for path in paths:
            console.print(f"  {path.resolve()}", highlight=False, soft_wrap=True)
        console.print(
            "Open the .eml file in a mail client; the Telegram .html is the message as the bot sends it."
        )
    return result
