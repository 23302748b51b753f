"""`clapper ingest`, `clapper sources …`, `clapper articles`, `clapper demo`."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from datetime import date
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from digests import catalog, demo, ingest, phrases, search, store
from digests.cli.common import setup
from digests.db import session_scope
from digests.sources.http import FetchError

sources_app = typer.Typer(help="Listing pages and feeds to ingest.", no_args_is_help=True)


def _console() -> Console:
    return Console()


def _err(message: str) -> None:
    # Messages quote addresses, files and errors: text, never Rich markup.
    Console(stderr=True).print(f"[red]{escape(message)}[/red]")


def _print_json(rows: Iterable[dict[str, object]]) -> None:
    for row in rows:
        sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")


def _result_table(results: list[ingest.SourceResult], *, dry_run: bool) -> Table:
    table = Table(title="Ingest (dry run: nothing stored)" if dry_run else "Ingest")
    for col in ("Source", "Found", "New", "Updated", "Status"):
        table.add_column(col, justify="right" if col in ("Found", "New", "Updated") else "left")
    for r in results:
        if not r.ok:
            status = f"[red]failed: {escape(r.error or '')}[/red]"
        elif r.deferred:
            status = "[yellow]backing off[/yellow]"
        elif r.not_modified:
            status = "not modified"
        else:
            status = f"ok, {r.pages} page{'s' if r.pages != 1 else ''}"
            if r.skipped_records:
                status += f", {r.skipped_records} record(s) skipped"
            if r.merged:
                status += f", {r.merged} repeated record(s) merged"
        table.add_row(escape(r.name), str(r.found), str(r.new), str(r.updated), status)
    return table


def ingest_command(
    source: str | None = typer.Option(None, "--source", "-s", help="Only this configured source."),
    url: str | None = typer.Option(None, "--url", help="A listing page or feed URL (not saved as a source)."),
    file: Path | None = typer.Option(None, "--file", help="A saved listing page (HTML or text) or feed."),
    fmt: str = typer.Option("auto", "--format", help="auto, listing or rss."),
    base_url: str | None = typer.Option(
        None, "--base-url", help="With --file: the URL the file was saved from (resolves relative links)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Fetch and parse, store nothing."),
    as_json: bool = typer.Option(
        False, "--json", help="Print every article found, one JSON object per line (counts go to stderr)."
    ),
) -> None:
    """Fetch sources and store new articles. Exits non-zero only when every source failed."""
    if sum(x is not None for x in (source, url, file)) > 1:
        _err("Give at most one of --source, --url and --file.")
        raise typer.Exit(2)
    if base_url is not None and (file is None or not base_url.lower().startswith(("http://", "https://"))):
        _err("--base-url goes with --file and must be an absolute http(s) URL.")
        raise typer.Exit(2)
    if fmt not in ingest.FORMATS:
        _err(f"Unknown format {fmt!r}: use auto, listing or rss.")
        raise typer.Exit(2)
    settings, engine = setup(needs_secret=False)
    console = _console()

    if file is not None or url is not None:
        try:
            if file is not None:
                result = ingest.ingest_file(
                    engine, settings, file, fmt=fmt, dry_run=dry_run, base_url=base_url
                )
            else:
                result = ingest.ingest_url(engine, settings, url, fmt=fmt, dry_run=dry_run)
        except (OSError, FetchError, ingest.ParseError) as exc:
            _err(f"Ingest failed: {exc}")
            raise typer.Exit(1) from exc
        results = [result]
    else:
        results = _run_sources(engine, settings, source, dry_run=dry_run, quiet=as_json)
        if results is None:
            raise typer.Exit(2)

    if as_json:
        _print_json(a.as_json() for r in results for a in r.articles)
        Console(stderr=True).print(_result_table(results, dry_run=dry_run))
    else:
        if not results:
            console.print("No sources configured. Add one with: clapper sources add NAME URL")
        else:
            console.print(_result_table(results, dry_run=dry_run))
    tried = [r for r in results if not r.deferred]
    if tried and all(not r.ok for r in tried):
        raise typer.Exit(1)


def _run_sources(engine, settings, source: str | None, *, dry_run: bool, quiet: bool):
    with session_scope(engine) as session:
        if source is not None and store.get_source(session, source) is None:
            _err(f"No source named {source!r}; see: clapper sources list")
            return None
        count = 1 if source else len(store.list_sources(session, enabled_only=True))
    names = [source] if source else None
    # A bar only for a person watching a terminal; pipes and --json get clean output.
    if quiet or count < 2 or not sys.stdout.isatty():
        return ingest.run_sources(engine, settings, names=names, dry_run=dry_run).results
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
    ) as progress:
        task = progress.add_task("Ingesting sources", total=count)

        def advance(result: ingest.SourceResult) -> None:
            progress.update(task, advance=1, description=f"Ingesting ({result.name} done)")

        return ingest.run_sources(engine, settings, names=names, dry_run=dry_run, on_result=advance).results


@sources_app.command("list")
def sources_list() -> None:
    """Configured sources and their fetch state."""
    _settings, engine = setup(needs_secret=False)
    with session_scope(engine) as session:
        rows = store.list_sources(session)
    if not rows:
        _console().print("No sources configured. Add one with: clapper sources add NAME URL")
        return
    table = Table(title="Sources")
    for col in ("Name", "Kind", "URL", "Enabled", "Last success", "Errors", "Last error", "Next fetch"):
        table.add_column(col)
    for s in rows:
        table.add_row(
            escape(s.name),
            s.kind,
            escape(s.url),
            "yes" if s.enabled else "no",
            s.last_success_at.strftime("%Y-%m-%d %H:%M") if s.last_success_at else "never",
            str(s.error_count),
            escape(s.last_error or ""),
            s.next_fetch_at.strftime("%Y-%m-%d %H:%M") if s.next_fetch_at else "",
        )
    _console().print(table)


@sources_app.command("add")
def sources_add(
    name: str = typer.Argument(..., help="A short unique name, e.g. cineuropa-production."),
    url: str = typer.Argument(..., help="Listing page or feed URL."),
    kind: str = typer.Option("auto", "--kind", help="auto, listing or rss."),
) -> None:
    """Add a source."""
    if not url.startswith(("http://", "https://")):
        _err("The URL must start with http:// or https://")
        raise typer.Exit(2)
    _settings, engine = setup(needs_secret=False)
    try:
        with session_scope(engine) as session:
            store.add_source(session, name=name, url=url, kind=kind)
    except ValueError as exc:
        _err(str(exc))
        raise typer.Exit(2) from exc
    _console().print(f"Added source {name} ({kind}): {url}", markup=False)


@sources_app.command("remove")
def sources_remove(name: str = typer.Argument(...)) -> None:
    """Remove a source (its articles stay)."""
    _settings, engine = setup(needs_secret=False)
    with session_scope(engine) as session:
        removed = store.remove_source(session, name)
    if not removed:
        _err(f"No source named {name!r}")
        raise typer.Exit(1)
    _console().print(f"Removed source {name}", markup=False)


def articles_command(
    country: list[str] = typer.Option([], "--country", "-c", help="A country (repeatable; any of them)."),
    section: list[str] = typer.Option([], "--section", help="A section (repeatable; any of them)."),
    festival: list[str] = typer.Option(
        [], "--festival", help="A festival, award or market, every edition (repeatable; any of them)."
    ),
    since: str | None = typer.Option(None, "--since", help="Published on or after YYYY-MM-DD."),
    limit: int = typer.Option(50, "--limit", help="At most this many, newest first."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
    match: str | None = typer.Option(
        None, "--match", help="Words together, in order, in the title or summary (as /search and follows)."
    ),
) -> None:
    """Stored articles, newest first; countries and sections combine like subscriptions."""
    countries = []
    for c in country:
        value = catalog.lookup_country(c)
        if value is None:
            hints = [t.value for t in catalog.suggest(c) if t.kind == catalog.COUNTRY]
            _err(f"Unknown country {c!r}." + (f" Did you mean: {', '.join(hints)}?" if hints else ""))
            raise typer.Exit(2)
        countries.append(value)
    sections = [catalog.canonical_section(s) for s in section]
    festivals = []
    for f in festival:
        value = catalog.lookup_festival(f)
        if value is None:
            hints = [t.value for t in catalog.suggest(f) if t.kind == catalog.FESTIVAL]
            _err(f"Unknown festival {f!r}." + (f" Did you mean: {', '.join(hints)}?" if hints else ""))
            raise typer.Exit(2)
        festivals.append(value)
    since_date = None
    if since:
        try:
            since_date = date.fromisoformat(since)
        except ValueError as exc:
            _err(f"--since wants a date like 2024-09-30, not {since!r}")
            raise typer.Exit(2) from exc
    _settings, engine = setup(needs_secret=False)
    if match is not None and not phrases.words(match):
        _err(f"--match wants letters or digits, not {match!r}")
        raise typer.Exit(2)
    with session_scope(engine) as session:
        if match is not None:
            # Newest first by the phrase rule; countries, sections and festivals then narrow it.
            wide = limit if not (countries or sections or festivals) else 10**9
            found = search.search(session, match, since=since_date, limit=wide).articles
            rows = [
                a
                for a in found
                if _narrowed(a, countries, sections)
                and (not festivals or any(catalog.split_edition(f)[0] in festivals for f in a.festivals))
            ][:limit]
        else:
            rows = store.articles(
                session,
                countries=countries,
                sections=sections,
                festivals=festivals,
                since=since_date,
                limit=limit,
            )
    if as_json:
        _print_json(a.as_json() for a in rows)
        return
    if not rows:
        _console().print("No articles match.")
        return
    _console().print(demo.articles_table(rows, title=f"{len(rows)} article(s)"))


def _narrowed(article: store.ArticleView, countries: list[str], sections: list[str]) -> bool:
    return (not countries or bool(set(countries) & set(article.countries))) and (
        not sections or bool(set(sections) & set(article.sections)))


def demo_command() -> None:
    """Offline demo on embedded defaults: ingest the bundled sample page and show what it holds."""
    settings, engine = setup()
    demo.run_demo(settings, engine, console=_console())


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest_command)
    app.command("articles")(articles_command)
    app.command("demo")(demo_command)
    app.add_typer(sources_app, name="sources")
