"""Queue due digests: select new matching articles, compose, enqueue, advance the watermark.

One run loads the new articles and their tags once, the subscriptions in bulk, matches once per
distinct subscription set and renders once per distinct (articles, channel, context). Each
subscriber's outbox rows and watermark are written in the same transaction; the watermark moves
only if it still holds the value this run read, so two runs at once never queue a digest twice.
Rows go in with bulk INSERTs (skipping any already queued under the same key, as outbox.enqueue
does one at a time): at 100,000 subscribers one ORM object and savepoint per row is too slow.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlencode

from sqlalchemy import insert, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from digests import catalog, due, follows, phrases, renderings, tokens
from digests.compose import ArticleView, Composer, DigestContext, EmailDigest, TelegramDigest
from digests.config import Settings
from digests.db import session_scope
from digests.matching import ArticleIndex, SubscriptionKey, select_with_phrases, subscription_key
from digests.models import Article, ArticleTag, Outbox, Subscriber, Subscription, utcnow

log = logging.getLogger(__name__)

CHUNK = 900  # ids per IN (...) list: under SQLite's old 999-parameter limit
BATCH = 500  # subscriber channels per write transaction


@dataclass
class QueueReport:
    now: datetime
    checked: int = 0  # subscriber channels looked at
    due: int = 0  # of which due now (or forced)
    digests: int = 0  # digests queued (a split Telegram digest counts once)
    empty: int = 0  # "nothing new" messages queued
    skipped: int = 0  # due, nothing new, nothing sent (watermark still advanced)
    messages: int = 0  # outbox rows added
    already_queued: int = 0  # rows that were there already (same run repeated)
    raced: int = 0  # another run advanced the watermark first: left to it
    articles: int = 0  # new articles loaded
    subscription_sets: int = 0  # distinct subscription sets among the due
    renders: int = 0
    cache_hits: int = 0
    by_channel: dict[str, int] = field(default_factory=dict)  # digests per channel

    @property
    def queued(self) -> int:
        return self.digests + self.empty


@dataclass
class Planned:
    """One subscriber channel's next digest, composed but not queued."""

    subscriber_id: int
    channel: str  # telegram | email
    recipient: str
    watermark: datetime | None  # the value read; the update only happens if it still holds
    articles: tuple[ArticleView, ...]
    telegram: TelegramDigest | None = None
    email: EmailDigest | None = None

    @property
    def empty(self) -> bool:
        return not self.articles


@dataclass(frozen=True)
class _Due:
    subscriber: Subscriber
    channel: str
    since: datetime  # articles first seen after this are new
    watermark: datetime | None
    frequency: str


def _chunks(items: Sequence, size: int = CHUNK) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _channels(s: Subscriber, *, preview: bool) -> list[tuple[str, str, datetime | None, datetime]]:
    """(channel, frequency, watermark, created) for each channel this subscriber can receive on."""
    found = []
    if s.telegram_chat_id is not None and (preview or s.telegram_blocked_at is None):
        found.append(("telegram", s.frequency, s.last_digest_at, s.created_at))
    if s.email and (preview or s.email_status == "confirmed"):
        # Never sent: since the address was confirmed, not since the chat first talked to the bot.
        found.append(
            ("email", s.email_frequency, s.email_last_digest_at, s.email_confirmed_at or s.created_at)
        )
    return found


def _due_channels(
    subscribers: Iterable[Subscriber],
    settings: Settings,
    *,
    now: datetime,
    force: bool,
    preview: bool,
    report,
) -> list[_Due]:
    result = []
    for s in subscribers:
        for channel, frequency, last, created in _channels(s, preview=preview):
            report.checked += 1
            if not force:
                slot = due.next_due(
                    frequency=frequency,
                    timezone=s.timezone,
                    delivery_time=s.delivery_time,
                    weekly_day=s.weekly_day,
                    last=last,
                    created=created,
                    default_timezone=settings.default_timezone,
                    default_delivery_time=settings.default_delivery_time,
                )
                if slot > now:
                    continue
            result.append(_Due(s, channel, last or created, last, frequency))
    report.due += len(result)
    return result


def load_subscriptions(session: Session, subscriber_ids: Sequence[int]) -> dict[int, list[tuple[str, str]]]:
    subs: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for chunk in _chunks(sorted(set(subscriber_ids))):
        rows = session.exec(
            select(Subscription.subscriber_id, Subscription.kind, Subscription.value).where(
                Subscription.subscriber_id.in_(chunk)  # type: ignore[attr-defined]
            )
        )
        for subscriber_id, kind, value in rows:
            subs[subscriber_id].append((kind, value))
    return subs


def load_new_articles(
    session: Session, *, since: datetime, until: datetime
) -> tuple[list[ArticleView], dict[int, datetime], dict[int, list[tuple[str, str]]]]:
    """Articles first seen in (since, until], newest first, with first-seen times and tags (2 queries)."""
    window = (Article.first_seen_at > since, Article.first_seen_at <= until)
    rows = session.exec(
        select(Article).where(*window).order_by(Article.published.desc(), Article.id.desc())  # type: ignore[attr-defined]
    ).all()
    tags: dict[int, list[tuple[str, str]]] = defaultdict(list)
    festivals: dict[int, list[str]] = defaultdict(list)
    in_window = select(Article.id).where(*window)
    for article_id, kind, value, edition in session.exec(
        select(ArticleTag.article_id, ArticleTag.kind, ArticleTag.value, ArticleTag.edition)
        .where(ArticleTag.article_id.in_(in_window))  # type: ignore[attr-defined]
        .order_by(ArticleTag.article_id, ArticleTag.kind, ArticleTag.value)
    ):
        tags[article_id].append((kind, value))
        if kind == catalog.FESTIVAL:
            festivals[article_id].append(catalog.festival_label(value, edition))
    views = [
        ArticleView(
            id=a.id,
            url=a.url,
            title=a.title,
            published=a.published,
            summary=a.summary or "",
            countries=tuple(v for k, v in tags[a.id] if k == "country"),
            sections=tuple(v for k, v in tags[a.id] if k == "section"),
            kind=a.kind,
            festivals=tuple(festivals[a.id]),
        )
        for a in rows
    ]
    return views, {a.id: a.first_seen_at for a in rows}, tags


def _context(s: Subscriber, channel: str, followed, settings: Settings, now: datetime,
             because: tuple[tuple[int, str], ...] = ()) -> DigestContext:
    local = now.astimezone(due.resolve_zone(s.timezone, settings.default_timezone)).date()
    frequency = s.frequency if channel == "telegram" else s.email_frequency
    return DigestContext(
        followed=followed,
        frequency=frequency,
        local_date=local,
        period_start=local - timedelta(days=7) if frequency == "weekly" else None,
        has_links=bool(settings.public_base_url),
        because=because,
        archive_url=f"{settings.public_base_url.rstrip('/')}/archive" if settings.public_base_url else "",
    )


def plan(
    session: Session,
    settings: Settings,
    *,
    now: datetime,
    composer: Composer,
    subscriber_ids: Sequence[int] | None = None,
    force: bool = False,
    preview: bool = False,
    report: QueueReport | None = None,
) -> list[Planned]:
    """Compose the next digest of every due subscriber channel, without writing anything.

    `preview` also covers paused subscribers, blocked chats and unconfirmed addresses, and shows
    the "nothing new" message rather than nothing.
    """
    report = report or QueueReport(now=now)
    query = select(Subscriber).order_by(Subscriber.id)  # type: ignore[arg-type]
    if not preview:
        query = query.where(Subscriber.paused == False)  # noqa: E712 - SQL comparison
    if subscriber_ids is not None:
        subscribers = [
            s
            for chunk in _chunks(list(subscriber_ids))
            for s in session.exec(query.where(Subscriber.id.in_(chunk)))  # type: ignore[union-attr]
        ]
    else:
        subscribers = list(session.exec(query))
    pending = _due_channels(subscribers, settings, now=now, force=force, preview=preview, report=report)
    if not pending:
        return []
    subs = load_subscriptions(session, [d.subscriber.id for d in pending])
    phrases_of = follows.load(session, [d.subscriber.id for d in pending])
    articles, first_seen, tags = load_new_articles(session, since=min(d.since for d in pending), until=now)
    report.articles = len(articles)
    by_id = {a.id: a for a in articles}
    index = ArticleIndex([(a.id, tags[a.id]) for a in articles])
    # Every distinct phrase against every new article, once: each article normalised once.
    phrase_hits = phrases.match_articles(
        {k for pairs in phrases_of.values() for k, _ in pairs},
        [(a.id, a.title, a.summary) for a in articles],
    )
    matched: dict[SubscriptionKey, tuple[int, ...]] = {}
    composed: dict[tuple, tuple] = {}  # (selected, extra, because) per (set, phrases, watermark)
    send_empty_all = settings.send_empty_digests or preview
    newest = max(first_seen.values(), default=None)
    planned: list[Planned] = []
    for d in pending:
        s = d.subscriber
        mine = subs.get(s.id, [])
        key = subscription_key(mine)
        if key not in matched:
            matched[key] = index.select(key)
        mine_phrases = tuple(phrases_of.get(s.id, ()))
        # Subscribers sharing a set, phrases and a watermark share the filtered tuple (and the render).
        group = (key, mine_phrases, d.since)
        hit = composed.get(group)
        if hit is None:
            hit = composed[group] = select_with_phrases(
                matched[key], mine_phrases, phrase_hits, index.order, by_id, first_seen, d.since)
        selected, extra, because = hit
        item = Planned(
            s.id,
            d.channel,
            str(s.telegram_chat_id) if d.channel == "telegram" else s.email,
            d.watermark,
            selected + extra,
        )
        if selected or extra or ((mine or mine_phrases) and (s.send_empty or send_empty_all)):
            followed = tuple(sorted(set(mine), key=lambda kv: (kv[0], kv[1].casefold())))
            ctx = _context(s, d.channel, followed, settings, now, because)
            if d.channel == "telegram":
                item.telegram = composer.telegram(selected, ctx, extra)
            else:
                item.email = composer.email(selected, ctx, extra)
        elif not preview and d.frequency == "instant" and not (newest and newest > d.since):
            # Instant and nothing at all arrived since: leave the watermark (no write every minute).
            continue
        planned.append(item)
    report.subscription_sets = len(matched)
    report.renders, report.cache_hits = composer.renders, composer.cache_hits
    return planned


def view_link(settings: Settings, reader: tokens.Holder, digest_key: str) -> str | None:
    """The signed web page of one email digest (the token names the reader, `key` their digest)."""
    url = tokens.link(settings, reader, "view")
    return f"{url}&{urlencode({'key': digest_key})}" if url else None


def message_rows(
    item: Planned, settings: Settings, *, now: datetime, rendering_id: int | None = None
) -> list[dict]:
    """The outbox rows (as column values) for one planned digest; none when there is nothing to send.

    With `rendering_id` (the stored shared digest, digests.renderings) an email row carries only
    the reader's links; without it, the complete body (previews).
    """
    key = f"digest:{now.isoformat()}"
    created = utcnow()
    common = {
        "subscriber_id": item.subscriber_id,
        "recipient": item.recipient,
        "state": "queued",
        "attempts": 0,
        "next_attempt_at": created,
        "created_at": created,
        "channel": item.channel,
        "rendering_id": None,  # every row names every column: one executemany takes them all
        "links": None,
    }
    if item.telegram is not None:
        parts = item.telegram.parts
        return [
            {
                **common,
                "digest_key": f"{key}#{number}/{len(parts)}",
                "subject": "",
                "body": text,
                "body_text": None,
                "template": item.telegram.template,
                "article_count": item.telegram.article_count,
            }
            for number, text in enumerate(parts, start=1)
        ]
    if item.email is not None:
        # Bound to the address this digest goes to: a later address change makes the links stale.
        reader = tokens.Recipient(item.subscriber_id, item.recipient)
        personal = (
            tokens.link(settings, reader, "unsubscribe"),
            tokens.link(settings, reader, "preferences"),
            view_link(settings, reader, key),
        )
        digest = item.email
        if rendering_id is not None:
            links = renderings.links(*personal)
            content = {"body": "", "body_text": None, "rendering_id": rendering_id, "links": links}
        else:
            mail = digest.personalise(*personal)
            content = {"body": mail.html, "body_text": mail.text}
        return [
            {
                **common,
                "digest_key": key,
                "subject": digest.subject,
                "template": digest.template,
                "article_count": digest.article_count,
                **content,
            }
        ]
    return []


def messages(item: Planned, settings: Settings, *, now: datetime) -> list[Outbox]:
    """`message_rows` as (unsaved) Outbox objects, e.g. for a preview."""
    return [Outbox(**row) for row in message_rows(item, settings, now=now)]


def _advance(session: Session, batch: Sequence[Planned], now: datetime) -> set[tuple[int, str]]:
    """Move watermarks to `now` where they still hold what we read: the (subscriber, channel) moved.

    One UPDATE … RETURNING per (channel, old watermark): subscribers queued together share one.
    """
    groups: dict[tuple[str, datetime | None], list[int]] = defaultdict(list)
    for item in batch:
        groups[(item.channel, item.watermark)].append(item.subscriber_id)
    moved: set[tuple[int, str]] = set()
    for (channel, watermark), ids in groups.items():
        column = Subscriber.last_digest_at if channel == "telegram" else Subscriber.email_last_digest_at
        held = column.is_(None) if watermark is None else column == watermark  # type: ignore[union-attr]
        statement = (
            update(Subscriber)
            .where(Subscriber.id.in_(ids), held)  # type: ignore[union-attr]
            .values({column.key: now})  # type: ignore[union-attr]
            .returning(Subscriber.id)
        )
        for (subscriber_id,) in session.connection().execute(statement):
            moved.add((subscriber_id, channel))
    return moved


def _insert_rows(session: Session, rows: list[dict]) -> int:
    """Insert the rows not queued already (same subscriber, channel and key); how many were new.

    The outbox's unique key stays the last word; this check keeps a repeated run from tripping it.
    """
    if not rows:
        return 0
    keys = sorted({r["digest_key"] for r in rows})
    ids = sorted({r["subscriber_id"] for r in rows})
    existing: set[tuple] = set()
    for chunk in _chunks(ids):
        existing.update(
            session.exec(
                select(Outbox.subscriber_id, Outbox.channel, Outbox.digest_key).where(
                    Outbox.subscriber_id.in_(chunk),  # type: ignore[union-attr]
                    Outbox.digest_key.in_(keys),  # type: ignore[attr-defined]
                )
            )
        )
    new = [r for r in rows if (r["subscriber_id"], r["channel"], r["digest_key"]) not in existing]
    if new:
        session.connection().execute(insert(Outbox.__table__), new)
    return len(new)


def write(
    engine: Engine, settings: Settings, planned: Sequence[Planned], *, now: datetime, report: QueueReport
) -> None:
    """Enqueue each planned digest and advance its watermark, in one transaction per batch."""
    for batch in _chunks(planned, BATCH):
        with session_scope(engine) as session:
            moved = _advance(session, batch, now)
            rows: list[dict] = []
            # Readers of one composed digest share its stored rendering: object identity is enough,
            # the composer hands every reader of a render the same EmailDigest.
            shared: dict[int, int] = {}
            for item in batch:
                if (item.subscriber_id, item.channel) not in moved:
                    report.raced += 1
                    continue
                rendering_id = None
                if item.email is not None:
                    if id(item.email) not in shared:
                        shared[id(item.email)] = renderings.store(session, item.email)
                    rendering_id = shared[id(item.email)]
                mine = message_rows(item, settings, now=now, rendering_id=rendering_id)
                if not mine:
                    report.skipped += 1
                elif item.empty:
                    report.empty += 1
                else:
                    report.digests += 1
                    report.by_channel[item.channel] = report.by_channel.get(item.channel, 0) + 1
                rows += mine
            added = _insert_rows(session, rows)
            report.messages += added
            report.already_queued += len(rows) - added


def queue_due(
    engine: Engine,
    settings: Settings,
    *,
    now: datetime,
    subscriber_ids: Sequence[int] | None = None,
    force: bool = False,
    composer: Composer | None = None,
) -> QueueReport:
    """Queue every due digest (all of them with `force`) and advance the watermarks to `now`."""
    report = QueueReport(now=now)
    composer = composer or Composer.for_settings(settings)
    with session_scope(engine) as session:
        planned = plan(
            session,
            settings,
            now=now,
            composer=composer,
            subscriber_ids=subscriber_ids,
            force=force,
            report=report,
        )
    write(engine, settings, planned, now=now, report=report)
    log.info(
        "digests queued",
        extra={
            "event": "queue.done",
            "due": report.due,
            "digests": report.digests,
            "empty": report.empty,
            "messages": report.messages,
            "articles": report.articles,
            "renders": report.renders,
            "cache_hits": report.cache_hits,
        },
    )
    return report
