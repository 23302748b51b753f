"""Counting what `clapper inbound` read, for `clapper status` and /stats (no mail parsing loaded)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, select

from digests.models import InboundEvent


def counts_since(session: Session, since: datetime) -> dict[str, int]:
    """Inbound messages by kind (hard_bounce, complaint, forged...) since `since`."""
    rows = session.exec(
        select(InboundEvent.kind, func.count())
        .where(InboundEvent.created_at >= since)
        .group_by(InboundEvent.kind)
    ).all()
    return {kind: int(n) for kind, n in sorted(rows)}
