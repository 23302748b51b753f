"""CSV import: good rows in, bad rows reported with line and reason, no half-imported row."""

from __future__ import annotations

import csv
import io

import pytest
from sqlmodel import select

from digests import importer
from digests.db import session_scope
from digests.models import Outbox, Subscriber, Subscription

CSV = """email,countries,sections,frequency
ann@example.org,Belgium;France,Production,weekly
not-an-address,Belgium,,weekly
bob@example.org,"Czechia, Germany",,daily

carl@example.org,Belgum,,weekly
dora@example.org,,Funding|Festivals,hourly
ANN@example.org,Spain,,weekly
eve@example.org,,,
"""


def test_parse_reports_each_bad_row_with_its_line():
    good, bad = importer.parse(CSV)
    assert [(r.line, r.reader.email) for r in good] == [
        (2, "ann@example.org"),
        (4, "bob@example.org"),
        (9, "eve@example.org"),
    ]
    assert good[1].reader.countries == ("Czech Republic", "Germany")
    assert good[2].reader.frequency == "weekly"
    reasons = {b.line: b.reason for b in bad}
    assert set(reasons) == {3, 6, 7, 8}
    assert reasons[3].startswith("invalid address")
    assert "Belgum" in reasons[6] and "Belgium" in reasons[6]
    assert "frequency" in reasons[7]
    assert reasons[8] == "same address as line 2"


def test_import_is_row_by_row_and_never_half_done(engine, settings):
    with session_scope(engine) as s:
        # Already known before the import: that row must fail whole, the others go in.
        s.add(Subscriber(email="bob@example.org", email_status="unsubscribed"))
    with session_scope(engine) as s:
        report = importer.import_csv(s, settings, CSV, confirmed=True)
    assert [e for _, e in report.imported] == ["ann@example.org", "eve@example.org"]
    assert [b.line for b in report.bad] == [3, 4, 6, 7, 8]
    assert "already known (unsubscribed)" in next(b.reason for b in report.bad if b.line == 4)
    with session_scope(engine) as s:
        bob = s.exec(select(Subscriber).where(Subscriber.email == "bob@example.org")).one()
        assert bob.email_status == "unsubscribed"
        assert s.exec(select(Subscription).where(Subscription.subscriber_id == bob.id)).all() == []
        ann = s.exec(select(Subscriber).where(Subscriber.email == "ann@example.org")).one()
        assert ann.email_status == "confirmed"
        terms = s.exec(select(Subscription.value).where(Subscription.subscriber_id == ann.id)).all()
        assert sorted(terms) == ["Belgium", "France", "Production"]
        assert s.exec(select(Outbox)).all() == []  # --confirmed: no confirmation mail


def test_import_unconfirmed_queues_one_confirmation_per_row(engine, settings):
    web = settings.model_copy(update={"public_base_url": "https://news.example.org"})
    with pytest.raises(importer.ImportFileError):
        with session_scope(engine) as s:
            importer.import_csv(s, settings, CSV, confirmed=False)
    with session_scope(engine) as s:
        report = importer.import_csv(s, web, CSV, confirmed=False)
    assert report.confirmations_queued == 3
    with session_scope(engine) as s:
        rows = s.exec(select(Outbox).order_by(Outbox.recipient)).all()
        assert [r.recipient for r in rows] == ["ann@example.org", "bob@example.org", "eve@example.org"]
        assert all("/confirm?token=" in r.body_text for r in rows)
        assert {s_.email_status for s_ in s.exec(select(Subscriber)).all()} == {"pending"}


def test_export_round_trips_and_skips_unsubscribed_on_reimport(engine, settings):
    with session_scope(engine) as s:
        importer.import_csv(s, settings, CSV, confirmed=True)
        s.add(Subscriber(email="gone@example.org", email_status="unsubscribed"))
    with session_scope(engine) as s:
        text = importer.export_csv(s)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["email"] for r in rows] == [
        "ann@example.org",
        "bob@example.org",
        "eve@example.org",
        "gone@example.org",
    ]
    assert rows[1]["countries"] == "Czech Republic;Germany" and rows[1]["frequency"] == "daily"
    good, bad = importer.parse(text)
    assert len(good) == 3
    assert [b.reason for b in bad] == ["status is unsubscribed: not subscribed again"]


def test_a_file_without_an_email_column_is_refused():
    with pytest.raises(importer.ImportFileError):
        importer.parse("address,countries\nx@example.org,Belgium\n")
    with pytest.raises(importer.ImportFileError):
        importer.parse("")


@pytest.fixture
def cli(db_url, monkeypatch, tmp_path):
    """Run `clapper …` in-process against the test database."""
    from typer.testing import CliRunner

    from digests.cli import app
    from digests.config import get_settings

    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("SECRET_KEY", "cli-test-key-0123456789abcdef-0123456789")
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://news.example.org")
    monkeypatch.chdir(tmp_path)  # no developer .env
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args, **kw: runner.invoke(app, list(args), catch_exceptions=False, **kw)
    get_settings.cache_clear()


def test_cli_add_import_list_export_remove(cli, engine, tmp_path):
    r = cli(
        "subscribers",
        "add",
        "--email",
        "Ann@Example.org",
        "--country",
        "belgium",
        "--section",
        "production",
        "--frequency",
        "daily",
        "--confirmed",
    )
    assert r.exit_code == 0 and "Added ann@example.org" in r.output
    r = cli("subscribers", "add", "--email", "x@example.org", "--country", "Belgum")
    assert r.exit_code == 1 and "did you mean Belgium" in r.output
    (tmp_path / "people.csv").write_text(CSV)
    r = cli("subscribers", "import", str(tmp_path / "people.csv"))
    assert r.exit_code == 2  # some rows were bad
    assert "Imported 2 reader(s)" in r.output and "Confirmation emails queued: 2" in r.output
    assert "line 3: not-an-address: invalid address" in r.output
    assert "line 8: ANN@example.org: same address as line 2" in r.output
    assert "line 2: ann@example.org: ann@example.org is already known (confirmed)" in r.output
    r = cli("subscribers", "export")
    assert r.exit_code == 0
    assert r.stdout.splitlines()[1] == "ann@example.org,Belgium,Production,daily,,confirmed"
    r = cli("subscribers", "list", "--json")
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 3
    r = cli("subscribers", "remove", "bob@example.org")
    assert r.exit_code == 0
    r = cli("subscribers", "remove", "bob@example.org")
    assert r.exit_code == 1
    with session_scope(engine) as s:
        assert sorted(x.email for x in s.exec(select(Subscriber))) == ["ann@example.org", "eve@example.org"]
