"""Shared email renderings: a fan-out's digest stored once, each reader's links put in at send time.

The queue (digests.queue) stores one EmailRendering per distinct composed digest and gives each
reader's outbox row only its links; `resolve` turns such rows back into complete bodies, exactly
what `EmailDigest.personalise` gives, for the sender, the /view page and the CLI.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import insert
from sqlmodel import Session, col, select

from digests.compose import EmailDigest
from digests.models import EmailRendering, Outbox, utcnow

LINKS = ("unsubscribe", "preferences", "view")


def store(session: Session, digest: EmailDigest) -> int:
    """Store the shared digest (placeholders in place of the personal links); its id."""
    values = {
        "subject": digest.subject,
        "html": digest.html,
        "text": digest.text,
        "template": digest.template,
        "article_count": digest.article_count,
        "created_at": utcnow(),
    }
    return session.connection().execute(
        insert(EmailRendering).values(values).returning(EmailRendering.id)
    ).scalar_one()


def links(unsubscribe: str | None, preferences: str | None, view: str | None) -> str:
    return json.dumps(dict(zip(LINKS, (unsubscribe, preferences, view), strict=True)))


def personal(rendering: EmailRendering, row_links: str | None) -> tuple[str, str]:
    """(html, text) of `rendering` with one reader's links, as the queue would have written them."""
    found = json.loads(row_links or "{}")
    digest = EmailDigest(
        rendering.subject, rendering.html, rendering.text, rendering.template, rendering.article_count
    )
    mail = digest.personalise(*(found.get(name) for name in LINKS))
    return mail.html, mail.text


def attach(session: Session, rows: Sequence) -> list:
    """Give each claimed row (digests.outbox.Claimed) that names a rendering its `rendering`.

    One query for the batch; the rows of one rendering share one object, so whoever builds
    from it (the email sender) sees the same shared text for all of them. Returns the rows whose
    rendering is gone, as `resolve` does.
    """
    wanted = {row.rendering_id for row in rows if row.rendering_id is not None}
    if not wanted:
        return []
    table = EmailRendering.__table__
    shared = {r.id: r for r in session.execute(table.select().where(table.c.id.in_(sorted(wanted))))}
    missing = []
    for row in rows:
        if row.rendering_id is not None:
            row.rendering = shared.get(row.rendering_id)
            if row.rendering is None:
                missing.append(row)
    return missing


def resolve(session: Session, rows: Sequence[Outbox]) -> list[Outbox]:
    """Fill in body and body_text of the rows that name a rendering (in memory: nothing is written).

    Rows still attached to `session` are expunged first: the filled bodies must never be flushed
    back, or the shared storage would be undone row by row. Returns the rows whose rendering is
    gone (nothing deletes one that is named, so a database edited by hand): they are left empty.
    """
    wanted = {row.rendering_id for row in rows if row.rendering_id is not None}
    if not wanted:
        return []
    for row in rows:
        if row.rendering_id is not None and row in session:
            session.expunge(row)
    query = select(EmailRendering).where(col(EmailRendering.id).in_(sorted(wanted)))
    shared = {r.id: r for r in session.exec(query)}
    missing = []
    for row in rows:
        if row.rendering_id is None:
            continue
        rendering = shared.get(row.rendering_id)
        if rendering is None:
            missing.append(row)
            continue
        row.body, row.body_text = personal(rendering, row.links)
    return missing
