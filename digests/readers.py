"""Email readers' self-service from the web: sign up, undo an unsubscribe, ask for a new
confirmation link, and the delivery schedule (time, weekday, timezone, pause).

Sign-up answers the same whatever the address's state, so the form cannot be used to learn who
subscribes; only a new or pending address gets a confirmation email (double opt-in), and a
bounced one gets nothing.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session

from digests import emails, subscriptions
from digests.config import Settings
from digests.models import Subscriber, utcnow


class RateLimiter:
    """At most `limit` events per key within `window` seconds (in memory: one web process)."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic):
        self.limit, self.window, self.clock = limit, window, clock
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        """Record one event for `key` and say whether it is within the limit."""
        now = self.clock()
        with self._lock:
            events = self._events.setdefault(key, deque())
            while events and events[0] <= now - self.window:
                events.popleft()
            if len(events) >= self.limit:
                return False
            events.append(now)
            if len(self._events) > 10_000:  # forget idle keys so memory stays bounded
                for idle in [k for k, v in self._events.items() if not v or v[-1] <= now - self.window]:
                    del self._events[idle]
            return True


@dataclass
class SignupLimits:
    per_ip: RateLimiter
    per_address: RateLimiter

    @classmethod
    def for_settings(cls, settings: Settings) -> SignupLimits:
        return cls(
            RateLimiter(settings.signup_per_ip_per_hour, 3600),
            RateLimiter(settings.signup_per_address_per_day, 24 * 3600),
        )


def sign_up(
    session: Session, settings: Settings, reader: emails.NewReader, *, now: datetime | None = None
) -> str:
    """'sent' for every address that may be mailed (a confirmation is queued when one is due),
    'quiet' when nothing is sent (already confirmed, bounced). Raises EmailError for bad input."""
    now = now or utcnow()
    if not reader.countries and not reader.sections and not reader.follows:
        raise emails.EmailError("nothing_chosen")
    existing = emails.by_address(session, reader.email)
    if existing is None:
        emails.add_reader(session, settings, reader, confirmed=False, now=now)
        return "sent"
    if existing.telegram_chat_id is not None:
        # The address belongs to a Telegram chat, whose choices the form must not overwrite: the
        # bot's /email is the way in for it.
        return "quiet"
    if existing.email_status in ("pending", "unsubscribed"):
        # Asking again is the reader's new wish: their choices replace the old ones.
        emails.set_preferences(
            session,
            existing.id,
            countries=list(reader.countries),
            sections=list(reader.sections),
            frequency=reader.frequency,
            limit=settings.max_subscriptions,
        )
        existing.email_status = "pending"
        session.add(existing)
        session.flush()
        emails._queue_confirmation(session, settings, existing, code=None, now=now)
        return "sent"
    return "quiet"


def renew_confirmation(
    session: Session, settings: Settings, subscriber_id: int, *, now: datetime | None = None
) -> Subscriber | None:
    """Queue a new confirmation link for a still-pending address; None when there is none."""
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.email is None or subscriber.email_status != "pending":
        return subscriber
    emails._queue_confirmation(session, settings, subscriber, code=None, now=now or utcnow())
    return subscriber


def undo_unsubscribe(session: Session, subscriber_id: int) -> Subscriber | None:
    """Back to confirmed, for an address that was confirmed before it unsubscribed."""
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.email is None:
        return None
    if subscriber.email_status == "unsubscribed" and subscriber.email_confirmed_at is not None:
        subscriber.email_status = "confirmed"
        session.add(subscriber)
    return subscriber


@dataclass(frozen=True)
class Schedule:
    delivery_time: str  # HH:MM local
    weekly_day: int  # 0 = Monday
    timezone: str
    paused: bool
    problems: tuple[str, ...] = field(default=())


def parse_schedule(time_text: str, weekday: str, timezone: str, paused: bool) -> Schedule:
    """The schedule fields of the preferences form; `problems` names each field that is wrong."""
    problems = []
    try:
        delivery_time = subscriptions.parse_time(time_text)
    except subscriptions.InvalidInput:
        delivery_time, problems = "", [*problems, "time"]
    day = int(weekday) if weekday.isdigit() and int(weekday) < 7 else -1
    if day < 0:
        problems.append("weekday")
    try:
        zone = subscriptions.parse_timezone(timezone)
    except subscriptions.InvalidInput:
        zone, problems = "", [*problems, "timezone"]
    return Schedule(delivery_time, day, zone, paused, tuple(problems))


def set_schedule(session: Session, subscriber_id: int, schedule: Schedule) -> Subscriber | None:
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        return None
    subscriber.delivery_time = schedule.delivery_time
    subscriber.weekly_day = schedule.weekly_day
    subscriber.timezone = schedule.timezone
    subscriber.paused = schedule.paused
    session.add(subscriber)
    return subscriber
