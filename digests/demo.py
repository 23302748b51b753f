"""`clapper demo`: the main job, offline, on embedded defaults (for now: ingest the bundled sample).

Later stages (composing digests) extend `run_demo`; each stage is a small function here.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.engine import Engine

from digests import ingest
from digests.config import SAMPLE_LISTING, Settings
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
        table.add_row(a.published.isoformat(), body, ", ".join(a.sections), ", ".join(a.countries))
    return table


def ingest_sample(engine: Engine, settings: Settings, *, now: datetime | None = None) -> ingest.SourceResult:
    """Ingest the bundled listing page (idempotent: a second demo finds the same ten, adds none)."""
    return ingest.ingest_file(engine, settings, SAMPLE_LISTING, now=now)


def run_demo(
    settings: Settings, engine: Engine, *, console: Console | None = None, now: datetime | None = None
):
    """Ingest the bundled sample and show what was found; returns the ingest result."""
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
    return result
