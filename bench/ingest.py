"""Ingest benchmark: parse and parse+store rates for a 2,000-record listing and a 2,000-item feed.

Baselines measured in the same run:
- parse+store against parse only (what the store costs),
- the batched store (one transaction per page) against a naive one-commit-per-record store,
- the feed path against the one before issue 11 (`bench/baseline_rss.py`: feedparser and
  BeautifulSoup for everything; `bench/baseline_store.py`: an ORM object per new article), parse
  alone and parse+store.

SQLite always; PostgreSQL when CLAPPER_TEST_DATABASE_URL or --pg names a server (a scratch
database is created and dropped). Run: .venv/bin/python bench/ingest.py [--records N] [--pg URL]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from html import escape
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import baseline_rss  # noqa: E402  (bench/, beside this file)
import baseline_store  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import Engine, make_url  # noqa: E402
from sqlmodel import Session  # noqa: E402

from digests import db, ingest, store  # noqa: E402
from digests.sources import ParsedArticle, listing, rss  # noqa: E402

COUNTRIES = (
    "France Belgium Germany Italy Spain Netherlands Poland Czechia UK Denmark Sweden Norway Austria".split()
)
SECTIONS = ["Production", "Funding", "Distribution", "Festivals", "Industry", "Box Office", "Markets"]
WORDS = (
    "director film shooting wraps feature debut producer co-production festival premiere drama thriller "
    "comedy documentary animated series funding sales agent distributor cast star award"
).split()
NOW = datetime(2025, 3, 15, 8, 0, tzinfo=UTC)


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize()


def make_listing(n: int, seed: int = 1) -> str:
    """A Cineuropa-style text listing: duplicated titles, interviews, year-less dates, junk lines."""
    rng = random.Random(seed)
    out = [
        "email print share on Facebook share on Twitter share on LinkedIn share on reddit pin on Pinterest",
        "",
        "Production / Europe",
        "",
        f"{n} articles available in total starting from 01/01/2010. Last article published on 15/03/2025.",
        "",
    ]
    day = date(2025, 3, 15)
    for i in range(n):
        if i % 7 == 0:
            day -= timedelta(days=1)
        title = f"{_sentence(rng, 6)} #{i}"
        stamp = f"{day:%d/%m}" if day.year == 2025 else f"{day:%d/%m/%Y}"
        countries = "/".join(rng.sample(COUNTRIES, rng.randint(1, 3)))
        sections = " | ".join(rng.sample(SECTIONS, rng.randint(1, 2)))
        if i % 25 == 0:
            out += [f"Name {i} • Director of {title}", "", f"Name {i} • Director of {title}", ""]
            out += [f"Interview: Name {i} • Director of…", "", f"“{_sentence(rng, 12)}”", ""]
            out += [f"{stamp} | Interviews | {countries}", ""]
        else:
            out += [
                title,
                "",
                title,
                "",
                _sentence(rng, 25) + "  ",
                "",
                f"{stamp} | {sections} | {countries}",
                "",
            ]
    out.append("Privacy Policy")
    return "\n".join(out)


def make_listing_html(n: int, seed: int = 3) -> str:
    """The same kind of page as HTML: article cards with links, a pagination link."""
    rng = random.Random(seed)
    cards = []
    for i in range(n):
        title = escape(f"{_sentence(rng, 6)} #{i}")
        cards.append(
            f'<div class="news-item"><a class="thumb" href="/en/newsdetail/{i}/">'
            f'<img src="/m/{i}.jpg" alt=""></a>'
            f'<h2 class="title"><a href="/en/newsdetail/{i}/?utm_source=list">{title}</a></h2>'
            f'<p class="summary">{escape(_sentence(rng, 25))}</p><div class="meta"><span class="date">'
            f"{10 + i % 18:02d}/02/2025</span> | <a href='/en/production/'>Production</a> | "
            f"<span>{'/'.join(rng.sample(COUNTRIES, 2))}</span></div></div>"
        )
    return (
        "<!DOCTYPE html><html><head><title>Production</title></head><body><header><nav><a href='/'>Home</a>"
        f"</nav></header><main><h1>Production / Europe</h1><p>{n} articles available in total.</p>"
        f"{''.join(cards)}<nav><a href='/en/production/p/2/'>2</a></nav></main></body></html>"
    )


def make_feed(n: int, seed: int = 2) -> bytes:
    rng = random.Random(seed)
    items = []
    for i in range(n):
        when = NOW - timedelta(hours=i)
        cats = "".join(
            f"<category>{c}</category>" for c in rng.sample(SECTIONS, 1) + rng.sample(COUNTRIES, 2)
        )
        items.append(
            f"<item><title>{escape(_sentence(rng, 6))} #{i}</title>"
            f"<link>https://example.org/news/{i}/?utm_source=rss</link>"
            f"<description>{escape('<p>' + _sentence(rng, 25) + '</p>')}</description>{cats}"
            f"<pubDate>{format_datetime(when)}</pubDate></item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Bench</title>'
        f"<link>https://example.org/</link><description>bench</description>{''.join(items)}</channel></rss>"
    ).encode()


def best_rate(n: int, fn: Callable[[], object], *, repeat: int = 3) -> float:
    """Records per second of the fastest of `repeat` runs (the least disturbed by other work)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return n / best


def reset(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM articletag"))
        conn.execute(text("DELETE FROM article"))


def store_batched(engine: Engine, articles: list[ParsedArticle]) -> None:
    with Session(engine) as session:
        store.upsert_articles(session, ingest.normalise(articles), source_id=None, now=NOW)
        session.commit()


def store_before(engine: Engine, articles: list[ParsedArticle]) -> None:
    """The store before issue 11 (an ORM object per new article), for the feed path's baseline."""
    with Session(engine) as session:
        baseline_store.upsert_articles(session, ingest.normalise(articles), source_id=None, now=NOW)
        session.commit()


def store_naive(engine: Engine, articles: list[ParsedArticle]) -> None:
    """The baseline: one transaction per record, as a straightforward loop would do."""
    for a in ingest.normalise(articles):
        with Session(engine) as session:
            store.upsert_articles(session, [a], source_id=None, now=NOW)
            session.commit()


def timed_store(
    engine: Engine, n: int, parse: Callable[[], list[ParsedArticle]], write, *, repeat: int
) -> float:
    best = float("inf")
    for _ in range(repeat):
        reset(engine)
        start = time.perf_counter()
        write(engine, parse())
        best = min(best, time.perf_counter() - start)
    return n / best


def bench_database(
    label: str, engine: Engine, inputs: dict, rows: list[tuple[str, str, float, str]], old_feed
) -> None:
    n_old, parse_old = old_feed
    old = timed_store(engine, n_old, parse_old, store_before, repeat=3)
    new = timed_store(engine, n_old, inputs["feed"][1], store_batched, repeat=3)
    rows.append((label, "feed: parse+store, before issue 11", old, "baseline"))
    rows.append((label, "feed: parse+store, now", new, f"{new / old:.2f}x before"))
    for name, (n, parse, parse_rate) in inputs.items():
        batched = timed_store(engine, n, parse, store_batched, repeat=3)
        naive = timed_store(engine, n, parse, store_naive, repeat=1)
        store_batched(engine, parse())  # rows in place: the next pass finds all of them unchanged
        start = time.perf_counter()
        store_batched(engine, parse())
        again = n / (time.perf_counter() - start)
        rows.append(
            (label, f"{name}: parse+store (batched)", batched, f"{batched / parse_rate:.2f}x parse only")
        )
        rows.append((label, f"{name}: parse+store (1 commit/record)", naive, "baseline"))
        rows.append((label, f"{name}: batched vs baseline", batched / naive, "ratio"))
        rows.append(
            (label, f"{name}: re-ingest, all unchanged", again, f"{again / parse_rate:.2f}x parse only")
        )
    reset(engine)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--pg", default=os.environ.get("CLAPPER_TEST_DATABASE_URL"), help="PostgreSQL server URL")
    args = ap.parse_args()
    n = args.records

    text_listing = make_listing(n)
    feed = make_feed(n)
    parsed_listing = listing.parse(text_listing)
    parsed_feed = rss.parse(feed)
    assert len(parsed_listing.articles) == n, len(parsed_listing.articles)
    assert len(parsed_feed.articles) == n, len(parsed_feed.articles)

    def parse_listing() -> list[ParsedArticle]:
        return listing.parse(text_listing).articles

    def parse_feed() -> list[ParsedArticle]:
        return rss.parse(feed).articles

    def parse_feed_before() -> list[ParsedArticle]:
        return baseline_rss.parse(feed).articles

    assert len(parse_feed_before()) == n

    rows: list[tuple[str, str, float, str]] = []
    listing_rate = best_rate(n, parse_listing)
    feed_rate = best_rate(n, parse_feed)
    rows.append(("-", f"listing ({n} records): parse", listing_rate, "baseline"))
    feed_before = best_rate(n, parse_feed_before)
    rows.append(("-", f"feed ({n} items): parse, before issue 11", feed_before, "baseline"))
    rows.append(("-", f"feed ({n} items): parse", feed_rate, f"{feed_rate / feed_before:.2f}x before"))
    html = make_listing_html(n)
    assert len(listing.parse(html, base_url="https://example.org/").articles) == n
    html_rate = best_rate(n, lambda: listing.parse(html, base_url="https://example.org/"))
    rows.append(
        ("-", f"listing as HTML ({n} cards): parse", html_rate, f"{html_rate / listing_rate:.2f}x text")
    )
    inputs = {"listing": (n, parse_listing, listing_rate), "feed": (n, parse_feed, feed_rate)}

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        engine = db.init(url)
        bench_database("SQLite", engine, inputs, rows, (n, parse_feed_before))
        engine.dispose()

    if args.pg:
        name = f"clapper_bench_{uuid.uuid4().hex[:10]}"
        admin = create_engine(args.pg, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = make_url(args.pg).set(database=name).render_as_string(hide_password=False)
            engine = db.init(url)
            bench_database("PostgreSQL", engine, inputs, rows, (n, parse_feed_before))
            engine.dispose()
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    else:
        print("PostgreSQL skipped: set CLAPPER_TEST_DATABASE_URL or pass --pg URL", file=sys.stderr)

    print(f"{'database':<11} {'measure':<44} {'value':>12}  note")
    for database, metric, value, note in rows:
        unit = "x" if note == "ratio" else " rec/s"
        print(f"{database:<11} {metric:<44} {value:>10,.1f}{unit:<6} {note if note != 'ratio' else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
