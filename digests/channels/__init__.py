"""Senders: deliver one outbox row over one channel and say what happened, never touching the database.

The delivery worker turns each Outcome into an outbox transition (digests.deliver).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["sent", "retry", "dead", "blocked", "bounced", "cancelled", "requeue"]


@dataclass(frozen=True)
class Outcome:
    """What became of one message.

    sent      delivered (new_chat_id set when it went to a migrated group's new id)
    retry     a failure worth another attempt later (counts towards DELIVERY_MAX_ATTEMPTS)
    dead      will never succeed (a template bug, a permanent refusal); error kept
    blocked   the chat blocked the bot, left, or was deleted: stop writing to it
    bounced   the mail server refused the address permanently: stop mailing it
    cancelled not attempted: an earlier message showed the destination is gone (blocked/bounced)
    requeue   not attempted, or the other side is down: back to the queue after `delay`
              without counting an attempt (nothing is lost while a server is away)
    """

    status: Status
    error: str | None = None
    delay: float = 0.0
    new_chat_id: int | None = None


SENT = Outcome("sent")
