"""Logging: one line per event, plain or JSON (LOG_JSON) for log shippers."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

from digests.config import Settings

# uvicorn adds `color_message` (the message with ANSI colours) to its records: noise in JSON.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


# Bearer secrets that libraries put in the lines they log (python-telegram-bot logs its API URL,
# which holds the bot token, and every update at DEBUG; a link with ?token= is a reader's key).
# Whatever logs it, the line that leaves the process carries none of them.
_SECRETS = (
    (re.compile(r"(/bot|/file/bot)\d+:[\w-]+"), r"\1<bot token>"),
    (re.compile(r"([?&;]token=)[^\s&#\"'<>]+"), r"\1<token>"),
    # A reader's email code, as python-telegram-bot logs the incoming update at DEBUG.
    (re.compile(r"(/verify(?:@\w+)?\s+)[^\s'\"\\]+"), r"\1<code>"),
)


def redact(line: str) -> str:
    """`line` without bot tokens or link tokens."""
    for pattern, replacement in _SECRETS:
        line = pattern.sub(replacement, line)
    return line


class _Redacting(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        # Anything passed as `extra=` becomes a field, so events stay machine-readable.
        payload.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(payload, default=str, ensure_ascii=False))


def configure(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(_Redacting("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    # httpx logs every request at INFO, and alembic says "Context impl SQLiteImpl" on every command
    # even with nothing to migrate: both drown the events that matter. Migrations applied are still
    # logged (alembic.runtime.migration "Running upgrade …") at DEBUG and by db.upgrade itself.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if root.level > logging.DEBUG:
        logging.getLogger("alembic").setLevel(logging.WARNING)
