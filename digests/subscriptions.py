"""What a Telegram chat follows and when: the use cases behind the bot's commands. No telegram imports.

Every function takes the engine (or a session) and a chat id, opens its own transaction, and returns
plain values for the caller to render. Invalid input raises `InvalidInput` with a machine-readable
`reason` (the bot renders a template for each reason).
"""

from __future__ import annotations

import difflib
import re
import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

from sqlalchemy import delete, func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from digests import catalog, outbox, store
from digests.catalog import COUNTRY, SECTION, Term
from digests.config import Settings
from digests.db import session_scope
from digests.due import FREQUENCIES
from digests.inbound import events
from digests.models import Outbox, Subscriber, Subscription, utcnow

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MAX_ARGUMENT_CHARS = 1000  # longer arguments are refused before parsing
MAX_TERMS_PER_COMMAND = 50
MAX_SUGGESTED_WORDS = 5  # unknown words that get suggestion buttons; the rest are only listed
RECENT_DAYS = 30  # "lately" for /countries and /sections
POPULAR_FALLBACK = ("Belgium", "France", "Germany", "Italy", "Spain", "UK", "Netherlands", "Poland")


class InvalidInput(ValueError):
    """The user's input cannot be used; `reason` names the template case, `suggestions` may help."""

    def __init__(self, reason: str, value: str = "", suggestions: Sequence[str] = ()):
        super().__init__(f"{reason}: {value!r}")
        self.reason = reason
        self.value = value
        self.suggestions = list(suggestions)


@dataclass(frozen=True, slots=True)
class Chat:
    """The Telegram chat a command came from."""

    id: int
    type: str = "private"  # private | group | supergroup
    title: str | None = None


@dataclass(slots=True)
class Unknown:
    word: str
    suggestions: list[Term] = field(default_factory=list)


@dataclass(slots=True)
class SubscribeResult:
    added: list[Term] = field(default_factory=list)
    already: list[Term] = field(default_factory=list)
    unknown: list[Unknown] = field(default_factory=list)
    over_limit: list[Term] = field(default_factory=list)  # not added: the chat is at its cap
    limit: int = 0
    total: int = 0


@dataclass(slots=True)
class UnsubscribeResult:
    removed: list[Term] = field(default_factory=list)
    not_followed: list[Term] = field(default_factory=list)
    unknown: list[Unknown] = field(default_factory=list)
    total: int = 0


@dataclass(frozen=True, slots=True)
class ChatSettings:
    frequency: str
    delivery_time: str
    timezone: str
    weekly_day: str
    paused: bool
    blocked: bool
    subscriptions: tuple[Term, ...]


@dataclass(frozen=True, slots=True)
class StartResult:
    is_new: bool
    was_blocked: bool
    subscriptions: int


@dataclass(slots=True)
class SourceLine:
    name: str
    enabled: bool
    last_success_at: datetime | None
    last_error: str | None
    error_count: int
    last_new_articles: int


@dataclass(slots=True)
class Stats:
    telegram: dict[str, int]  # active | paused | blocked | idle (no subscriptions)
    email: dict[str, int]  # by email_status
    top_countries: list[tuple[str, int]]
    top_sections: list[tuple[str, int]]
    sources: list[SourceLine]
    sent_today: dict[str, int]  # by channel
    failed_today: int
    retrying: int
    articles: int
    inbound_today: dict[str, int] = field(default_factory=dict)  # bounces, complaints... by kind


# ----------------------------------------------------------------------------- parsing (pure)


def sort_terms(terms: Iterable[Term]) -> list[Term]:
    """Countries first, then sections, each alphabetically."""
    return sorted(terms, key=lambda t: (t.kind != COUNTRY, catalog.normalize(t.value)))


def parse_arguments(text: str) -> catalog.ParsedTerms:
    """Terms from a command's arguments; refuses arguments too long or too many to be meant."""
    if len(text) > MAX_ARGUMENT_CHARS:
        raise InvalidInput("too_long", text[:40])
    parsed = catalog.parse_terms(text)
    # Unknown words run together ("foo bar baz") arrive as one chunk: count the words.
    count = len(parsed.found) + sum(len(chunk.split()) for chunk in parsed.unknown)
    if count > MAX_TERMS_PER_COMMAND:
        raise InvalidInput("too_many", str(count))
    return parsed


def _unknown(words: Iterable[str]) -> list[Unknown]:
    result = []
    for i, word in enumerate(words):
        result.append(Unknown(word[:60], catalog.suggest(word) if i < MAX_SUGGESTED_WORDS else []))
    return result


def parse_frequency(text: str) -> tuple[str, int | None]:
    """'weekly friday' -> ('weekly', 4); 'daily' -> ('daily', None)."""
    words = text.casefold().split()
    if not words or words[0] not in FREQUENCIES or len(words) > 2:
        raise InvalidInput("frequency", text[:40], FREQUENCIES)
    day = None
    if len(words) == 2:
        if words[0] != "weekly":
            raise InvalidInput("frequency", text[:40], FREQUENCIES)
        matches = [i for i, name in enumerate(WEEKDAYS) if name.startswith(words[1]) and len(words[1]) >= 2]
        if len(matches) != 1:
            raise InvalidInput("weekday", words[1][:20], [d.title() for d in WEEKDAYS])
        day = matches[0]
    return words[0], day


_TIME = re.compile(r"^(\d{1,2})(?:[:h.](\d{2}))?$")


def parse_time(text: str) -> str:
    """'8:30', '08:30', '8h30', '8' -> 'HH:MM' (24-hour clock)."""
    m = _TIME.match(text.strip().casefold())
    if not m:
        raise InvalidInput("time", text[:20])
    hour, minute = int(m.group(1)), int(m.group(2) or 0)
    if hour > 23 or minute > 59:
        raise InvalidInput("time", text[:20])
    return f"{hour:02d}:{minute:02d}"


@lru_cache(maxsize=1)
def _zones() -> dict[str, str]:
    return {name.casefold(): name for name in zoneinfo.available_timezones()}


def parse_timezone(text: str) -> str:
    """An IANA zone name in any case ('europe/brussels'); a bare city when it is unambiguous."""
    key = text.strip().replace(" ", "_").casefold()
    zones = _zones()
    if not key or len(key) > 64:
        raise InvalidInput("timezone", text[:40])
    if key in zones:
        return zones[key]
    by_city = [name for low, name in zones.items() if low.endswith("/" + key) and "/" in low]
    if len(by_city) == 1:
        return by_city[0]
    close = difflib.get_close_matches(key, list(zones), n=3, cutoff=0.6)
    raise InvalidInput("timezone", text[:40], by_city[:3] or [zones[c] for c in close])


# ----------------------------------------------------------------------------- chat rows


def _find(session: Session, chat_id: int) -> Subscriber | None:
    return session.exec(select(Subscriber).where(Subscriber.telegram_chat_id == chat_id)).first()


def _get_or_create(session: Session, settings: Settings, chat: Chat) -> tuple[Subscriber, bool]:
    row = _find(session, chat.id)
    created = row is None
    if row is None:
        row = Subscriber(telegram_chat_id=chat.id, timezone=settings.default_timezone,
                         delivery_time=settings.default_delivery_time,
                         send_empty=settings.send_empty_digests)
    row.chat_type = chat.type
    row.chat_title = chat.title
    session.add(row)
    session.flush()
    return row, created


def _terms(session: Session, subscriber_id: int) -> list[Term]:
    rows = session.exec(select(Subscription).where(Subscription.subscriber_id == subscriber_id))
    return sort_terms(Term(r.kind, r.value) for r in rows)


def start(engine: Engine, settings: Settings, chat: Chat) -> StartResult:
    """The chat (re)starts the bot: create its row, and forget that it had blocked us."""
    with session_scope(engine) as session:
        row, created = _get_or_create(session, settings, chat)
        was_blocked = row.telegram_blocked_at is not None
        row.telegram_blocked_at = None
        session.add(row)
        return StartResult(created, was_blocked, len(_terms(session, row.id)))


def subscribe_text(engine: Engine, settings: Settings, chat: Chat, text: str) -> SubscribeResult:
    """Follow every country/section named in `text`; unknown words come back with suggestions."""
    parsed = parse_arguments(text)
    result = subscribe(engine, settings, chat, parsed.found)
    result.unknown = _unknown(parsed.unknown)
    return result


def subscribe(engine: Engine, settings: Settings, chat: Chat, terms: Sequence[Term]) -> SubscribeResult:
    """Follow `terms` (already canonical), up to the per-chat cap."""
    result = SubscribeResult(limit=settings.max_subscriptions)
    with session_scope(engine) as session:
        row, _ = _get_or_create(session, settings, chat)
        row.telegram_blocked_at = None
        have = set(_terms(session, row.id))
        count = len(have)
        for term in terms:
            if term in have:
                result.already.append(term)
            elif count >= settings.max_subscriptions:
                result.over_limit.append(term)
            else:
                session.add(Subscription(subscriber_id=row.id, kind=term.kind, value=term.value))
                have.add(term)
                result.added.append(term)
                count += 1
        result.total = count
    return result


def unsubscribe_text(engine: Engine, chat_id: int, text: str) -> UnsubscribeResult:
    parsed = parse_arguments(text)
    result = unsubscribe(engine, chat_id, parsed.found)
    result.unknown = _unknown(parsed.unknown)
    return result


def unsubscribe(engine: Engine, chat_id: int, terms: Sequence[Term]) -> UnsubscribeResult:
    result = UnsubscribeResult()
    with session_scope(engine) as session:
        row = _find(session, chat_id)
        have = set(_terms(session, row.id)) if row else set()
        for term in terms:
            if term not in have:
                result.not_followed.append(term)
                continue
            session.execute(delete(Subscription).where(
                col(Subscription.subscriber_id) == row.id, col(Subscription.kind) == term.kind,
                col(Subscription.value) == term.value))
            have.discard(term)
            result.removed.append(term)
        result.total = len(have)
    return result


def unsubscribe_all(engine: Engine, chat_id: int) -> int:
    """Stop following everything (settings stay); returns how many were removed."""
    with session_scope(engine) as session:
        row = _find(session, chat_id)
        if row is None:
            return 0
        gone = session.execute(delete(Subscription).where(col(Subscription.subscriber_id) == row.id))
        return int(gone.rowcount or 0)


def toggle(engine: Engine, settings: Settings, chat: Chat, term: Term) -> tuple[bool, SubscribeResult | None]:
    """Follow `term` if not followed, else stop: (now followed, the subscribe result when added)."""
    if term in list_subscriptions(engine, chat.id):
        unsubscribe(engine, chat.id, [term])
        return False, None
    result = subscribe(engine, settings, chat, [term])
    return bool(result.added or result.already), result


def list_subscriptions(engine: Engine, chat_id: int) -> list[Term]:
    with session_scope(engine) as session:
        row = _find(session, chat_id)
        return _terms(session, row.id) if row else []


def chat_settings(engine: Engine, settings: Settings, chat_id: int) -> ChatSettings:
    """What /settings shows; defaults for a chat the bot has not stored yet."""
    with session_scope(engine) as session:
        row = _find(session, chat_id)
        if row is None:
            return ChatSettings("daily", settings.default_delivery_time, settings.default_timezone,
                                WEEKDAYS[0].title(), False, False, ())
        return ChatSettings(row.frequency, row.delivery_time, row.timezone, WEEKDAYS[row.weekly_day].title(),
                            row.paused, row.telegram_blocked_at is not None, tuple(_terms(session, row.id)))


def _update(engine: Engine, settings: Settings, chat: Chat, **values: object) -> ChatSettings:
    with session_scope(engine) as session:
        row, _ = _get_or_create(session, settings, chat)
        for key, value in values.items():
            setattr(row, key, value)
        session.add(row)
    return chat_settings(engine, settings, chat.id)


def set_frequency(engine: Engine, settings: Settings, chat: Chat, text: str) -> ChatSettings:
    frequency, day = parse_frequency(text)
    values: dict[str, object] = {"frequency": frequency}
    if day is not None:
        values["weekly_day"] = day
    return _update(engine, settings, chat, **values)


def set_time(engine: Engine, settings: Settings, chat: Chat, text: str) -> ChatSettings:
    return _update(engine, settings, chat, delivery_time=parse_time(text))


def set_timezone(engine: Engine, settings: Settings, chat: Chat, text: str) -> ChatSettings:
    return _update(engine, settings, chat, timezone=parse_timezone(text))


def set_paused(engine: Engine, settings: Settings, chat: Chat, paused: bool) -> ChatSettings:
    return _update(engine, settings, chat, paused=paused)


def stop(engine: Engine, chat_id: int) -> bool:
    """Forget the chat: its row, subscriptions and queued messages (FK cascades).

    A row that is also a confirmed email reader keeps its email side; only the chat is detached.
    """
    with session_scope(engine) as session:
        row = _find(session, chat_id)
        if row is None:
            return False
        if row.email and row.email_status not in ("none", "unsubscribed"):
            session.execute(delete(Outbox).where(col(Outbox.subscriber_id) == row.id,
                                                 col(Outbox.channel) == "telegram"))
            row.telegram_chat_id = row.chat_type = row.chat_title = row.telegram_blocked_at = None
            session.add(row)
        else:
            session.execute(delete(Outbox).where(col(Outbox.subscriber_id) == row.id))
            session.execute(delete(Subscription).where(col(Subscription.subscriber_id) == row.id))
            session.delete(row)
        return True


def mark_blocked(engine: Engine, chat_id: int, *, now: datetime | None = None) -> bool:
    """Telegram said 403 to a reply: the chat blocked the bot (its next /start clears this)."""
    with session_scope(engine) as session:
        row = _find(session, chat_id)
        if row is None or row.telegram_blocked_at is not None:
            return False
        row.telegram_blocked_at = now or utcnow()
        session.add(row)
        return True


# ----------------------------------------------------------------------------- reading articles


@dataclass(slots=True)
class LatestResult:
    articles: list[store.ArticleView]
    terms: list[Term]
    unknown: list[Unknown]
    from_subscriptions: bool


def latest(engine: Engine, chat_id: int, text: str = "", *, limit: int = 10) -> LatestResult:
    """The newest articles matching `text`, or the chat's subscriptions when `text` is empty."""
    parsed = parse_arguments(text) if text.strip() else None
    with session_scope(engine) as session:
        if parsed is None:
            row = _find(session, chat_id)
            terms = _terms(session, row.id) if row else []
        else:
            terms = parsed.found
        unknown = _unknown(parsed.unknown) if parsed else []
        if parsed is not None and not terms:
            return LatestResult([], [], unknown, False)
        found = store.latest_articles(
            session, countries=[t.value for t in terms if t.kind == COUNTRY],
            sections=[t.value for t in terms if t.kind == SECTION], limit=limit)
    return LatestResult(found, sort_terms(terms), unknown, parsed is None)


def recent_counts(engine: Engine, kind: str, *, today: date | None = None,
                  days: int = RECENT_DAYS) -> list[tuple[str, int]]:
    """(name, articles published in the last `days` days), most first."""
    since = (today or utcnow().date()) - timedelta(days=days)
    with session_scope(engine) as session:
        return store.tag_counts(session, kind, since)


def section_counts(engine: Engine, *, today: date | None = None) -> list[tuple[str, int]]:
    """Every catalog section with its recent count, in catalog order (zero counts included)."""
    counts = dict(recent_counts(engine, SECTION, today=today))
    return [(name, counts.get(name, 0)) for name in catalog.sections()]


def popular_countries(engine: Engine, *, limit: int = 8, today: date | None = None) -> list[str]:
    """Countries with the most recent articles, topped up from a fixed list on a fresh install."""
    names = [name for name, _ in recent_counts(engine, COUNTRY, today=today)
             if catalog.lookup_country(name) == name][:limit]
    for name in POPULAR_FALLBACK:
        if len(names) >= limit:
            break
        if name not in names:
            names.append(name)
    return names


# ----------------------------------------------------------------------------- admin


def _day_start(now: datetime) -> datetime:
    return datetime(now.year, now.month, now.day, tzinfo=UTC)


def stats(engine: Engine, *, now: datetime | None = None, top: int = 5) -> Stats:
    """Numbers for /stats: readers by channel and state, what they follow, sources, today's sends."""
    now = (now or utcnow()).astimezone(UTC)
    today = _day_start(now)
    with session_scope(engine) as session:
        follows = select(Subscription.subscriber_id).distinct()
        tg = col(Subscriber.telegram_chat_id).is_not(None)
        blocked = col(Subscriber.telegram_blocked_at).is_not(None)

        def count(*where) -> int:
            return int(session.exec(select(func.count()).select_from(Subscriber).where(*where)).one())

        running = col(Subscriber.paused).is_(False)
        telegram = {
            "active": count(tg, ~blocked, running, col(Subscriber.id).in_(follows)),
            "paused": count(tg, ~blocked, col(Subscriber.paused).is_(True)),
            "blocked": count(tg, blocked),
            "idle": count(tg, ~blocked, running, col(Subscriber.id).not_in(follows)),
        }
        email = {status: int(n) for status, n in session.exec(
            select(Subscriber.email_status, func.count()).where(col(Subscriber.email).is_not(None))
            .group_by(Subscriber.email_status))}

        def top_values(kind: str) -> list[tuple[str, int]]:
            rows = session.exec(
                select(Subscription.value, func.count()).where(Subscription.kind == kind)
                .group_by(Subscription.value).order_by(func.count().desc(), Subscription.value).limit(top))
            return [(value, int(n)) for value, n in rows]

        sources = [SourceLine(s.name, s.enabled, s.last_success_at, s.last_error, s.error_count,
                              s.last_new_articles)
                   for s in store.list_sources(session)]
        sent = outbox.sent_since(session, today)
        failed = outbox.dead_since(session, today)
        retrying = int(session.exec(select(func.count()).select_from(Outbox).where(
            col(Outbox.state).in_(("queued", "failed")), Outbox.attempts > 0)).one())
        return Stats(telegram, email, top_values(COUNTRY), top_values(SECTION), sources, sent, failed,
                     retrying, store.count_articles(session), events.counts_since(session, today))
