"""Settings: the only reader of the environment and `.env`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = PROJECT_ROOT / "templates"
SAMPLE_LISTING = Path(__file__).resolve().parent / "samples" / "production-belgium.txt"


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

    # Web (confirm / unsubscribe / preferences)
    public_base_url: str = ""
    web_host: str = "127.0.0.1"
    web_port: int = 8000
    secret_key: str = "change-me"

    # Ingest
    # A float so tests and benches can ingest every few seconds (0.05 = 3 s).
    ingest_every_minutes: float = 30
    http_timeout: float = 20.0
    http_retries: int = 3
    http_backoff: float = 1.0
    http_user_agent: str = "ClapperBot/0.1 (+https://github.com/clapper-news/clapper)"
    listing_max_pages: int = 3

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

    @property
    def telegram_enabled(self) -> bool:
        return bool(self.telegram_bot_token)

    @property
    def email_enabled(self) -> bool:
        return bool(self.smtp_host)

    def secret(self) -> str:
        """The signing key; refuses the placeholder once the app is reachable from outside."""
        if self.public_base_url and self.secret_key == "change-me":
            raise ValueError("SECRET_KEY must be set to a random value when PUBLIC_BASE_URL is set")
        return self.secret_key


@lru_cache
def get_settings() -> Settings:
    return Settings()
