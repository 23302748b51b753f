"""`clapper subscribers add|import|list|remove|export`: email readers without Telegram."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from digests import emails, importer
from digests.cli.common import setup
from digests.db import session_scope

subscribers_app = typer.Typer(help="Email readers (no Telegram needed).", no_args_is_help=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    # Messages quote addresses, files and errors: text, never Rich markup.
    Console(stderr=True).print(f"[red]{escape(message)}[/red]")
    return typer.Exit(code)


@subscribers_app.command("add")
def add(
    email: str = typer.Option(..., "--email", help="The reader's address."),
    country: list[str] = typer.Option([], "--country", help="A country to follow (repeat for more)."),
    section: list[str] = typer.Option([], "--section", help="A section to follow (repeat for more)."),
    frequency: str = typer.Option("weekly", "--frequency", help="instant, daily or weekly."),
    follow: list[str] = typer.Option(
        [], "--follow", help='A name or phrase whose articles come too, e.g. "Lukas Dhont" (repeatable).'
    ),
    confirmed: bool = typer.Option(
        False, "--confirmed", help="The reader already agreed: no confirmation email."
    ),
) -> None:
    """Add one email reader; a confirmation link is emailed unless --confirmed."""
    settings, engine = setup()
    try:
        reader = emails.new_reader(email, country, section, frequency, follow, smtputf8=settings.smtp_utf8)
        with session_scope(engine) as session:
            subscriber = emails.add_reader(session, settings, reader, confirmed=confirmed)
    except emails.EmailError as exc:
        raise _fail(f"Not added: {exc.detail or exc.reason}") from exc
    named = [*reader.countries, *reader.sections, *(f'"{p}"' for p in reader.follows)]
    follows = ", ".join(named) or "everything"
    state = "confirmed" if confirmed else "pending: confirmation email queued"
    typer.echo(f"Added {reader.email} (#{subscriber.id}, {reader.frequency}, follows {follows}; {state}).")


@subscribers_app.command("import")
def import_(
    file: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="CSV: email,countries,sections,frequency,follows"
    ),
    confirmed: bool = typer.Option(
        False, "--confirmed", help="Readers already agreed: no confirmation emails."
    ),
) -> None:
    """Import readers from CSV; good rows go in, bad rows are listed with their line and reason."""
    settings, engine = setup()
    try:
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _fail(f"{file}: not UTF-8 text ({exc.reason})") from exc
    try:
        with session_scope(engine) as session:
            report = importer.import_csv(session, settings, text, confirmed=confirmed)
    except importer.ImportFileError as exc:
        raise _fail(f"{file}: {exc}") from exc
    typer.echo(f"Imported {len(report.imported)} reader(s) from {file}.")
    if report.confirmations_queued:
        typer.echo(f"Confirmation emails queued: {report.confirmations_queued}.")
    if report.bad:
        err = Console(stderr=True)
        err.print(f"[yellow]{len(report.bad)} row(s) not imported:[/yellow]")
        for bad in report.bad:
            # One line per row, never wrapped: operators grep and paste these.
            err.print(f"  line {bad.line}: {bad.email or '(no address)'}: {bad.reason}", markup=False,
                      soft_wrap=True)
        raise typer.Exit(2)


@subscribers_app.command("list")
def list_(
    status: str | None = typer.Option(None, "--status", help="pending, confirmed, unsubscribed or bounced."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """Every email reader with status, frequency and what they follow."""
    _settings, engine = setup(needs_secret=False)
    with session_scope(engine) as session:
        rows = emails.list_readers(session, status=status)
    if as_json:
        for r in rows:
            sys.stdout.write(json.dumps(r.__dict__, ensure_ascii=False) + "\n")
        return
    table = Table(title=f"Email readers ({len(rows)})")
    for col in ("Email", "Status", "Frequency", "Countries", "Sections", "Phrases", "Telegram"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            escape(r.email),
            r.status,
            r.frequency,
            ", ".join(r.countries) or "all",
            ", ".join(r.sections) or "all",
            "; ".join(r.follows),
            "yes" if r.telegram else "",
        )
    Console().print(table)


@subscribers_app.command("remove")
def remove(address: str = typer.Argument(..., help="The address to forget.")) -> None:
    """Forget an address (a Telegram chat that had it keeps its Telegram subscription)."""
    _settings, engine = setup(needs_secret=False)
    try:
        with session_scope(engine) as session:
            found = emails.remove_reader(session, address)
    except emails.EmailError as exc:
        raise _fail(f"{address}: {exc.detail}") from exc
    if not found:
        raise _fail(f"{address} is not a reader.")
    typer.echo(f"Removed {address}.")


@subscribers_app.command("export")
def export(
    out: Path | None = typer.Option(None, "--out", "-o", help="Write here instead of standard output."),
    status: str | None = typer.Option(None, "--status", help="Only readers with this status."),
) -> None:
    """Readers as CSV (the import format plus a status column)."""
    _settings, engine = setup(needs_secret=False)
    with session_scope(engine) as session:
        text = importer.export_csv(session, status=status)
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"Wrote {text.count(chr(10)) - 1} reader(s) to {out}.")


def register(app: typer.Typer) -> None:
    app.add_typer(subscribers_app, name="subscribers")
