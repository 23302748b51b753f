"""CSV import and export of email readers (columns: email, countries, sections, frequency, follows).

Each row is all-or-nothing: it is validated first, then written (a chunk of rows at a time, see
digests.bulk_readers), so a row that fails leaves nothing behind and the good rows around it
still go in.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session

from digests import bulk_readers, emails
from digests.config import Settings

COLUMNS = ("email", "countries", "sections", "frequency", "follows")
# Within a cell several names are separated by ";" or "|" (commas work too when the cell is quoted).
_CELL_SPLIT = re.compile(r"[;|,]")
# Followed phrases may hold commas ("Be For Films, Inc."): only ";" and "|" separate them.
_FOLLOWS_SPLIT = re.compile(r"[;|]")
# An export carries the status; such rows are not mailed again by re-importing the file.
_NOT_REIMPORTED = {"unsubscribed", "bounced"}
# OWASP CSV injection: a spreadsheet runs a cell starting with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Python's csv refuses longer cells (csv.field_size_limit() is 128 KiB unless raised).
MAX_CELL_BYTES = 128 * 1024
# What the report shows of a raw cell: control characters (a terminal obeys them) as escapes.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` with control characters and bidi overrides written as \\xNN / \\uNNNN escapes."""

    def escape(match: re.Match) -> str:
        code = ord(match.group())
        return f"\\x{code:02x}" if code < 256 else f"\\u{code:04x}"

    return _CONTROL.sub(escape, text)


def neutralise(cell: str) -> str:
    """A cell a spreadsheet shows as text: formula starts get a leading apostrophe (OWASP)."""
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def _unneutralise(cell: str) -> str:
    # Re-importing an export gives back the address as it was.
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(_FORMULA_START) else cell


@dataclass(frozen=True)
class BadRow:
    line: int
    email: str
    reason: str

    def __post_init__(self) -> None:
        # Reasons quote the input; neither may carry raw control characters to a terminal.
        object.__setattr__(self, "email", printable(self.email))
        object.__setattr__(self, "reason", printable(self.reason))


@dataclass
class ImportReport:
    imported: list[tuple[int, str]] = field(default_factory=list)
    bad: list[BadRow] = field(default_factory=list)
    confirmations_queued: int = 0


@dataclass(frozen=True)
class ParsedRow:
    line: int
    reader: emails.NewReader


class ImportFileError(ValueError):
    """The file as a whole cannot be read (no header, no email column)."""


def _split(cell: str | None) -> list[str]:
    return [part.strip() for part in _CELL_SPLIT.split(cell or "") if part.strip()]


def parse(text: str, *, smtputf8: bool = False) -> tuple[list[ParsedRow], list[BadRow]]:
    """Validate every row without touching the database. Pure."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")), skipinitialspace=True)
    if not reader.fieldnames:
        raise ImportFileError("the file is empty")
    reader.fieldnames = [(name or "").strip().lower() for name in reader.fieldnames]
    if "email" not in reader.fieldnames:
        raise ImportFileError(f"no 'email' column (columns are: {', '.join(COLUMNS)})")
    good: list[ParsedRow] = []
    bad: list[BadRow] = []
    seen: dict[str, int] = {}
    rows = iter(reader)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            break
        except csv.Error as exc:
            # The reader cannot resync after a broken row: report where, keep what came before.
            too_big = "field larger than field limit" in str(exc)
            why = f"a cell is larger than {MAX_CELL_BYTES // 1024} KiB" if too_big else f"not CSV ({exc})"
            # line_num counts the lines read before the broken row, which starts on the next one.
            bad.append(BadRow(reader.line_num + 1, "", f"{why}; the rest of the file was not read"))
            break
        # line_num is where the row ends; quoted cells may hold newlines, blank lines are skipped.
        cells = [v for v in row.values() if isinstance(v, str)] + list(row.get(None) or [])
        line = reader.line_num - sum(cell.count("\n") for cell in cells)
        raw_email = _unneutralise((row.get("email") or "").strip())
        if not any((value or "").strip() for value in row.values() if isinstance(value, str)):
            continue  # blank line
        if None in row:
            bad.append(BadRow(line, raw_email, "more cells than columns (quote cells that hold commas)"))
            continue
        status = (row.get("status") or "").strip().lower()
        if status in _NOT_REIMPORTED:
            bad.append(BadRow(line, raw_email, f"status is {status}: not subscribed again"))
            continue
        if not raw_email:
            bad.append(BadRow(line, raw_email, "no email address"))
            continue
        try:
            parsed = emails.new_reader(
                raw_email,
                _split(row.get("countries")),
                _split(row.get("sections")),
                row.get("frequency") or "",
                [p.strip() for p in _FOLLOWS_SPLIT.split(row.get("follows") or "") if p.strip()],
                smtputf8=smtputf8,
            )
        except emails.EmailError as exc:
            reason = exc.detail or exc.reason
            if exc.reason in ("invalid", "not_ascii"):
                reason = f"invalid address: {reason}"
            bad.append(BadRow(line, raw_email, reason))
            continue
        if parsed.email in seen:
            bad.append(BadRow(line, raw_email, f"same address as line {seen[parsed.email]}"))
            continue
        seen[parsed.email] = line
        good.append(ParsedRow(line, parsed))
    return good, bad


def import_rows(
    session: Session,
    settings: Settings,
    rows: Iterable[ParsedRow],
    *,
    confirmed: bool,
    now: datetime | None = None,
) -> ImportReport:
    report = ImportReport()
    rows = list(rows)
    refusals = bulk_readers.add_readers(
        session, settings, [row.reader for row in rows], confirmed=confirmed, now=now
    )
    for row, refused in zip(rows, refusals, strict=True):
        if refused is not None:
            report.bad.append(BadRow(row.line, row.reader.email, refused.detail or refused.reason))
            continue
        report.imported.append((row.line, row.reader.email))
        if not confirmed:
            report.confirmations_queued += 1
    return report


def import_csv(
    session: Session, settings: Settings, text: str, *, confirmed: bool, now: datetime | None = None
) -> ImportReport:
    """Import the good rows of `text`; the report lists the bad ones with their line and reason."""
    if not confirmed and not settings.public_base_url:
        raise ImportFileError(
            "confirmation links need PUBLIC_BASE_URL (the web app); set it or use --confirmed"
        )
    good, bad = parse(text, smtputf8=settings.smtp_utf8)
    report = import_rows(session, settings, good, confirmed=confirmed, now=now)
    report.bad = sorted(bad + report.bad, key=lambda b: b.line)
    return report


def export_csv(session: Session, *, status: str | None = None) -> str:
    """Every email reader as CSV, in the import format plus a status column."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*COLUMNS, "status"])
    for r in emails.list_readers(session, status=status):
        cells = [r.email, ";".join(r.countries), ";".join(r.sections), r.frequency, ";".join(r.follows),
                 r.status]
        writer.writerow([neutralise(cell) for cell in cells])
    return out.getvalue()
