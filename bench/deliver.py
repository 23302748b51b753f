"""Digest benchmarks: compose throughput (render cache vs one render per subscriber), and sending.

Each section is a function returning rows; `main` runs them all and prints one table. Run:
    .venv/bin/python bench/deliver.py [--only compose] [--subscribers N] [--sample N]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from digests import tokens  # noqa: E402
from digests.compose import ArticleView, Composer, DigestContext  # noqa: E402
from digests.config import Settings  # noqa: E402
from digests.matching import ArticleIndex, subscription_key  # noqa: E402


@dataclass
class Row:
    section: str
    metric: str
    value: str
    note: str = ""


# --- compose ---------------------------------------------------------------------------------

COUNTRIES = [
    "France", "Belgium", "Germany", "Italy", "Spain", "Netherlands", "Poland", "Denmark", "Sweden",
    "Norway", "Portugal", "Austria", "Switzerland", "Czech Republic", "Romania", "Hungary", "Greece",
    "Ireland", "United Kingdom", "Finland", "Croatia", "Serbia", "Slovenia", "Slovakia", "Bulgaria",
    "Lithuania", "Latvia", "Estonia", "Iceland", "Luxembourg", "Turkey", "Georgia", "Ukraine",
    "Israel", "Morocco", "Canada", "United States", "Argentina", "Brazil", "Japan",
]  # fmt: skip
SECTIONS = [
    "Production", "Distribution", "Festivals", "Funding", "Co-production", "Exhibition", "VOD",
    "Animation", "Documentary", "Short Films",
]  # fmt: skip
WORDS = (
    "director film shooting wraps feature debut producer co-production festival premiere drama "
    "thriller comedy documentary animated series funding sales agent distributor cast star award"
).split()


def _zipf_choice(rng: random.Random, items: list, s: float = 1.1):
    weights = [1 / (i + 1) ** s for i in range(len(items))]
    return rng.choices(items, weights=weights, k=1)[0]


def make_articles(n: int, rng: random.Random) -> list[tuple[ArticleView, list[tuple[str, str]]]]:
    start = date(2025, 11, 17)
    out = []
    for i in range(1, n + 1):
        countries = sorted({_zipf_choice(rng, COUNTRIES) for _ in range(rng.randint(1, 3))})
        sections = sorted({_zipf_choice(rng, SECTIONS, 1.4) for _ in range(rng.randint(1, 2))})
        title = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 11))).capitalize()
        summary = " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 45))).capitalize() + "."
        view = ArticleView(
            id=i,
            url=f"https://news.example.org/en/newsdetail/{400000 + i}/",
            title=title + (" & co" if i % 17 == 0 else ""),
            published=start + timedelta(days=rng.randint(0, 6)),
            summary=summary,
            countries=tuple(countries),
            sections=tuple(sections),
        )
        out.append((view, [("country", c) for c in countries] + [("section", s) for s in sections]))
    out.sort(key=lambda pair: (pair[0].published, pair[0].id), reverse=True)
    return out


def make_subscription_sets(n: int, rng: random.Random) -> list[tuple[tuple[str, str], ...]]:
    """`n` distinct sets: mostly one to three countries, some with a section, some sections only."""
    found: set[frozenset] = set()
    while len(found) < n:
        subs = {("country", _zipf_choice(rng, COUNTRIES, 0.9)) for _ in range(rng.choice([1, 1, 1, 2, 2, 3]))}
        roll = rng.random()
        if roll < 0.25:
            subs.add(("section", _zipf_choice(rng, SECTIONS, 1.2)))
        elif roll < 0.32:
            subs = {("section", _zipf_choice(rng, SECTIONS, 1.2)) for _ in range(rng.randint(1, 2))}
        found.add(frozenset(subs))
    return sorted(tuple(sorted(s)) for s in found)


def compose_section(
    subscribers: int = 100_000, articles: int = 500, sets: int = 300, sample: int = 5_000
) -> list[Row]:
    """Compose a Telegram and an email digest for every subscriber: cached vs one render each."""
    rng = random.Random(20251124)
    settings = Settings(
        _env_file=None,
        public_base_url="https://clapper.example",
        secret_key="bench-secret-key-0123456789abcdef-01",
    )
    pairs = make_articles(articles, rng)
    views = {v.id: v for v, _ in pairs}
    set_list = make_subscription_sets(sets, rng)
    # Popular sets are far more common (Zipf over the sets), as with real readers.
    weights = [1 / (i + 1) ** 1.05 for i in range(len(set_list))]
    population = [(sid, rng.choices(set_list, weights=weights, k=1)[0]) for sid in range(1, subscribers + 1)]
    distinct_used = len({s for _, s in population})
    local = date(2025, 11, 24)

    def ctx_for(subs) -> DigestContext:
        week = local - timedelta(days=7)
        return DigestContext(
            followed=subs, frequency="weekly", local_date=local, period_start=week, has_links=True
        )

    def compose_one(composer: Composer, index: ArticleIndex, sid: int, subs, matched_cache: dict | None):
        key = subscription_key(subs)
        ids = matched_cache.get(key) if matched_cache is not None else None
        if ids is None:
            ids = index.select(key)
            if matched_cache is not None:
                matched_cache[key] = ids
        selected = [views[i] for i in ids]
        ctx = ctx_for(subs)
        tg = composer.telegram(selected, ctx)
        mail = composer.email(selected, ctx).personalise(
            tokens.link(settings, tokens.Recipient(sid, f"r{sid}@example.org"), "unsubscribe"),
            tokens.link(settings, tokens.Recipient(sid, f"r{sid}@example.org"), "preferences"),
        )
        return len(tg.parts), len(mail.html)

    # Cached: one Composer for the run, matching once per distinct set (what queue_due does).
    t0 = time.perf_counter()
    index = ArticleIndex([(v.id, tags) for v, tags in pairs])
    composer = Composer(email_max_articles=settings.email_max_articles)
    matched: dict = {}
    parts = 0
    for sid, subs in population:
        parts += compose_one(composer, index, sid, subs, matched)[0]
    cached_s = time.perf_counter() - t0
    cached_rate = subscribers / cached_s

    # Uncached baseline: a fresh Composer (no cache) and fresh matching per subscriber, on a sample.
    sample = min(sample, subscribers)
    t0 = time.perf_counter()
    for sid, subs in population[:sample]:
        compose_one(Composer(email_max_articles=settings.email_max_articles), index, sid, subs, None)
    uncached_s = time.perf_counter() - t0
    uncached_rate = sample / uncached_s
    extrapolated = subscribers / uncached_rate

    return [
        Row("compose", "workload", f"{subscribers:,} subscribers × (Telegram + email)",
            f"{articles} new articles, {distinct_used} distinct subscription sets in use (Zipf)"),
        Row("compose", "cached: total time", f"{cached_s:.1f} s",
            f"{composer.renders:,} renders, {composer.cache_hits:,} cache hits, {parts:,} Telegram parts"),
        Row("compose", "cached: throughput", f"{cached_rate:,.0f} subscribers/s",
            "incl. matching, personal unsubscribe/preferences links"),
        Row("compose", "uncached: throughput", f"{uncached_rate:,.0f} subscribers/s",
            f"one render per subscriber, measured on {sample:,} and extrapolated"),
        Row("compose", "uncached: time for all", f"{extrapolated:.0f} s (extrapolated)",
            f"{subscribers:,} / {uncached_rate:,.0f} per s"),
        Row("compose", "ratio cached / uncached", f"{cached_rate / uncached_rate:.1f}×", "throughput ratio"),
    ]  # fmt: skip


# --- phrase follows ----------------------------------------------------------------------------

FIRST = (
    "Lukas Laura Jose Angela Luis Stijn Matteo Marie Claire Bouli Agnes Pedro Aki Mia Joachim Ruben "
    "Celine Julia Ava Lars Nanni Jessica Ken Mike Jacques Alice Olivier Paolo Thomas Sofia Ana Ivan"
).split()


def make_phrases(n: int, rng: random.Random) -> list[str]:
    """`n` distinct names and company names, most popular first."""
    last = [w.capitalize() for w in (
        "dhont alvea ortuno molina bermejo coninx rovere chambon burger lanners varda almodovar "
        "kaurismaki hansen trier ostlund sciamma ducournau reichardt loach leigh audiard assayas "
        "sorrentino vinterberg moretti rohrwacher haneke seidl mungiu puiu ceylan"
    ).split()]
    found: list[str] = []
    seen: set[str] = set()
    while len(found) < n:
        roll = rng.random()
        if roll < 0.7:
            name = f"{rng.choice(FIRST)} {rng.choice(last)}-{rng.randint(1, 999)}"
        elif roll < 0.9:
            kind = rng.choice(("Films", "Pictures", "Productions"))
            name = f"{rng.choice(last)} {kind} {rng.randint(1, 99)}"
        else:
            name = f"Project {rng.randint(1, 10**6)}"
        if name not in seen:
            seen.add(name)
            found.append(name)
    return found


def phrases_section(
    subscribers: int = 100_000, articles: int = 500, sets: int = 300, distinct_phrases: int = 50_000
) -> list[Row]:
    """Today's compose for every reader, then the same with phrase follows, in the same run.

    Every one of `distinct_phrases` names is held by some reader (1-3 each, popular names by many);
    each article mentions 0-2 names, popular ones more often (Zipf over the same ranking).
    """
    from digests import phrases
    from digests.matching import select_with_phrases

    rng = random.Random(20261201)
    settings = Settings(
        _env_file=None,
        public_base_url="https://clapper.example",
        secret_key="bench-secret-key-0123456789abcdef-01",
    )
    names = make_phrases(distinct_phrases, rng)
    weights = [1 / (i + 1) for i in range(len(names))]
    pairs = make_articles(articles, rng)
    mentioned = []
    for view, tags in pairs:
        said = rng.choices(names, weights=weights, k=rng.choice((0, 1, 1, 2)))
        if said:
            view = replace(view, summary=view.summary + " With " + " and ".join(said) + ".")
        mentioned.append((view, tags))
    pairs = mentioned
    views = {v.id: v for v, _ in pairs}
    order = {v.id: i for i, (v, _) in enumerate(pairs)}
    first_seen = dict.fromkeys(views, 1)
    set_list = make_subscription_sets(sets, rng)
    set_weights = [1 / (i + 1) ** 1.05 for i in range(len(set_list))]
    population = [(sid, rng.choices(set_list, weights=set_weights, k=1)[0])
                  for sid in range(1, subscribers + 1)]
    held: dict[int, list[str]] = {sid: [] for sid, _ in population}
    for i, name in enumerate(names):  # every phrase held by someone
        held[population[i % subscribers][0]].append(name)
    for sid in held:
        for name in rng.choices(names, weights=weights, k=rng.randint(0, 2)):
            if name not in held[sid]:
                held[sid].append(name)
    follows = {sid: tuple((phrases.key(p), p) for p in mine) for sid, mine in held.items()}
    local = date(2025, 11, 24)

    def ctx_for(subs, because=()) -> DigestContext:
        return DigestContext(followed=subs, frequency="weekly", local_date=local,
                             period_start=local - timedelta(days=7), has_links=True, because=because)

    def run(with_phrases: bool) -> tuple[float, Composer, int]:
        t0 = time.perf_counter()
        index = ArticleIndex([(v.id, tags) for v, tags in pairs])
        hits = phrases.match_articles(
            {k for mine in follows.values() for k, _ in mine},
            [(v.id, v.title, v.summary) for v, _ in pairs]) if with_phrases else {}
        composer = Composer(email_max_articles=settings.email_max_articles)
        matched: dict = {}
        composed: dict = {}
        brought = 0
        for sid, subs in population:
            key = subscription_key(subs)
            if key not in matched:
                matched[key] = index.select(key)
            mine = follows[sid] if with_phrases else ()
            group = (key, mine)
            hit = composed.get(group)
            if hit is None:
                hit = composed[group] = select_with_phrases(
                    matched[key], mine, hits, order, views, first_seen, 0)
            selected, extra, because = hit
            brought += bool(because)
            ctx = ctx_for(subs, because)
            composer.telegram(selected, ctx, extra)
            reader = tokens.Recipient(sid, f"reader{sid}@example.org")
            composer.email(selected, ctx, extra).personalise(
                tokens.link(settings, reader, "unsubscribe"), tokens.link(settings, reader, "preferences"))
        return time.perf_counter() - t0, composer, brought

    base_s, base_c, _ = run(False)
    t0 = time.perf_counter()
    phrases.match_articles({k for mine in follows.values() for k, _ in mine},
                           [(v.id, v.title, v.summary) for v, _ in pairs])
    match_s = time.perf_counter() - t0
    with_s, with_c, brought = run(True)
    held_total = sum(len(m) for m in held.values())
    return [
        Row("phrases", "workload", f"{subscribers:,} readers, {len(names):,} distinct phrases",
            f"{held_total:,} follows held, {articles} new articles"),
        Row("phrases", "today's compose (no phrases)", f"{base_s:.1f} s", f"{base_c.renders:,} renders"),
        Row("phrases", "all phrases vs all articles", f"{match_s * 1000:.0f} ms",
            "token index: each article normalised once, one pass"),
        Row("phrases", "compose with phrase follows", f"{with_s:.1f} s",
            f"{with_c.renders:,} renders; {brought:,} readers got articles only a phrase brought"),
        Row("phrases", "ratio with / without", f"{with_s / base_s:.2f}×", "target ≤ 2×, same run"),
    ]  # fmt: skip


# --- send: Telegram and email (helper C2) ------------------------------------------------------


def telegram_section(messages: int = 300) -> list[Row]:
    """The real worker path (claim, PTB send, mark) into the fake Bot API enforcing 30 msg/s."""
    import asyncio
    import tempfile

    from digests import db
    from digests.db import session_scope
    from digests.deliver import deliver_once_async
    from digests.models import Outbox, Subscriber
    from tests.fakes.botapi import FakeBotAPI

    rows: list[Row] = []
    fake = FakeBotAPI.in_thread(global_rate=30, per_chat_interval=1.0)
    with tempfile.TemporaryDirectory() as tmp, fake as api:
        url = f"sqlite:///{tmp}/bench.db"
        engine = db.init(url)
        with session_scope(engine) as session:
            for chat in range(1, messages + 1):
                sub = Subscriber(telegram_chat_id=chat)
                session.add(sub)
                session.flush()
                session.add(
                    Outbox(
                        subscriber_id=sub.id,
                        channel="telegram",
                        digest_key="bench",
                        recipient=str(chat),
                        body=f"<b>Digest</b> for chat {chat}: <a href='https://example.org/{chat}'>news</a>",
                    )
                )
        settings = Settings(
            _env_file=None,
            database_url=url,
            secret_key="bench-secret-key-0123456789abcdef-01",
            telegram_bot_token=api.token,
            telegram_api_base_url=api.base_url,
            telegram_api_file_url=api.base_file_url,
        )
        t0 = time.perf_counter()
        report = asyncio.run(deliver_once_async(engine, settings, worker_id="bench", limit=messages))
        wall = time.perf_counter() - t0
        times = sorted(m.time for m in api.sent)
        rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
        flood = sum(1 for r in api.rejected if r.get("status") == 429)
        engine.dispose()
    rows += [
        Row("telegram", "workload", f"{messages} messages to {messages} chats",
            f"worker path on SQLite; TELEGRAM_MAX_RATE={settings.telegram_max_rate:g}, fake limit 30/s"),
        Row("telegram", "sent / 429s", f"{report.sent} / {flood}", f"wall {wall:.1f} s incl. bot start"),
        Row("telegram", "send rate", f"{rate:.1f} msg/s", "first to last message accepted by the fake"),
        Row("telegram", "busiest 1 s window", f"{api.max_rate()} msg", "the fake refuses the 31st"),
        Row("telegram", "ratio to 30/s", f"{rate / 30:.2f}", "headroom kept on purpose (25/30 = 0.83)"),
    ]  # fmt: skip
    return rows


def email_section(messages: int = 500) -> list[Row]:
    """Emails/s into a local aiosmtpd sink: one reused connection (and 3) vs a new one per message."""
    import asyncio
    import subprocess
    from dataclasses import dataclass as _dataclass

    import aiosmtplib

    from digests.channels.email import EmailSender, message_for_row, sender_address
    from tests.fakes.smtp import free_port

    @_dataclass
    class FakeRow:
        id: int
        subscriber_id: int
        recipient: str
        subject: str
        body: str
        body_text: str

    mail = [
        FakeRow(i, i, f"reader{i}@example.org", f"Digest {i}", f"<p>{'news ' * 200}</p>", "news " * 200)
        for i in range(1, messages + 1)
    ]

    async def reused(settings: Settings) -> tuple[float, int]:
        sender = EmailSender(settings)
        done: list[str] = []

        async def report(row, outcome) -> None:
            done.append(outcome.status)

        t0 = time.perf_counter()
        await sender.send_groups([[r] for r in mail], report)
        elapsed = time.perf_counter() - t0
        assert done.count("sent") == messages, done[:3]
        return elapsed, sender.connections_opened

    async def fresh(settings: Settings) -> float:
        t0 = time.perf_counter()
        for r in mail:
            await aiosmtplib.send(
                message_for_row(settings, r),
                sender=sender_address(settings),
                recipients=[r.recipient],
                hostname=settings.smtp_host,
                port=settings.smtp_port,
            )
        return time.perf_counter() - t0

    base = Settings(
        _env_file=None,
        secret_key="bench-secret-key-0123456789abcdef-01",
        public_base_url="https://clapper.example",
        mail_from="Clapper <news@clapper.example>",
    )
    # The sink runs in its own process, so it does not share this one's CPU (GIL) with the sender.
    port = free_port()
    sink = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.smtp", "--port", str(port)],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert "listening" in (sink.stdout.readline() if sink.stdout else "")
        at = {"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_security": "none"}
        one = base.model_copy(update=at | {"smtp_connections": 1})
        three = base.model_copy(update=at | {"smtp_connections": 3})
        t_one, c_one = asyncio.run(reused(one))
        t_three, c_three = asyncio.run(reused(three))
        t_fresh = asyncio.run(fresh(one))
    finally:
        sink.terminate()
        summary = sink.communicate(timeout=10)[0]
    assert f"received {3 * messages} message(s)" in summary, summary
    r_one, r_three, r_fresh = messages / t_one, messages / t_three, messages / t_fresh
    return [
        Row("email", "workload", f"{messages} emails (~2 kB text + HTML)", "aiosmtpd sink, own process"),
        Row("email", "reused: 1 connection", f"{r_one:,.0f} emails/s", f"{c_one} connection opened"),
        Row("email", "reused: 3 connections", f"{r_three:,.0f} emails/s", f"{c_three} connections opened"),
        Row("email", "new connection each", f"{r_fresh:,.0f} emails/s", f"{messages} connections (.send)"),
        Row("email", "ratio reused(1) / new", f"{r_one / r_fresh:.1f}×", "same sink, same messages"),
    ]  # fmt: skip


# --- main ------------------------------------------------------------------------------------

# name -> section; the send sections register here too.
SECTIONS_TO_RUN: dict[str, Callable[[argparse.Namespace], list[Row]]] = {
    "compose": lambda a: compose_section(subscribers=a.subscribers, articles=a.articles, sample=a.sample),
    "phrases": lambda a: phrases_section(subscribers=a.subscribers, articles=a.articles),
    "telegram": lambda a: telegram_section(),
    "email": lambda a: email_section(),
}


def print_table(rows: list[Row]) -> None:
    widths = [max(len(getattr(r, f)) for r in rows + [Row("section", "metric", "value", "note")])
              for f in ("section", "metric", "value", "note")]  # fmt: skip
    header = Row("section", "metric", "value", "note")
    for r in [header, None, *rows]:
        if r is None:
            print("  ".join("-" * w for w in widths))
            continue
        cells = (r.section, r.metric, r.value, r.note)
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", action="append", choices=sorted(SECTIONS_TO_RUN), help="only these sections"
    )
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--articles", type=int, default=500)
    parser.add_argument("--sample", type=int, default=5_000, help="subscribers in the uncached baseline")
    args = parser.parse_args(argv)
    rows: list[Row] = []
    for name, section in SECTIONS_TO_RUN.items():
        if args.only and name not in args.only:
            continue
        print(f"running {name} …", file=sys.stderr, flush=True)
        rows += section(args)
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
