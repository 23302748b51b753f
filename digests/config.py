"""Settings: the only reader of the environment and `.env`."""

from __future__ import annotations

import re
from email.utils import getaddresses
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = PROJECT_ROOT / "templates"
SAMPLE_LISTING = Path(__file__).resolve().parent / "samples" / "production-belgium.txt"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_URL_UNSAFE = re.compile(r"[\s<>\"',]")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: str = "sqlite:///clapper.db"
    log_level: str = "INFO"
    log_json: bool = False

    # Telegram
    telegram_bot_token: str = ""
    telegram_api_base_url: str = "https://api.telegram.org/bot"
    telegram_api_file_url: str = "https://api.telegram.org/file/bot"
    telegram_webhook_url: str = ""
    telegram_webhook_listen: str = "0.0.0.0"
    telegram_webhook_port: int = 8443
    telegram_max_rate: float = 25.0
    telegram_per_chat_interval: float = 1.0
    admin_telegram_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    max_subscriptions: int = 100
    # Phrases ("Lukas Dhont") one reader may follow besides countries and sections.
    max_follows: int = 30
    # Seconds between two edits of an admin's broadcast progress message.
    broadcast_progress_seconds: float = 5.0

    # Email
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_security: Literal["none", "starttls", "tls"] = "none"
    smtp_timeout: float = 30.0
    smtp_connections: int = 3
    # The server offers SMTPUTF8: only then are non-ASCII local parts accepted at sign-up.
    smtp_utf8: bool = False
    mail_from: str = "Clapper <clapper@localhost>"
    email_max_articles: int = 50

    # Newsletter authentication and inbound mail (bounces, complaints, mailed unsubscribes)
    dkim_domain: str = ""
    dkim_selector: str = ""
    dkim_private_key_file: str = ""
    bounce_domain: str = ""
    inbound_host: str = "127.0.0.1"
    # 0: `clapper run` starts no inbound listener (an MTA may pipe to `clapper inbound --file -`).
    inbound_port: int = 0

    # Web (confirm / unsubscribe / preferences)
    public_base_url: str = ""
    web_host: str = "127.0.0.1"
    web_port: int = 8000
    # Unset: generated beside a SQLite database, refused with PostgreSQL (digests/secrets_rule.py).
    secret_key: str = ""
    # The public /subscribe form: sign-ups allowed per client IP per hour and per address per day.
    signup_per_ip_per_hour: int = 5
    signup_per_address_per_day: int = 3

    # Ingest
    # A float so tests and benches can ingest every few seconds (0.05 = 3 s).
    ingest_every_minutes: float = 30
    http_timeout: float = 20.0
    http_retries: int = 3
    http_backoff: float = 1.0
    http_user_agent: str = "ClapperBot/0.1 (+https://github.com/clapper-news/clapper)"
    listing_max_pages: int = 3
    http_max_bytes: int = 10 * 1024 * 1024
    summary_max_chars: int = 1000

    # Digests
    default_timezone: str = "Europe/Brussels"
    default_delivery_time: str = "08:00"
    send_empty_digests: bool = False
    delivery_max_attempts: int = 8
    # Exponential backoff after a failed send: base * 2**(attempts-1), capped.
    delivery_retry_base: float = 30.0
    delivery_retry_max: float = 6 * 3600.0
    # A row left 'sending' this long by a worker that died goes back to the queue.
    delivery_claim_timeout: float = 300.0
    # Rows one worker claims at a time.
    delivery_batch_size: int = 200
    # Seconds between two heartbeats of a worker; silent for 3 of them, it is dead and its claims
    # go back to the queue (15 s by default). Also how often the Telegram rate is re-shared.
    delivery_heartbeat_seconds: float = 5.0
    # With both Telegram and email on, `clapper deliver` and `clapper run` send each channel from a
    # process of its own (digests.lane_processes), so neither takes CPU from the other.
    delivery_lane_processes: bool = True
    # Emails sent are settled in one commit per this many (or per EMAIL_SETTLE_SECONDS): a crash can
    # repeat up to 2 x (this + SMTP_CONNECTIONS), see digests.deliver._SentBuffer.
    email_settle_batch: int = 25
    email_settle_seconds: float = 0.2

    # Service health (`clapper status` exits non-zero past these)
    status_max_queue_age_minutes: float = 30
    status_max_ingest_intervals: int = 3

    @field_validator("admin_telegram_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        # Operators write "123, 456" in .env; JSON lists are accepted too.
        if isinstance(value, str):
            value = value.strip()
            if value.startswith("["):
                import json

                return json.loads(value)
            return [int(part) for part in value.replace(";", ",").split(",") if part.strip()]
        return value

    # Values that end up in email headers (From, Message-ID, List-Id, List-Unsubscribe) or HTTP
    # headers (User-Agent): a line break there is header injection, or a crash at send time.
    @field_validator("mail_from", "public_base_url", "telegram_webhook_url", "http_user_agent")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if _CONTROL.search(value):
            raise ValueError("must be one line without control characters (CR, LF, tab…)")
        return value.strip()

    @field_validator("mail_from")
    @classmethod
    def _sender(cls, value: str) -> str:
        found = getaddresses([value])
        address = found[0][1] if len(found) == 1 else ""
        local, at, domain = address.rpartition("@")
        if not (at and local and domain) or not address.isascii() or any(c in address for c in ' <>,;"'):
            raise ValueError(f"is not an address like 'Clapper <news@example.org>': {value!r}")
        return value

    @field_validator("public_base_url", "telegram_webhook_url")
    @classmethod
    def _web_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if value and (parts.scheme not in ("http", "https") or not parts.netloc or _URL_UNSAFE.search(value)):
            raise ValueError(f"must be an http(s) URL like https://news.example.org: {value!r}")
        return value

    @property
    def telegram_enabled(self) -> bool:
        return bool(self.telegram_bot_token)

    @property
    def email_enabled(self) -> bool:
        return bool(self.smtp_host)

    @property
    def dkim_enabled(self) -> bool:
        return bool(self.dkim_domain and self.dkim_selector and self.dkim_private_key_file)

    def secret(self) -> str:
        """The key every token and secret is derived from, or secrets_rule.WeakSecret (a ValueError)."""
        from digests import secrets_rule

        return secrets_rule.resolve(self.secret_key, self.database_url)


def settings_problem(exc: ValidationError) -> str:
    """One line naming each refused setting as the operator wrote it (MAIL_FROM: …)."""
    problems = []
    for error in exc.errors():
        name = str(error["loc"][0]).upper() if error.get("loc") else "settings"
        problems.append(f"{name} {error['msg'].removeprefix('Value error, ')}")
    return "Refused settings: " + "; ".join(problems)


@lru_cache
def get_settings() -> Settings:
    return Settings()
