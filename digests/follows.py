"""Followed phrases ("Lukas Dhont"): the use cases behind /follow, /unfollow, the web field and import.

Functions work on a subscriber id (email readers) or a Telegram chat (the `*_chat` wrappers create
the chat's row as /subscribe does). Each opens its own transaction and returns plain values.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from digests import catalog, phrases, search, store
from digests.catalog import Term
from digests.config import Settings
from digests.db import session_scope
from digests.models import Follow, utcnow
from digests.subscriptions import Chat, _find, _get_or_create

DRY_RUN_DAYS = 30
ALL_WORDS = {"all", "everything", "*"}


@dataclass(frozen=True, slots=True)
class Followed:
    id: int
    phrase: str


@dataclass(slots=True)
class FollowResult:
    """What /follow did. `status`: added | already | over_limit | invalid | is_term."""

    status: str
    phrase: str
    problem: str | None = None  # invalid: short | long | no_words
    term: Term | None = None  # is_term: the country or section to subscribe to instead
    suggestions: list[Term] = field(default_factory=list)  # known names it may be a typo of
    recent: int = 0  # articles in the last DRY_RUN_DAYS days it would have brought
    latest: store.ArticleView | None = None
    days: int = DRY_RUN_DAYS
    total: int = 0
    limit: int = 0


@dataclass(slots=True)
class UnfollowResult:
    removed: list[str] = field(default_factory=list)
    not_followed: list[str] = field(default_factory=list)
    total: int = 0


def _rows(session: Session, subscriber_id: int) -> list[Follow]:
    return list(session.exec(select(Follow).where(Follow.subscriber_id == subscriber_id)
                             .order_by(col(Follow.created_at), col(Follow.id))))


def _dry_run(session: Session, result: FollowResult, today: date | None) -> None:
    since = (today or utcnow().date()) - timedelta(days=DRY_RUN_DAYS)
    found = search.search(session, result.phrase, since=since, limit=1, count=True)
    result.recent = found.count
    result.latest = found.articles[0] if found.articles else None


def follow(engine: Engine, settings: Settings, subscriber_id: int, text: str, *,
           today: date | None = None) -> FollowResult:
    """Follow one phrase; a country or section name is handed back as `is_term` instead."""
    phrase = phrases.clean(text)
    result = FollowResult("invalid", phrase[:phrases.MAX_CHARS + 1], limit=settings.max_follows)
    result.problem = phrases.problem(phrase)
    if result.problem:
        return result
    term = catalog.resolve(phrase)
    if term is not None:
        result.status, result.term = "is_term", term
        return result
    result.suggestions = catalog.suggest(phrase)
    with session_scope(engine) as session:
        have = _rows(session, subscriber_id)
        result.total = len(have)
        k = phrases.key(phrase)
        if any(r.key == k for r in have):
            result.status = "already"
        elif len(have) >= settings.max_follows:
            result.status = "over_limit"
        else:
            session.add(Follow(subscriber_id=subscriber_id, phrase=phrase, key=k))
            result.status = "added"
            result.total += 1
        _dry_run(session, result, today)
    return result


def unfollow(engine: Engine, subscriber_id: int, text: str) -> UnfollowResult:
    """Stop following one phrase (by the same rule: `lukas dhont` removes "Lukas Dhont"), or all."""
    result = UnfollowResult()
    phrase = phrases.clean(text)
    with session_scope(engine) as session:
        have = _rows(session, subscriber_id)
        if phrase.casefold() in ALL_WORDS:
            gone = have
        else:
            k = phrases.key(phrase)
            gone = [r for r in have if r.key == k]
            if not gone:
                result.not_followed.append(phrase)
        for row in gone:
            result.removed.append(row.phrase)
            session.delete(row)
        result.total = len(have) - len(gone)
    return result


def remove(engine: Engine, subscriber_id: int, follow_id: int) -> str | None:
    """Remove one follow by id (a /list button); its phrase, or None when it was not theirs."""
    with session_scope(engine) as session:
        row = session.get(Follow, follow_id)
        if row is None or row.subscriber_id != subscriber_id:
            return None
        session.delete(row)
        return row.phrase


def listed(engine: Engine, subscriber_id: int | None) -> list[Followed]:
    if subscriber_id is None:
        return []
    with session_scope(engine) as session:
        return [Followed(r.id, r.phrase) for r in _rows(session, subscriber_id)]


def parse_list(text: str) -> list[str]:
    """Phrases from a form field or an import cell: one per line or separated by semicolons."""
    found: list[str] = []
    for line in text.replace(";", "\n").splitlines():
        phrase = phrases.clean(line)
        if phrase and phrases.key(phrase) not in {phrases.key(p) for p in found}:
            found.append(phrase)
    return found


def check_list(items: Sequence[str], limit: int | None) -> tuple[str, str] | None:
    """(problem, phrase) for the first phrase that cannot be followed, or ('too_many', '')."""
    if limit is not None and len(items) > limit:
        return "too_many", ""
    for phrase in items:
        problem = phrases.problem(phrase)
        if problem:
            return problem, phrase[:phrases.MAX_CHARS + 1]
    return None


def replace_all(session: Session, subscriber_id: int, items: Iterable[str]) -> None:
    """Make the reader's phrases exactly `items` (checked already), keeping the rows that stay."""
    wanted = {phrases.key(p): p for p in items}
    for row in _rows(session, subscriber_id):
        if row.key in wanted:
            wanted.pop(row.key)
        else:
            session.delete(row)
    for k, phrase in wanted.items():
        session.add(Follow(subscriber_id=subscriber_id, phrase=phrase, key=k))


def load(session: Session, subscriber_ids: Sequence[int]) -> dict[int, list[tuple[str, str]]]:
    """subscriber id -> (key, phrase) pairs, oldest first, for the given readers (bulk)."""
    result: dict[int, list[tuple[str, str]]] = defaultdict(list)
    ids = sorted(set(subscriber_ids))
    for start in range(0, len(ids), 900):
        rows = session.exec(select(Follow.subscriber_id, Follow.key, Follow.phrase)
                            .where(col(Follow.subscriber_id).in_(ids[start:start + 900]))
                            .order_by(col(Follow.subscriber_id), col(Follow.id)))
        for sid, k, phrase in rows:
            result[sid].append((k, phrase))
    return dict(result)


def delete_all(session: Session, subscriber_id: int) -> None:
    session.execute(delete(Follow).where(col(Follow.subscriber_id) == subscriber_id))


# ----------------------------------------------------------------------------- Telegram chats


def follow_chat(engine: Engine, settings: Settings, chat: Chat, text: str, *,
                today: date | None = None) -> FollowResult:
    phrase = phrases.clean(text)
    if phrases.problem(phrase) or catalog.resolve(phrase) is not None:
        return follow(engine, settings, 0, text, today=today)  # refused before touching the chat
    with session_scope(engine) as session:
        row, _ = _get_or_create(session, settings, chat)
        row.telegram_blocked_at = None
        subscriber_id = row.id
    return follow(engine, settings, subscriber_id, text, today=today)


def chat_subscriber(engine: Engine, chat_id: int) -> int | None:
    with session_scope(engine) as session:
        row = _find(session, chat_id)
        return row.id if row else None


def unfollow_chat(engine: Engine, chat_id: int, text: str) -> UnfollowResult:
    subscriber_id = chat_subscriber(engine, chat_id)
    if subscriber_id is None:
        return UnfollowResult(not_followed=[phrases.clean(text)])
    return unfollow(engine, subscriber_id, text)


def listed_chat(engine: Engine, chat_id: int) -> list[Followed]:
    return listed(engine, chat_subscriber(engine, chat_id))
