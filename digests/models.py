"""Every table. Datetimes are timezone-aware UTC (SQLModel's UTCDateTime); chat ids are 64-bit."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Text, UniqueConstraint, event
from sqlmodel import Field, SQLModel

from digests.phrases import search_text


def utcnow() -> datetime:
    return datetime.now(UTC)


class Source(SQLModel, table=True):
    """A listing page or feed we poll; its fetch state lives on the row."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    url: str
    kind: str = "auto"  # auto | listing | rss
    enabled: bool = True
    etag: str | None = None
    last_modified: str | None = None
    last_fetched_at: datetime | None = None
    last_success_at: datetime | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    last_error_at: datetime | None = None
    error_count: int = 0
    # Backoff for a source that keeps failing: not fetched again before this.
    next_fetch_at: datetime | None = None
    last_new_articles: int = 0
    created_at: datetime = Field(default_factory=utcnow)


class Article(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    url: str = Field(unique=True, index=True)  # canonical URL, or clapper:text/<hash> for text pages
    title: str
    summary: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    published: date = Field(index=True)
    kind: str = "article"  # article | interview
    first_seen_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow)
    source_id: int | None = Field(
        default=None, sa_column=Column(ForeignKey("source.id", ondelete="SET NULL"), nullable=True)
    )
    # Title and summary as phrases compare (digests/phrases.py): what full-text search indexes,
    # kept in step by the mapper events at the end of this module.
    search_text: str = Field(
        default="", sa_column=Column(Text, nullable=False, default="", server_default="")
    )


class ArticleTag(SQLModel, table=True):
    """A country, section or festival of an article; (kind, value) is what subscriptions match on,
    so following "Cannes" follows every edition."""

    __table_args__ = (Index("ix_articletag_kind_value", "kind", "value"),)

    article_id: int = Field(
        sa_column=Column(ForeignKey("article.id", ondelete="CASCADE"), primary_key=True)
    )
    kind: str = Field(primary_key=True)  # country | section | festival
    value: str = Field(primary_key=True)  # canonical name from the catalog
    edition: int | None = None  # festivals: the year ("Cannes 2024"); None for other kinds


class Subscriber(SQLModel, table=True):
    """A Telegram chat and/or an email address, with when they want their news."""

    # Links carry the id: on SQLite a deleted reader's id must never come back for a newcomer.
    __table_args__ = {"sqlite_autoincrement": True}

    id: int | None = Field(default=None, primary_key=True)
    telegram_chat_id: int | None = Field(
        default=None, sa_column=Column(BigInteger, unique=True, nullable=True)
    )
    chat_type: str | None = None  # private | group | supergroup
    chat_title: str | None = None
    telegram_blocked_at: datetime | None = None

    email: str | None = Field(default=None, unique=True, index=True)
    email_status: str = "none"  # none | pending | confirmed | unsubscribed | bounced
    email_code_hash: str | None = None
    email_code_expires_at: datetime | None = None
    email_code_attempts: int = 0
    email_confirmed_at: datetime | None = None
    email_frequency: str = "weekly"  # instant | daily | weekly
    email_last_digest_at: datetime | None = None

    frequency: str = "daily"  # instant | daily | weekly (the Telegram digests)
    timezone: str = "Europe/Brussels"
    delivery_time: str = "08:00"  # local HH:MM
    weekly_day: int = 0  # Monday; weekly digests come on this weekday
    paused: bool = False
    send_empty: bool = False
    # Watermark: articles first seen after this are new for the next Telegram digest.
    last_digest_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class EmailCodeLog(SQLModel, table=True):
    """Codes mailed and wrong codes tried, per address (keyed hash) and chat, for the rate limits.

    Not tied to a subscriber row: the limits must survive `/email off`, `/stop` and re-requests.
    Rows older than a day are pruned as new ones come in.
    """

    __table_args__ = (
        Index("ix_emailcodelog_address_at", "address_hash", "at"),
        Index("ix_emailcodelog_chat_at", "chat_id", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    address_hash: str
    chat_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    kind: str  # sent | wrong
    at: datetime = Field(default_factory=utcnow)


class Subscription(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("subscriber_id", "kind", "value", name="uq_subscription"),)

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(
        sa_column=Column(ForeignKey("subscriber.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    kind: str  # country | section
    value: str  # canonical name
    created_at: datetime = Field(default_factory=utcnow)


class Follow(SQLModel, table=True):
    """A phrase a reader follows ("Lukas Dhont"): articles mentioning it come besides the tag rule."""

    __table_args__ = (UniqueConstraint("subscriber_id", "key", name="uq_follow"),)

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(
        sa_column=Column(ForeignKey("subscriber.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    phrase: str  # as the reader typed it, quotes and extra spaces removed
    key: str = Field(index=True)  # phrases.key(phrase): what matching compares
    created_at: datetime = Field(default_factory=utcnow)


class Announcement(SQLModel, table=True):
    """An admin broadcast; its messages go through the outbox like digests."""

    id: int | None = Field(default=None, primary_key=True)
    body: str = Field(sa_column=Column(Text, nullable=False))
    channels: str = "telegram"  # telegram | email | both
    state: str = "draft"  # draft | queued | cancelled | done
    created_by: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    admin_chat_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    admin_message_id: int | None = None
    created_at: datetime = Field(default_factory=utcnow)
    queued_at: datetime | None = None
    cancelled_at: datetime | None = None


class EmailRendering(SQLModel, table=True):
    """One composed email digest, shared by every reader it goes to, with placeholders for their links.

    A fan-out stores the big HTML and text once here; each reader's outbox row carries only its
    own links (Outbox.links), put in at send time. On SQLite an UPDATE rewrites the whole row, so
    a 13 kB body on every outbox row made each claim and each settle rewrite it again.
    Rows are never deleted while an outbox row names them.
    """

    id: int | None = Field(default=None, primary_key=True)
    subject: str = ""
    html: str = Field(sa_column=Column(Text, nullable=False))
    text: str = Field(sa_column=Column(Text, nullable=False))
    template: str = ""
    article_count: int = 0
    created_at: datetime = Field(default_factory=utcnow)


class Outbox(SQLModel, table=True):
    """One message to send; the database is the queue."""

    __table_args__ = (
        UniqueConstraint("subscriber_id", "channel", "digest_key", name="uq_outbox_key"),
        Index("ix_outbox_state_next", "state", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int | None = Field(
        default=None,
        sa_column=Column(ForeignKey("subscriber.id", ondelete="CASCADE"), nullable=True),
    )
    channel: str  # telegram | email
    # What this message is, e.g. "digest:2026-11-26T07:00:00#1/2" or "announcement:7".
    digest_key: str
    recipient: str  # chat id or email address at queue time
    subject: str = ""
    body: str = Field(sa_column=Column(Text, nullable=False))  # Telegram HTML or email HTML
    body_text: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # An email digest of a fan-out: body and body_text stay empty, the content is this shared
    # rendering with `links` (JSON: unsubscribe, preferences, view URLs) put in (digests.renderings).
    # No foreign key: SQLite cannot add one to an existing table without rebuilding it.
    rendering_id: int | None = Field(default=None, index=True)
    links: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    template: str = ""
    article_count: int = 0
    announcement_id: int | None = Field(
        default=None,
        sa_column=Column(ForeignKey("announcement.id", ondelete="SET NULL"), nullable=True),
    )
    state: str = Field(default="queued", index=True)  # queued | sending | sent | failed | dead | cancelled
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    claimed_by: str | None = None
    claimed_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = Field(default=None, index=True)


class InboundEvent(SQLModel, table=True):
    """One message `clapper inbound` read: a bounce, complaint or mailed unsubscribe, and its outcome.

    Soft bounces are counted from here (3 within 7 days bounce the address); the rest is the audit
    trail behind each reader's status and the counts in `clapper status`.
    """

    __table_args__ = (Index("ix_inbound_event_subscriber_kind", "subscriber_id", "kind", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    # hard_bounce | soft_bounce | complaint | unsubscribe | ignored | unmatched | forged
    kind: str = Field(index=True)
    # What it changed: bounced | unsubscribed | none
    outcome: str = "none"
    subscriber_id: int | None = Field(
        default=None,
        sa_column=Column(ForeignKey("subscriber.id", ondelete="CASCADE"), nullable=True),
    )
    outbox_id: int | None = None  # the message the token names (no key: outbox rows may be pruned)
    detail: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, index=True)


class DeliveryWorker(SQLModel, table=True):
    """A running delivery worker. Its claims live while its heartbeat does (digests.workers)."""

    id: str = Field(primary_key=True)  # the worker id rows are claimed under (host:pid by default)
    channels: str = ""  # comma-separated: the Telegram rate is shared among those with "telegram"
    started_at: datetime = Field(default_factory=utcnow)
    heartbeat_at: datetime = Field(default_factory=utcnow, index=True)


@event.listens_for(Article, "before_insert")
@event.listens_for(Article, "before_update")
def _article_search_text(_mapper, _connection, article: Article) -> None:
    article.search_text = search_text(article.title, article.summary)
