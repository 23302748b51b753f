"""Helpers for the delivery tests: subscribers and outbox rows written straight to the database."""

from __future__ import annotations

from sqlmodel import select

from digests import outbox
from digests.db import session_scope
from digests.models import Outbox, Subscriber


def add_subscriber(engine, *, chat_id: int | None = None, email: str | None = None, **extra) -> int:
    with session_scope(engine) as session:
        sub = Subscriber(
            telegram_chat_id=chat_id,
            email=email,
            email_status="confirmed" if email else "none",
            **extra,
        )
        session.add(sub)
        session.flush()
        return sub.id


def queue_telegram(
    engine, subscriber_id: int, chat_id: int, text: str, *, key: str = "digest:1", **extra
) -> int:
    with session_scope(engine) as session:
        row = Outbox(
            subscriber_id=subscriber_id,
            channel="telegram",
            digest_key=key,
            recipient=str(chat_id),
            body=text,
            template=extra.pop("template", "telegram/digest.html.j2"),
            **extra,
        )
        assert outbox.enqueue(session, row)
        session.flush()
        return row.id


def queue_email(
    engine, subscriber_id: int, address: str, subject: str, *, key: str = "digest:1", html=None, text=None
) -> int:
    with session_scope(engine) as session:
        row = Outbox(
            subscriber_id=subscriber_id,
            channel="email",
            digest_key=key,
            recipient=address,
            subject=subject,
            body=html or f"<p>{subject}</p>",
            body_text=text if text is not None else subject,
            template="email/digest.html.j2",
        )
        assert outbox.enqueue(session, row)
        session.flush()
        return row.id


def row(engine, row_id: int) -> Outbox:
    with session_scope(engine) as session:
        return session.get(Outbox, row_id)


def subscriber(engine, subscriber_id: int) -> Subscriber:
    with session_scope(engine) as session:
        return session.get(Subscriber, subscriber_id)


def states(engine) -> dict[int, str]:
    with session_scope(engine) as session:
        return {r.id: r.state for r in session.exec(select(Outbox)).all()}
