"""Email readers: double opt-in from the bot (a short code), or added by an operator (a link).

No Telegram here: the bot handlers, the CLI and the web app call these functions.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import update
from sqlmodel import Session, select

from digests import catalog, compose, email_limits, follows, outbox, tokens
from digests.config import Settings
from digests.due import FREQUENCIES
from digests.models import Outbox, Subscriber, Subscription, utcnow

CODE_TTL = timedelta(minutes=30)
# Wrong codes per address per day (counted in email_limits, so asking again renews nothing).
MAX_ATTEMPTS = email_limits.WRONG_PER_ADDRESS_PER_DAY
RESEND_AFTER = email_limits.INTERVAL


class EmailError(ValueError):
    """A refusal the reader should see; `reason` picks the wording in the templates."""

    def __init__(self, reason: str, detail: str = "", **extra: object) -> None:
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail
        self.extra = extra


# ---- rendering -------------------------------------------------------------------------------


def render(name: str, **context: object) -> str:
    """One template through the digests' Jinja2 environment (errors name template and line)."""
    return compose.render(compose.make_environment(), name, **context)


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str  # CSS inlined: mail clients drop <style> blocks
    text: str


def render_email(stem: str, **context: object) -> RenderedEmail:
    """templates/email/<stem>.{subject,html,txt}.j2 rendered with the same context."""
    subject = " ".join(render(f"email/{stem}.subject.j2", **context).split())
    html = compose.inline_css(render(f"email/{stem}.html.j2", **context))
    text = render(f"email/{stem}.txt.j2", **context).strip() + "\n"
    return RenderedEmail(subject, html, text)


# ---- pure helpers ----------------------------------------------------------------------------


def normalize_address(text: str, *, smtputf8: bool = False) -> str:
    """The address as stored, or EmailError('invalid' or 'not_ascii', why).

    Lower-cased as a whole: local parts are case-sensitive on paper only, and "Ann@x.org" and
    "ann@x.org" must not become two readers (or let a second chat claim the same inbox).
    An internationalised domain is stored IDNA-encoded (any SMTP server carries that); a
    non-ASCII local part only when the server offers SMTPUTF8 (`smtputf8`, from SMTP_UTF8).
    """
    text = text.strip()
    try:
        # No DNS lookups: sign-up must work offline and must not stall the bot.
        valid = validate_email(text, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise EmailError("invalid", str(exc)) from exc
    if valid.ascii_email:
        return valid.ascii_email.lower()
    if not smtputf8:
        raise EmailError(
            "not_ascii", "only addresses written in plain ASCII before the @ can be mailed", address=text
        )
    return valid.normalized.lower()


def new_code() -> str:
    return f"{secrets.randbelow(10**6):06d}"


def code_hash(settings: Settings, subscriber_id: int, code: str) -> str:
    """Keyed and bound to the subscriber, so a leaked database does not give codes away."""
    message = f"{subscriber_id}:{code}".encode()
    return hmac.new(settings.secret().encode(), message, hashlib.sha256).hexdigest()


# ---- queries ---------------------------------------------------------------------------------


def by_chat(session: Session, chat_id: int) -> Subscriber | None:
    return session.exec(select(Subscriber).where(Subscriber.telegram_chat_id == chat_id)).first()


def by_address(session: Session, address: str) -> Subscriber | None:
    return session.exec(select(Subscriber).where(Subscriber.email == address)).first()


def festivals_of(session: Session, subscriber_id: int) -> list[str]:
    """The festivals the subscriber follows (every edition), sorted."""
    rows = session.exec(select(Subscription.value).where(
        Subscription.subscriber_id == subscriber_id, Subscription.kind == catalog.FESTIVAL))
    return sorted(rows)


def terms_of(session: Session, subscriber_id: int) -> tuple[list[str], list[str]]:
    """(countries, sections) the subscriber follows, sorted."""
    rows = session.exec(
        select(Subscription.kind, Subscription.value).where(Subscription.subscriber_id == subscriber_id)
    ).all()
    countries = sorted(v for k, v in rows if k == catalog.COUNTRY)
    sections = sorted(v for k, v in rows if k == catalog.SECTION)
    return countries, sections


def cancel_queued_email(session: Session, subscriber_id: int) -> int:
    """Withdraw the subscriber's email messages that have not gone out yet; how many."""
    result = session.execute(
        update(Outbox)
        .where(Outbox.subscriber_id == subscriber_id, Outbox.channel == "email", Outbox.state == "queued")
        .values(state="cancelled", last_error="address unsubscribed")
    )
    return result.rowcount or 0


# ---- double opt-in from the bot ---------------------------------------------------------------


@dataclass(frozen=True)
class CodeSent:
    address: str
    expires_at: datetime


def request(
    session: Session,
    settings: Settings,
    *,
    chat_id: int,
    address: str,
    now: datetime | None = None,
    code: str | None = None,
    chat_type: str | None = None,
) -> CodeSent:
    """Store `address` as pending for the chat and queue an email with a code to confirm it."""
    now = now or utcnow()
    address = normalize_address(address, smtputf8=settings.smtp_utf8)
    subscriber = by_chat(session, chat_id)
    if subscriber is None:
        subscriber = Subscriber(
            telegram_chat_id=chat_id,
            chat_type=chat_type,
            timezone=settings.default_timezone,
            delivery_time=settings.default_delivery_time,
            send_empty=settings.send_empty_digests,
        )
        session.add(subscriber)
        session.flush()
    if subscriber.email == address and subscriber.email_status == "confirmed":
        raise EmailError("already_confirmed", address=address)
    owner = by_address(session, address)
    if owner is not None and owner.id != subscriber.id:
        raise EmailError("taken", address=address)
    refused = email_limits.refusal(session, settings, address=address, chat_id=chat_id, now=now)
    if refused is not None:
        raise EmailError(refused.reason, address=address, **refused.extra)
    code = code or new_code()
    if subscriber.email and subscriber.email != address:
        # A new address replaces the old one: what was queued for the old inbox is withdrawn.
        cancel_queued_email(session, subscriber.id)
    subscriber.email = address
    subscriber.email_status = "pending"
    subscriber.email_code_hash = code_hash(settings, subscriber.id, code)
    subscriber.email_code_expires_at = now + CODE_TTL
    subscriber.email_code_attempts = email_limits.wrong_codes(session, settings, address, now=now)
    session.add(subscriber)
    session.flush()
    email_limits.record(session, settings, address=address, chat_id=chat_id, kind=email_limits.SENT, now=now)
    _queue_confirmation(session, settings, subscriber, code=code, now=now)
    return CodeSent(address, subscriber.email_code_expires_at)


@dataclass(frozen=True)
class Verified:
    ok: bool
    reason: str = ""  # no_pending | too_many | expired | wrong, when not ok
    attempts_left: int = 0
    address: str | None = None
    frequency: str = "weekly"


def verify(
    session: Session, settings: Settings, *, chat_id: int, code: str, now: datetime | None = None
) -> Verified:
    """Turn email digests on when `code` is right. A wrong code is counted (and committed, so the
    outcome is returned rather than raised: the caller's transaction must not roll the count back)."""
    now = now or utcnow()
    subscriber = by_chat(session, chat_id)
    if subscriber is None or subscriber.email_status != "pending" or not subscriber.email_code_hash:
        return Verified(False, "no_pending")
    address = subscriber.email
    wrong = email_limits.wrong_codes(session, settings, address, now=now)
    if wrong >= MAX_ATTEMPTS:
        return Verified(False, "too_many", address=address)
    if subscriber.email_code_expires_at is None or subscriber.email_code_expires_at <= now:
        return Verified(False, "expired", address=subscriber.email)
    given = code_hash(settings, subscriber.id, "".join(code.split()))
    if not hmac.compare_digest(given, subscriber.email_code_hash):
        email_limits.record(
            session, settings, address=address, chat_id=chat_id, kind=email_limits.WRONG, now=now
        )
        subscriber.email_code_attempts = wrong + 1
        session.add(subscriber)
        left = MAX_ATTEMPTS - subscriber.email_code_attempts
        return Verified(False, "too_many" if left <= 0 else "wrong", left, subscriber.email)
    _confirm(subscriber, now)
    return Verified(True, address=subscriber.email, frequency=subscriber.email_frequency)


def off(session: Session, *, chat_id: int) -> str | None:
    """Stop email for the chat and forget its address; the address it had, if any."""
    subscriber = by_chat(session, chat_id)
    if subscriber is None or subscriber.email is None:
        return None
    address = subscriber.email
    cancel_queued_email(session, subscriber.id)
    _forget(subscriber)
    session.add(subscriber)
    return address


def set_email_frequency(session: Session, *, chat_id: int, frequency: str) -> Subscriber | None:
    """How often the chat's email digests come; None when the chat has no address."""
    if frequency not in FREQUENCIES:
        raise EmailError("bad_frequency", frequency=frequency)
    subscriber = by_chat(session, chat_id)
    if subscriber is None or subscriber.email is None:
        return None
    subscriber.email_frequency = frequency
    session.add(subscriber)
    return subscriber


def status(session: Session, *, chat_id: int) -> Subscriber | None:
    return by_chat(session, chat_id)


def _confirm(subscriber: Subscriber, now: datetime) -> None:
    subscriber.email_status = "confirmed"
    subscriber.email_confirmed_at = now
    subscriber.email_code_hash = None
    subscriber.email_code_expires_at = None
    subscriber.email_code_attempts = 0


def _forget(subscriber: Subscriber) -> None:
    subscriber.email = None
    subscriber.email_status = "none"
    subscriber.email_code_hash = None
    subscriber.email_code_expires_at = None
    subscriber.email_code_attempts = 0
    subscriber.email_confirmed_at = None


def _queue_confirmation(
    session: Session, settings: Settings, subscriber: Subscriber, *, code: str | None, now: datetime
) -> None:
    assert subscriber.id is not None and subscriber.email is not None
    link = tokens.link(settings, subscriber, "confirm")
    mail = render_email(
        "confirm",
        code=code,
        confirm_url=link,
        address=subscriber.email,
        minutes=int(CODE_TTL.total_seconds() // 60),
        from_bot=subscriber.telegram_chat_id is not None,
    )
    outbox.enqueue(
        session,
        Outbox(
            subscriber_id=subscriber.id,
            channel="email",
            # A fresh key per request: asking again must send a new message, not hit the unique key.
            digest_key=f"confirm:{int(now.timestamp())}:{secrets.token_hex(3)}",
            recipient=subscriber.email,
            subject=mail.subject,
            body=mail.html,
            body_text=mail.text,
            template="email/confirm",
            next_attempt_at=now,
        ),
    )


# ---- confirm and unsubscribe by link (web) ------------------------------------------------------


def confirm_by_link(session: Session, subscriber_id: int, *, now: datetime | None = None) -> Subscriber:
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.email is None:
        raise EmailError("gone")
    if subscriber.email_status == "confirmed":
        return subscriber
    if subscriber.email_status != "pending":
        # An old confirmation link must not undo a later unsubscribe or bounce.
        raise EmailError("not_pending", status=subscriber.email_status)
    _confirm(subscriber, now or utcnow())
    session.add(subscriber)
    return subscriber


def unsubscribe(session: Session, subscriber_id: int) -> Subscriber | None:
    """Mark the address unsubscribed (kept, so it is never mailed again) and withdraw queued mail."""
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.email is None:
        return None
    subscriber.email_status = "unsubscribed"
    subscriber.email_code_hash = None
    subscriber.email_code_expires_at = None
    session.add(subscriber)
    cancel_queued_email(session, subscriber_id)
    return subscriber


def set_preferences(
    session: Session,
    subscriber_id: int,
    *,
    countries: list[str],
    sections: list[str],
    frequency: str,
    limit: int | None = None,
    festivals: list[str] | None = None,
    phrases: list[str] | None = None,
    follow_limit: int | None = None,
) -> Subscriber:
    """Replace the subscriber's countries and sections (and festivals and phrases, unless None: a
    form that does not show them leaves them as they are), and set the email frequency."""
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        raise EmailError("gone")
    if frequency not in FREQUENCIES:
        raise EmailError("bad_frequency", frequency=frequency)
    wanted: set[tuple[str, str]] = set()
    for name in countries:
        value = catalog.lookup_country(name)
        if value is None:
            raise EmailError("unknown_term", term=name)
        wanted.add((catalog.COUNTRY, value))
    for name in sections:
        value = catalog.lookup_section(name)
        if value is None:
            raise EmailError("unknown_term", term=name)
        wanted.add((catalog.SECTION, value))
    for name in festivals or ():
        value = catalog.lookup_festival(name)
        if value is None:
            raise EmailError("unknown_term", term=name)
        wanted.add((catalog.FESTIVAL, value))
    if phrases is not None:
        _check_follows(phrases, follow_limit)
        follows.replace_all(session, subscriber_id, phrases)
    existing = session.exec(select(Subscription).where(Subscription.subscriber_id == subscriber_id)).all()
    have = {(s.kind, s.value): s for s in existing}
    # Kinds the caller did not show stay as they are, and count towards the limit.
    shown = {catalog.COUNTRY, catalog.SECTION} | ({catalog.FESTIVAL} if festivals is not None else set())
    kept = {key for key in have if key[0] not in shown}
    if limit is not None and len(wanted | kept) > limit:
        raise EmailError("too_many_terms", limit=limit)
    for key, row in have.items():
        if key not in wanted and key not in kept:
            session.delete(row)
    for kind, value in sorted(wanted - set(have)):
        session.add(Subscription(subscriber_id=subscriber_id, kind=kind, value=value))
    subscriber.email_frequency = frequency
    session.add(subscriber)
    return subscriber


# ---- operators: add, list, remove (no Telegram) -------------------------------------------------


@dataclass(frozen=True)
class NewReader:
    """A validated email reader, before it touches the database."""

    email: str
    countries: tuple[str, ...]
    sections: tuple[str, ...]
    frequency: str = "weekly"
    follows: tuple[str, ...] = ()  # names and phrases, cleaned


def _check_follows(items: list[str] | tuple[str, ...], limit: int | None) -> None:
    problem = follows.check_list(items, limit)
    if problem is not None:
        reason, phrase = problem
        if reason == "too_many":
            raise EmailError("too_many_follows", f"at most {limit} names and phrases", limit=limit)
        raise EmailError("bad_follow", f"cannot follow {phrase!r}: names and phrases have "
                         "2 to 60 characters, with letters or digits", phrase=phrase, problem=reason)


def parse_terms_list(values: list[str], kind: str) -> tuple[str, ...]:
    """Canonical names for `values` of one kind; EmailError('unknown_term') names the first unknown."""
    lookup = catalog.lookup_country if kind == catalog.COUNTRY else catalog.lookup_section
    found: list[str] = []
    for raw in values:
        name = raw.strip()
        if not name:
            continue
        value = lookup(name)
        if value is None:
            hint = ", ".join(t.value for t in catalog.suggest(name) if t.kind == kind)
            detail = f"unknown {kind} {name!r}" + (f" (did you mean {hint}?)" if hint else "")
            raise EmailError("unknown_term", detail, term=name)
        if value not in found:
            found.append(value)
    return tuple(found)


def new_reader(
    email: str, countries: list[str], sections: list[str], frequency: str, phrases: list[str] = (), *,
    smtputf8: bool = False,
) -> NewReader:
    frequency = (frequency or "weekly").strip().lower()
    if frequency not in FREQUENCIES:
        raise EmailError("bad_frequency", f"frequency must be one of {', '.join(FREQUENCIES)}")
    wanted = tuple(follows.parse_list("\n".join(phrases)))
    _check_follows(wanted, None)
    return NewReader(
        email=normalize_address(email, smtputf8=smtputf8),
        countries=parse_terms_list(countries, catalog.COUNTRY),
        sections=parse_terms_list(sections, catalog.SECTION),
        frequency=frequency,
        follows=wanted,
    )


def check_new_reader(
    settings: Settings, reader: NewReader, known_status: str | None, *, confirmed: bool
) -> None:
    """EmailError when `reader` may not be added; `known_status` is the address's, if stored."""
    if known_status is not None:
        raise EmailError("exists", f"{reader.email} is already known ({known_status})")
    if len(reader.countries) + len(reader.sections) > settings.max_subscriptions:
        raise EmailError("too_many_terms", f"at most {settings.max_subscriptions} countries and sections")
    _check_follows(reader.follows, settings.max_follows)
    if not confirmed and not settings.public_base_url:
        raise EmailError(
            "no_web", "confirmation links need PUBLIC_BASE_URL (the web app); set it or use --confirmed"
        )


def new_subscriber(reader: NewReader, *, confirmed: bool, now: datetime) -> Subscriber:
    """The row of an email-only reader, not yet added to a session."""
    return Subscriber(
        email=reader.email,
        email_status="confirmed" if confirmed else "pending",
        email_confirmed_at=now if confirmed else None,
        email_frequency=reader.frequency,
        created_at=now,
    )


def add_reader(
    session: Session,
    settings: Settings,
    reader: NewReader,
    *,
    confirmed: bool,
    now: datetime | None = None,
) -> Subscriber:
    """Store an email-only reader; unless `confirmed`, queue a confirmation link (double opt-in)."""
    now = now or utcnow()
    existing = by_address(session, reader.email)
    check_new_reader(settings, reader, existing.email_status if existing else None, confirmed=confirmed)
    subscriber = new_subscriber(reader, confirmed=confirmed, now=now)
    session.add(subscriber)
    session.flush()
    assert subscriber.id is not None
    for value in reader.countries:
        session.add(Subscription(subscriber_id=subscriber.id, kind=catalog.COUNTRY, value=value))
    for value in reader.sections:
        session.add(Subscription(subscriber_id=subscriber.id, kind=catalog.SECTION, value=value))
    follows.replace_all(session, subscriber.id, reader.follows)
    session.flush()
    if not confirmed:
        _queue_confirmation(session, settings, subscriber, code=None, now=now)
    return subscriber


@dataclass(frozen=True)
class ReaderRow:
    id: int
    email: str
    status: str
    frequency: str
    countries: list[str]
    sections: list[str]
    telegram: bool
    follows: list[str] = field(default_factory=list)


def list_readers(session: Session, *, status: str | None = None) -> list[ReaderRow]:
    query = select(Subscriber).where(Subscriber.email.is_not(None)).order_by(Subscriber.email)
    if status:
        query = query.where(Subscriber.email_status == status)
    subscribers = session.exec(query).all()
    ids = [s.id for s in subscribers]
    terms: dict[int, tuple[list[str], list[str]]] = {i: ([], []) for i in ids}
    if ids:
        for sub_id, kind, value in session.exec(
            select(Subscription.subscriber_id, Subscription.kind, Subscription.value)
            .where(Subscription.subscriber_id.in_(ids))
            .order_by(Subscription.value)
        ).all():
            terms[sub_id][0 if kind == catalog.COUNTRY else 1].append(value)
    phrases = follows.load(session, ids) if ids else {}
    return [
        ReaderRow(
            id=s.id,
            email=s.email,
            status=s.email_status,
            frequency=s.email_frequency,
            countries=terms[s.id][0],
            sections=terms[s.id][1],
            telegram=s.telegram_chat_id is not None,
            follows=[phrase for _, phrase in phrases.get(s.id, [])],
        )
        for s in subscribers
    ]


def remove_reader(session: Session, address: str) -> bool:
    """Delete an email-only reader, or detach the address from a Telegram chat; False if unknown."""
    # Lenient on purpose: an address stored before SMTP_UTF8 was turned off can still be removed.
    subscriber = by_address(session, normalize_address(address, smtputf8=True))
    if subscriber is None:
        return False
    if subscriber.telegram_chat_id is None:
        session.delete(subscriber)
    else:
        cancel_queued_email(session, subscriber.id)
        _forget(subscriber)
        session.add(subscriber)
    return True
