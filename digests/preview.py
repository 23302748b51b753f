"""Preview a subscriber's next digest without queueing it: for `clapper digests preview` and the demo."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import select

from digests import emails, queue
from digests.compose import Composer
from digests.config import Settings
from digests.db import session_scope
from digests.models import Outbox, Subscriber


def _stored_form(address: str) -> str:
    """`address` as sign-up stored it (an internationalised domain IDNA-encoded), when valid."""
    try:
        return emails.normalize_address(address, smtputf8=True)
    except emails.EmailError:
        return address.strip().lower()


def preview(
    engine: Engine,
    settings: Settings,
    *,
    now: datetime,
    chat_id: int | None = None,
    email: str | None = None,
) -> tuple[Subscriber | None, list[Outbox]]:
    """The rows the next digest would queue for one chat or address, written nowhere.

    Ignores due times, pauses and blocks, and shows "nothing new" rather than nothing.
    """
    with session_scope(engine) as session:
        query = select(Subscriber)
        if chat_id is not None:
            query = query.where(Subscriber.telegram_chat_id == chat_id)
        else:
            query = query.where(Subscriber.email == _stored_form(email or ""))
        found = session.exec(query).first()
        if found is None:
            return None, []
        channel = "telegram" if chat_id is not None else "email"
        planned = queue.plan(
            session,
            settings,
            now=now,
            composer=Composer.for_settings(settings),
            subscriber_ids=[found.id],
            force=True,
            preview=True,
        )
    rows = [
        row for item in planned if item.channel == channel for row in queue.messages(item, settings, now=now)
    ]
    return found, rows


def write_files(rows: list[Outbox], settings: Settings, out: Path, *, stem: str = "digest") -> list[Path]:
    """Telegram parts as .html; an email as .html, .txt and a multipart/alternative .eml."""
    from digests.channels.email import message_for_row

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    telegram = [r for r in rows if r.channel == "telegram"]
    for number, row in enumerate(telegram, start=1):
        suffix = f"-{number}" if len(telegram) > 1 else ""
        path = out / f"{stem}-telegram{suffix}.html"
        path.write_text(row.body + "\n", encoding="utf-8")
        written.append(path)
    for row in (r for r in rows if r.channel == "email"):
        for path, content in (
            (out / f"{stem}-email.html", row.body),
            (out / f"{stem}-email.txt", row.body_text or ""),
        ):
            path.write_text(content, encoding="utf-8")
            written.append(path)
        eml = out / f"{stem}.eml"
        eml.write_bytes(bytes(message_for_row(settings, row)))
        written.append(eml)
    return written
