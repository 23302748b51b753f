"""`clapper status`: what it reports and when it calls the service stuck."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import timedelta

from digests import status
from digests.db import session_scope
from digests.models import Outbox, Source, utcnow

CLAPPER = [sys.executable, "-c", "from digests.cli import main; main()"]


def _row(**kw) -> Outbox:
    base = dict(channel="telegram", digest_key=f"k{kw.get('recipient', '1')}", recipient="1", body="x")
    return Outbox(**(base | kw))


def test_empty_database_is_healthy(engine, settings):
    result = status.collect(engine, settings)
    assert result.healthy and result.problems == []
    assert result.queue["queued"] == 0 and result.sent_24h == {}
    assert json.loads(json.dumps(result.to_dict()))["healthy"] is True


def test_old_ready_message_is_a_problem_but_a_backed_off_one_is_not(engine, settings):
    now = utcnow()
    with session_scope(engine) as s:
        s.add(
            _row(recipient="1", created_at=now - timedelta(hours=2), next_attempt_at=now + timedelta(hours=1))
        )
    result = status.collect(engine, settings, now=now)
    assert result.healthy, result.problems  # waiting for its retry time is normal
    assert result.oldest_queued_at == now - timedelta(hours=2)

    with session_scope(engine) as s:
        s.add(
            _row(
                recipient="2",
                created_at=now - timedelta(hours=1),
                next_attempt_at=now - timedelta(minutes=45),
            )
        )
    result = status.collect(engine, settings, now=now)
    assert not result.healthy
    assert "waited 45 min" in result.problems[0]
    assert result.oldest_ready_age == timedelta(minutes=45)
    assert status.collect(engine, settings, now=now, max_queue_age=timedelta(hours=1)).healthy


def test_deliveries_in_the_last_day_by_channel(engine, settings):
    now = utcnow()
    with session_scope(engine) as s:
        s.add(_row(recipient="1", state="sent", sent_at=now - timedelta(hours=1)))
        s.add(_row(recipient="2", state="sent", sent_at=now - timedelta(hours=23)))
        s.add(_row(recipient="3", state="sent", sent_at=now - timedelta(hours=25)))
        s.add(_row(recipient="a@x.test", channel="email", state="sent", sent_at=now - timedelta(minutes=5)))
        s.add(_row(recipient="4", state="dead", next_attempt_at=now - timedelta(hours=2)))
    result = status.collect(engine, settings, now=now)
    assert result.sent_24h == {"telegram": 2, "email": 1}
    assert result.dead_24h == 1
    assert result.queue["sent"] == 4 and result.queue["dead"] == 1
    assert result.healthy


def test_ingest_that_stopped_succeeding_is_a_problem(engine, settings):
    settings = settings.model_copy(update={"ingest_every_minutes": 30, "status_max_ingest_intervals": 3})
    now = utcnow()
    with session_scope(engine) as s:
        s.add(
            Source(
                name="cineuropa",
                url="http://x.test/",
                created_at=now - timedelta(days=3),
                last_success_at=now - timedelta(minutes=80),
                last_fetched_at=now - timedelta(minutes=10),
                error_count=2,
                last_error="HTTP 503",
            )
        )
    assert status.collect(engine, settings, now=now).healthy  # 80 min < 3 × 30 min
    result = status.collect(engine, settings, now=now + timedelta(minutes=20))
    assert not result.healthy and "no successful ingest for 100 min" in result.problems[0]
    assert result.sources[0].error_count == 2 and result.sources[0].last_error == "HTTP 503"


def test_a_new_source_gets_time_for_its_first_ingest(engine, settings):
    now = utcnow()
    with session_scope(engine) as s:
        s.add(Source(name="new", url="http://x.test/", created_at=now - timedelta(minutes=5)))
    assert status.collect(engine, settings, now=now).healthy
    result = status.collect(engine, settings, now=now + timedelta(hours=3))
    assert not result.healthy and "no source ingested yet" in result.problems[0]


def test_cli_exits_non_zero_with_json_when_stuck(engine, settings, tmp_path):
    now = utcnow()
    with session_scope(engine) as s:
        s.add(_row(recipient="9", next_attempt_at=now - timedelta(hours=5)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "SMTP_"))}
    env |= {"DATABASE_URL": settings.database_url, "LOG_LEVEL": "WARNING"}
    proc = subprocess.run(
        [*CLAPPER, "status", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    assert data["healthy"] is False and data["queue"]["queued"] == 1
    assert data["oldest_ready_age_seconds"] >= 5 * 3600

    proc = subprocess.run(
        [*CLAPPER, "status", "--max-queue-age", "600"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert ": OK" in proc.stdout and "queued 1" in proc.stdout


def test_cli_reports_an_unmigrated_database_without_migrating_it(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "SMTP_"))}
    env |= {"DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}", "LOG_LEVEL": "WARNING"}
    proc = subprocess.run(
        [*CLAPPER, "status", "--json"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1, proc.stderr
    assert "schema is not up to date" in json.loads(proc.stdout)["problems"][0]
    with sqlite3.connect(tmp_path / "empty.db") as conn:  # a health check never writes
        assert conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall() == []
