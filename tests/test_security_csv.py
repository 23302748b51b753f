"""CSV as an attack surface: formula cells in exports (OWASP CSV injection), a cell too large for
the csv module, and control characters echoed to the operator's terminal by the import report."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from digests import emails, importer
from digests.cli import app
from digests.config import get_settings
from digests.db import session_scope

# Addresses email_validator accepts whose first character a spreadsheet reads as a formula
# (payloads in the style of OWASP's CSV Injection page).
FORMULAS = ["=1+1@example.org", "+1+1@example.org", "-2+3@example.org", "=cmd|'/c-calc'!a0@example.org"]


@pytest.fixture
def cli(db_url, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("SECRET_KEY", "csv-test-key-0123456789abcdef-0123456789")
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://news.example.org")
    monkeypatch.chdir(tmp_path)  # no developer .env
    get_settings.cache_clear()
    yield lambda *args: CliRunner().invoke(app, list(args))
    get_settings.cache_clear()


def _add(engine, settings, address: str) -> None:
    with session_scope(engine) as s:
        emails.add_reader(s, settings, emails.new_reader(address, ["Belgium"], [], "daily"), confirmed=True)


def test_export_neutralises_formula_cells_and_reimports_them_unchanged(cli, engine, settings, tmp_path):
    for address in FORMULAS:
        _add(engine, settings, address)
    result = cli("subscribers", "export")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "email,countries,sections,frequency,follows,status"
    assert sorted(lines[1:]) == sorted(
        [
            "'=1+1@example.org,Belgium,,daily,,confirmed",
            "'+1+1@example.org,Belgium,,daily,,confirmed",
            "'-2+3@example.org,Belgium,,daily,,confirmed",
            "'=cmd|'/c-calc'!a0@example.org,Belgium,,daily,,confirmed",
        ]
    )
    for cell in (line.split(",")[0] for line in lines[1:]):
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
    # Round trip: the export, removed and imported again, gives the same addresses back.
    (tmp_path / "export.csv").write_text(result.stdout)
    for address in FORMULAS:
        assert cli("subscribers", "remove", "--", address).exit_code == 0
    again = cli("subscribers", "import", "--confirmed", str(tmp_path / "export.csv"))
    assert again.exit_code == 0, again.output
    with session_scope(engine) as s:
        assert sorted(r.email for r in emails.list_readers(s)) == sorted(FORMULAS)


def test_neutralise_covers_every_owasp_start():
    for start in ("=", "+", "-", "@", "\t", "\r"):
        assert importer.neutralise(start + "x") == "'" + start + "x"
    assert importer.neutralise("ann@example.org") == "ann@example.org"
    assert importer.neutralise("") == ""


def test_a_cell_over_128_kib_is_reported_with_its_line(cli, engine, tmp_path):
    huge = "x" * (128 * 1024 + 1)
    (tmp_path / "big.csv").write_text(
        f"email,countries\nann@example.org,Belgium\nbob@example.org,\"{huge}\"\ncarl@example.org,Belgium\n"
    )
    result = cli("subscribers", "import", "--confirmed", str(tmp_path / "big.csv"))
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert "line 3: (no address): a cell is larger than 128 KiB; the rest of the file was not read" in (
        result.stderr
    )
    assert "Imported 1 reader(s)" in result.stdout
    with session_scope(engine) as s:
        assert [r.email for r in emails.list_readers(s)] == ["ann@example.org"]


def test_control_characters_in_the_report_are_escaped(cli, tmp_path):
    (tmp_path / "evil.csv").write_bytes(
        b"email,countries\n"
        b"\x1b[2J\x1b]0;owned\x07ann@example.org,Belgium\n"
        b"bob@example.org,\"Belgium\x1b[31m\"\n"
        b"\xe2\x80\xaecarl@example.org,Belgium\n"
    )
    result = cli("subscribers", "import", "--confirmed", str(tmp_path / "evil.csv"))
    assert result.exit_code == 2
    assert "\x1b" not in result.output and "\x07" not in result.output and "\u202e" not in result.output
    assert "line 2: \\x1b[2J\\x1b]0;owned\\x07ann@example.org: invalid address" in result.stderr
    assert "line 3: bob@example.org: " in result.stderr and "Belgium\\x1b[31m" in result.stderr
    assert "line 4: \\u202ecarl@example.org" in result.stderr


def test_printable_escapes_controls_and_keeps_text():
    assert importer.printable("Zoë\tand\r\n\x00\x9b") == "Zoë\\x09and\\x0d\\x0a\\x00\\x9b"
