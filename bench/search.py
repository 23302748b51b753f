"""Search benchmark: /search over 100,000 stored articles on SQLite (FTS5) and PostgreSQL (GIN).

Baseline measured in the same run: the plain LIKE scan that a database without a full-text index
falls back to. Each query is timed end to end (`digests.search.search`: candidates, the Python
check of the phrase rule, loading the ten newest with their tags); best and median of 7.
SQLite always; PostgreSQL when CLAPPER_TEST_DATABASE_URL or --pg names a server (a scratch
database is created and dropped). Run: .venv/bin/python bench/search.py [--articles N] [--pg URL]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, insert, text  # noqa: E402
from sqlalchemy.engine import Engine, make_url  # noqa: E402

from digests import db, phrases, search  # noqa: E402
from digests.db import session_scope  # noqa: E402
from digests.models import Article, ArticleTag  # noqa: E402

WORDS = (
    "director film shooting wraps feature debut producer co-production festival premiere drama "
    "thriller comedy documentary animated series funding sales agent distributor cast star award "
    "cinema screen market berlinale cannes venice rotterdam locarno san sebastian karlovy vary"
).split()
NAMES = ["José Ortuño", "Lukas Dhont", "Be For Films", "Laura Alvea", "Stijn Coninx", "Claire Burger"]
QUERIES = [
    ("rare name (a few dozen hits)", "jose ortuno"),
    ("company, 3 words", "be for films"),
    ("common word (most articles)", "director"),
    ("common 2-word phrase", "feature debut"),
    ("absent word", "zzyzx"),
]
LIMIT = 10
SEEN = datetime(2026, 12, 1, tzinfo=UTC)
REPEAT = 7


def fill(engine: Engine, n: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    start = date(2026, 12, 1)
    rows, tags = [], []
    for i in range(1, n + 1):
        title = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 11))).capitalize()
        summary = " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 45))).capitalize() + "."
        if rng.random() < 0.0005:
            summary += f" With {rng.choice(NAMES)}."
        rows.append({
            "url": f"https://news.example.org/{i}", "title": title, "summary": summary,
            "published": start - timedelta(days=rng.randint(0, 3650)), "kind": "article",
            "first_seen_at": SEEN, "updated_at": SEEN,
            # Core INSERTs skip the mapper event: fill the indexed column as ingest would.
            "search_text": phrases.search_text(title, summary),
        })
        tags.append({"article_id": i, "kind": "country", "value": rng.choice(("Belgium", "France", "Spain"))})
    with engine.begin() as conn:
        for s in range(0, n, 5000):
            conn.execute(insert(Article.__table__), rows[s : s + 5000])
            conn.execute(insert(ArticleTag.__table__), tags[s : s + 5000])
        if conn.dialect.name == "postgresql":
            conn.execute(text("ANALYZE"))


def timed(engine: Engine, words: str) -> tuple[float, float, int]:
    times, found = [], 0
    for _ in range(REPEAT):
        with session_scope(engine) as session:
            t0 = time.perf_counter()
            found = len(search.search(session, words, limit=LIMIT).articles)
            times.append(time.perf_counter() - t0)
    return min(times) * 1000, statistics.median(times) * 1000, found


def bench(label: str, engine: Engine, n: int, rows: list[tuple]) -> None:
    t0 = time.perf_counter()
    fill(engine, n)
    took = time.perf_counter() - t0
    rows.append((label, f"store {n:,} articles (index kept by the database)", f"{took:.1f} s", ""))
    with session_scope(engine) as session:
        backend = search._backend(session)
    worst = 0.0
    for name, words in QUERIES:
        best, median, found = timed(engine, words)
        with mock.patch.object(search, "_backend", return_value="plain"):
            plain_best, plain_median, plain_found = timed(engine, words)
        assert found == plain_found, (words, found, plain_found)
        worst = max(worst, median)
        rows.append((label, f"{name}: {backend}", f"{best:.1f} / {median:.1f} ms",
                     f"{found} shown; plain scan {plain_median:.0f} ms, ratio {plain_median / median:.0f}×"))
    rows.append((label, "slowest median", f"{worst:.1f} ms", "target < 50 ms"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--articles", type=int, default=100_000)
    ap.add_argument("--pg", default=os.environ.get("CLAPPER_TEST_DATABASE_URL"), help="PostgreSQL server URL")
    args = ap.parse_args()
    rows: list[tuple] = []
    with tempfile.TemporaryDirectory() as tmp:
        engine = db.init(f"sqlite:///{tmp}/bench.db")
        bench("SQLite", engine, args.articles, rows)
        engine.dispose()
    if args.pg:
        name = f"clapper_bench_{uuid.uuid4().hex[:10]}"
        admin = create_engine(args.pg, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            engine = db.init(make_url(args.pg).set(database=name).render_as_string(hide_password=False))
            bench("PostgreSQL", engine, args.articles, rows)
            engine.dispose()
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    else:
        print("PostgreSQL skipped: set CLAPPER_TEST_DATABASE_URL or pass --pg URL", file=sys.stderr)
    table = [("database", "query", "best / median", "note"), *rows]
    widths = [max(len(str(r[i])) for r in table) for i in range(4)]
    for r in table:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
