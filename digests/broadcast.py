"""Admin broadcasts: draft, preview, queue one outbox row per recipient, progress, cancel.

The delivery worker sends announcements like digests (same outbox, same rate limits); this module
only decides who gets what, and reads progress back from the outbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup
from sqlalchemy import func, insert, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from digests import emails, telegram_html, tokens
from digests.config import Settings
from digests.db import session_scope
from digests.models import Announcement, Outbox, Subscriber, utcnow

CHANNELS = {"telegram": ("telegram",), "email": ("email",), "both": ("telegram", "email")}
# Stand-ins for the per-reader links: the email is rendered and inlined once, then each copy
# gets its own signed links by plain string replacement (2,000 renders would take seconds).
_UNSUBSCRIBE_MARK = "https://clapper.invalid/__unsubscribe__"
_PREFERENCES_MARK = "https://clapper.invalid/__preferences__"
_CHUNK = 1000


class BroadcastError(ValueError):
    def __init__(self, reason: str, problems: list[str] | None = None) -> None:
        super().__init__("; ".join(problems or [reason]))
        self.reason = reason
        self.problems = problems or []


@dataclass(frozen=True)
class Preview:
    telegram: str
    email: emails.RenderedEmail
    characters: int


@dataclass(frozen=True)
class Progress:
    announcement_id: int
    state: str
    channels: str
    queued: int = 0  # not sent yet (waiting or being sent)
    sent: int = 0
    failed: int = 0
    cancelled: int = 0

    @property
    def total(self) -> int:
        return self.queued + self.sent + self.failed + self.cancelled

    @property
    def finished(self) -> bool:
        return self.state in ("done", "cancelled") and self.queued == 0


def parse_channels(text: str) -> str:
    """'telegram', 'email', 'telegram,email' or 'both' -> telegram | email | both."""
    parts = {p.strip().lower() for p in text.replace("+", ",").split(",") if p.strip()}
    if parts == {"both"} or parts == {"telegram", "email"}:
        return "both"
    if len(parts) == 1 and parts <= {"telegram", "email"}:
        return parts.pop()
    raise BroadcastError("bad_channels", [f"channels must be telegram, email or both, not {text!r}"])


# ---- rendering (pure) ------------------------------------------------------------------------------


def prepare(text: str) -> str:
    """The announcement body as Telegram HTML, or BroadcastError listing what Telegram would refuse."""
    if not text.strip():
        raise BroadcastError("empty", ["the message is empty"])
    body, problems = telegram_html.from_admin(text)
    if problems:
        raise BroadcastError("invalid_html", problems)
    rendered = render_telegram(body)
    problems = telegram_html.check(rendered)
    if problems:
        raise BroadcastError("invalid_html", problems)
    return body


def render_telegram(body: str) -> str:
    return emails.render("telegram/announcement.html.j2", body=Markup(body)).strip()


def render_email(
    body: str, *, unsubscribe_url: str | None, preferences_url: str | None
) -> emails.RenderedEmail:
    text = telegram_html.to_plain(body).strip()
    # The subject shows what the reader sees, without the link addresses the text version adds.
    seen = telegram_html.visible_text(body)
    first_line = next((line.strip() for line in seen.splitlines() if line.strip()), "")
    return emails.render_email(
        "announcement",
        body_html=Markup(telegram_html.to_email_html(body)),
        body_text=text,
        first_line=first_line if len(first_line) <= 70 else first_line[:69].rstrip() + "…",
        unsubscribe_url=unsubscribe_url,
        preferences_url=preferences_url,
    )


def preview(settings: Settings, body: str) -> Preview:
    has_web = bool(settings.public_base_url)
    mail = render_email(
        body,
        unsubscribe_url=_UNSUBSCRIBE_MARK if has_web else None,
        preferences_url=_PREFERENCES_MARK if has_web else None,
    )
    # Each reader gets their own signed links; the preview says so instead of showing stand-ins.
    shown = emails.RenderedEmail(
        mail.subject,
        mail.html.replace(_UNSUBSCRIBE_MARK, "#unsubscribe").replace(_PREFERENCES_MARK, "#preferences"),
        mail.text.replace(_UNSUBSCRIBE_MARK, "(personal link)").replace(_PREFERENCES_MARK, "(personal link)"),
    )
    tg = render_telegram(body)
    return Preview(tg, shown, len(telegram_html.visible_text(tg)))


# ---- drafts and queueing ------------------------------------------------------------------------


def create_draft(
    session: Session, *, text: str, created_by: int | None = None, admin_chat_id: int | None = None
) -> Announcement:
    announcement = Announcement(
        body=prepare(text), state="draft", created_by=created_by, admin_chat_id=admin_chat_id
    )
    session.add(announcement)
    session.flush()
    return announcement


def _recipients(session: Session, channel: str) -> list[tuple[int, str]]:
    """Who gets an announcement: paused readers too; blocked, unsubscribed, bounced, unconfirmed not."""
    if channel == "telegram":
        rows = session.exec(
            select(Subscriber.id, Subscriber.telegram_chat_id)
            .where(Subscriber.telegram_chat_id.is_not(None), Subscriber.telegram_blocked_at.is_(None))
            .order_by(Subscriber.id)
        ).all()
        return [(sid, str(chat)) for sid, chat in rows]
    rows = session.exec(
        select(Subscriber.id, Subscriber.email)
        .where(Subscriber.email.is_not(None), Subscriber.email_status == "confirmed")
        .order_by(Subscriber.id)
    ).all()
    return [(sid, address) for sid, address in rows]


def recipient_counts(session: Session) -> dict[str, int]:
    """How many readers each channel would reach now."""
    return {channel: len(_recipients(session, channel)) for channel in ("telegram", "email")}


def _links(settings: Settings, subscriber_id: int, address: str) -> tuple[str | None, str | None]:
    reader = tokens.Recipient(subscriber_id, address)
    return tokens.link(settings, reader, "unsubscribe"), tokens.link(settings, reader, "preferences")


def queue(
    engine: Engine,
    settings: Settings,
    announcement_id: int,
    *,
    channels: str,
    admin_message_id: int | None = None,
    now: datetime | None = None,
) -> Progress:
    """Store the choice of channels and queue one row per recipient, in one transaction.

    Only a draft can be queued, so a double tap on "Send" queues once.
    """
    now = now or utcnow()
    if channels not in CHANNELS:
        raise BroadcastError("bad_channels", [f"unknown channels {channels!r}"])
    with session_scope(engine) as session:
        claimed = session.execute(
            update(Announcement)
            .where(Announcement.id == announcement_id, Announcement.state == "draft")
            .values(state="queued", channels=channels, queued_at=now)
        )
        if claimed.rowcount != 1:
            raise BroadcastError("not_draft", ["this announcement was already sent or cancelled"])
        if admin_message_id is not None:
            session.execute(
                update(Announcement)
                .where(Announcement.id == announcement_id)
                .values(admin_message_id=admin_message_id)
            )
        body = session.exec(select(Announcement.body).where(Announcement.id == announcement_id)).one()
        key = f"announcement:{announcement_id}"
        common = {
            "digest_key": key,
            "announcement_id": announcement_id,
            "state": "queued",
            "attempts": 0,
            "article_count": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        rows: list[dict] = []
        if "telegram" in CHANNELS[channels]:
            text = render_telegram(body)
            for sid, chat in _recipients(session, "telegram"):
                rows.append(
                    common
                    | {
                        "subscriber_id": sid,
                        "channel": "telegram",
                        "recipient": chat,
                        "subject": "",
                        "body": text,
                        "body_text": None,
                        "template": "telegram/announcement.html.j2",
                    }
                )
        if "email" in CHANNELS[channels]:
            has_web = bool(settings.public_base_url)
            mail = render_email(
                body,
                unsubscribe_url=_UNSUBSCRIBE_MARK if has_web else None,
                preferences_url=_PREFERENCES_MARK if has_web else None,
            )
            for sid, address in _recipients(session, "email"):
                unsub, prefs = _links(settings, sid, address)
                html, text = mail.html, mail.text
                if has_web:
                    html = html.replace(_UNSUBSCRIBE_MARK, unsub).replace(_PREFERENCES_MARK, prefs)
                    text = text.replace(_UNSUBSCRIBE_MARK, unsub).replace(_PREFERENCES_MARK, prefs)
                rows.append(
                    common
                    | {
                        "subscriber_id": sid,
                        "channel": "email",
                        "recipient": address,
                        "subject": mail.subject,
                        "body": html,
                        "body_text": text,
                        "template": "email/announcement",
                    }
                )
        for start in range(0, len(rows), _CHUNK):
            # One multi-row INSERT per chunk: 2,000 rows in well under a second on both databases.
            session.execute(insert(Outbox), rows[start : start + _CHUNK])
        if not rows:
            session.execute(
                update(Announcement).where(Announcement.id == announcement_id).values(state="done")
            )
    with session_scope(engine) as session:
        return progress(session, announcement_id)


def progress(session: Session, announcement_id: int) -> Progress:
    """Counts from the outbox; an announcement with nothing left to send becomes 'done'."""
    announcement = session.get(Announcement, announcement_id)
    if announcement is None:
        raise BroadcastError("unknown", [f"no announcement {announcement_id}"])
    counts = dict(
        session.exec(
            select(Outbox.state, func.count())
            .where(Outbox.announcement_id == announcement_id)
            .group_by(Outbox.state)
        ).all()
    )
    result = _progress_from(announcement, counts)
    if announcement.state == "queued" and result.queued == 0:
        announcement.state = "done"
        session.add(announcement)
        result = _progress_from(announcement, counts)
    return result


def _progress_from(announcement: Announcement, counts: dict[str, int]) -> Progress:
    return Progress(
        announcement_id=announcement.id,
        state=announcement.state,
        channels=announcement.channels,
        queued=int(counts.get("queued", 0) + counts.get("sending", 0)),
        sent=int(counts.get("sent", 0)),
        failed=int(counts.get("failed", 0) + counts.get("dead", 0)),
        cancelled=int(counts.get("cancelled", 0)),
    )


def cancel(engine: Engine, announcement_id: int, *, now: datetime | None = None) -> Progress:
    """Withdraw what is still queued; what was sent (or is being sent right now) is reported."""
    now = now or utcnow()
    with session_scope(engine) as session:
        announcement = session.get(Announcement, announcement_id)
        if announcement is None:
            raise BroadcastError("unknown", [f"no announcement {announcement_id}"])
        if announcement.state in ("draft", "queued"):
            announcement.state = "cancelled"
            announcement.cancelled_at = now
            session.add(announcement)
            # Rows a worker holds ('sending') finish; the worker's claim skips cancelled ones.
            session.execute(
                update(Outbox)
                .where(Outbox.announcement_id == announcement_id, Outbox.state == "queued")
                .values(state="cancelled", last_error="announcement cancelled")
            )
    with session_scope(engine) as session:
        return progress(session, announcement_id)


def discard(engine: Engine, announcement_id: int, *, now: datetime | None = None) -> None:
    """Drop a draft; an announcement already queued is left alone (that is `cancel`)."""
    with session_scope(engine) as session:
        result = session.execute(
            update(Announcement)
            .where(Announcement.id == announcement_id, Announcement.state == "draft")
            .values(state="cancelled", cancelled_at=now or utcnow())
        )
    if result.rowcount != 1:
        raise BroadcastError("not_draft", ["this announcement was already sent or cancelled"])


def get(session: Session, announcement_id: int) -> Announcement | None:
    return session.get(Announcement, announcement_id)


def history(session: Session, *, limit: int = 10) -> list[tuple[Announcement, Progress]]:
    """The latest announcements that were queued or cancelled, newest first, with their counts."""
    announcements = session.exec(
        select(Announcement)
        .where(Announcement.state != "draft")
        .order_by(Announcement.id.desc())
        .limit(limit)
    ).all()
    ids = [a.id for a in announcements]
    counts: dict[int, dict[str, int]] = {i: {} for i in ids}
    if ids:
        for aid, state, n in session.exec(
            select(Outbox.announcement_id, Outbox.state, func.count())
            .where(Outbox.announcement_id.in_(ids))
            .group_by(Outbox.announcement_id, Outbox.state)
        ).all():
            counts[aid][state] = n
    return [(a, _progress_from(a, counts[a.id])) for a in announcements]
