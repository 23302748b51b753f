"""Read one inbound message: bounce (hard or soft), complaint, mailed unsubscribe, or nothing.

Pure: bytes in, a Parsed out. Which reader it concerns is left to outcomes.py, which checks the
tokens found here against the database.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass, field
from email.message import Message
from email.utils import getaddresses, parseaddr

from flufl.bounce import all_failures

from digests import verp

HARD, SOFT, COMPLAINT, UNSUBSCRIBE, IGNORED = (
    "hard_bounce",
    "soft_bounce",
    "complaint",
    "unsubscribe",
    "ignored",
)

# Where an MTA pipe leaves the envelope recipient when no SMTP session tells us.
_RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To", "Cc")
_TOKEN_IN_TEXT = re.compile(r"\b(?:bounces|unsubscribe)\+([0-9a-z]{1,13}-[0-9a-z]{1,13}-[a-z2-7]{16})@", re.I)
_STATUS = re.compile(r"([245])\.\d{1,3}\.\d{1,3}")
_REPLY_PREFIX = re.compile(r"^\s*((re|aw|sv|fwd?|tr)\s*:\s*)+", re.I)
_UNSUBSCRIBE_WORD = re.compile(r"\bunsubscribe\b", re.I)
_COMPLAINTS = ("abuse", "opt-out", "opt-out-list")
_LEGACY_SUBJECT = re.compile(r"\bunsubscribe\s+(\S+)", re.I)


@dataclass
class Parsed:
    kind: str
    detail: str = ""
    # VERP tokens, most trustworthy first: envelope recipient, then our Message-ID quoted back,
    # then the original message a report carries.
    tokens: list[str] = field(default_factory=list)
    # A reply is only believed from the reader's own address (besides the token it quotes).
    sender: str | None = None
    from_reader: bool = False
    # The itsdangerous token of the mailto in emails sent before BOUNCE_DOMAIN was set.
    legacy_unsubscribe: str | None = None
    addresses: list[str] = field(default_factory=list)


def _add(tokens: list[str], token: str | None) -> None:
    if token and verp.parse(token) and token.lower() not in tokens:
        tokens.append(token.lower())


def _recipients(message: Message, envelope: list[str] | None) -> list[str]:
    if envelope:
        return list(envelope)
    values = [str(v) for name in _RECIPIENT_HEADERS for v in message.get_all(name, [])]
    return [address for _name, address in getaddresses(values) if address]


def _walk_parts(message: Message):
    """Every part, including those inside attached messages (their payload is a list of Message)."""
    yield message
    payload = message.get_payload()
    if isinstance(payload, list):
        for part in payload:
            if isinstance(part, Message):
                yield from _walk_parts(part)


def _headers_of(part: Message) -> list[Message]:
    """The original message's headers carried in a report part (message/rfc822, text/rfc822-headers)."""
    kind = part.get_content_type()
    if kind == "message/rfc822":
        return [m for m in part.get_payload() if isinstance(m, Message)]
    if kind == "text/rfc822-headers":
        return [email.message_from_string(_text(part), policy=email.policy.compat32)]
    return []


def _text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if payload is None:
        payload = part.get_payload()
        return payload if isinstance(payload, str) else ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        return payload.decode("utf-8", errors="replace")


def _original_tokens(message: Message, tokens: list[str]) -> None:
    for part in _walk_parts(message):
        for original in _headers_of(part):
            for name in ("Message-ID", "Return-Path", "List-Unsubscribe"):
                for value in original.get_all(name, []):
                    _add(tokens, verp.token_in_message_id(str(value)))
                    for match in _TOKEN_IN_TEXT.finditer(str(value)):
                        _add(tokens, match[1])


def _feedback(message: Message) -> Parsed | None:
    for part in _walk_parts(message):
        if part.get_content_type() == "message/feedback-report":
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                report = inner[0]  # the parser reads message/* parts as a message: fields = headers
            else:
                report = email.message_from_string(_text(part).lstrip(), policy=email.policy.compat32)
            kind = str(report.get("Feedback-Type", "")).strip().lower()
            rcpts = [parseaddr(str(v))[1] for v in report.get_all("Original-Rcpt-To", [])]
            detail = f"feedback-type {kind or 'missing'}"
            # RFC 5965: "abuse" is the reader pressing "this is spam" ("opt-out" in the older
            # drafts some providers still send); other types (auth-failure, fraud, virus, not-spam)
            # are about the message, not a wish to stop receiving it.
            return Parsed(
                COMPLAINT if kind in _COMPLAINTS else IGNORED, detail, addresses=[r for r in rcpts if r]
            )
    return None


def _delivery_status(message: Message) -> Parsed | None:
    for part in _walk_parts(message):
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        if isinstance(blocks, str):  # a malformed report: read its fields as one block
            blocks = [email.message_from_string(blocks, policy=email.policy.compat32)]
        hard, soft, addresses = [], [], []
        for block in blocks[1:] if len(blocks) > 1 else blocks:
            action = str(block.get("Action", "")).strip().lower()
            status = str(block.get("Status", "")).strip()
            recipient = str(block.get("Final-Recipient") or block.get("Original-Recipient") or "")
            addresses.append(recipient.partition(";")[2].strip() or recipient.strip())
            code = _STATUS.search(status)
            line = f"{action} {status} {recipient}".strip()
            if action == "failed" and (code is None or code[1] == "5"):
                hard.append(line)
            elif action in ("failed", "delayed"):
                soft.append(line)
        addresses = [a for a in addresses if a]
        if hard:
            return Parsed(HARD, "DSN: " + "; ".join(hard), addresses=addresses)
        if soft:
            return Parsed(SOFT, "DSN: " + "; ".join(soft), addresses=addresses)
        return Parsed(IGNORED, "DSN without failure (delivered, relayed or expanded)", addresses=addresses)
    return None


def _non_standard(message: Message) -> Parsed | None:
    temporary, permanent = all_failures(message)
    if permanent:
        found = sorted(a.decode(errors="replace") for a in permanent)
        return Parsed(HARD, "bounce: " + ", ".join(found), addresses=found)
    if temporary:
        found = sorted(a.decode(errors="replace") for a in temporary)
        return Parsed(SOFT, "delay warning: " + ", ".join(found), addresses=found)
    return None


def _first_words(message: Message) -> str:
    """The first line the writer typed: above any quote, in the first text/plain part."""
    for part in message.walk():
        if part.get_content_type() == "text/plain" and part.get_content_disposition() != "attachment":
            for line in _text(part).splitlines():
                stripped = line.strip()
                if stripped and not stripped.startswith(">"):
                    return stripped
            return ""
    return ""


def _automatic(message: Message) -> bool:
    # RFC 3834: auto-replies (vacation notices) quote our footer, which itself says "unsubscribe".
    # Not "Precedence: bulk/list": mailing lists stamp those on human replies too.
    auto = str(message.get("Auto-Submitted", "no")).strip().lower()
    precedence = str(message.get("Precedence", "")).strip().lower()
    return auto != "no" or precedence in ("junk", "auto_reply") or "X-Autoreply" in message


def parse(raw: bytes, envelope_recipients: list[str] | None = None) -> Parsed:
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    recipients = _recipients(message, envelope_recipients)
    kinds = {}
    for address in recipients:
        split = verp.split_address(address)
        if split and verp.parse(split[1]):
            kinds.setdefault(split[0], split[1].lower())

    sender = parseaddr(str(message.get("From", "")))[1] or None
    if verp.UNSUBSCRIBE in kinds:
        # The List-Unsubscribe mailto: sending it is the request (RFC 2369), whatever it says.
        return Parsed(
            UNSUBSCRIBE,
            "mailed to the List-Unsubscribe address",
            tokens=[kinds[verp.UNSUBSCRIBE]],
            sender=sender,
        )

    tokens: list[str] = []
    _add(tokens, kinds.get(verp.BOUNCES))
    parsed = _feedback(message) or _delivery_status(message) or _non_standard(message)
    if parsed is not None:
        _original_tokens(message, tokens)
        # Non-standard bounces quote the original as plain text: the VERP address is in there.
        for match in _TOKEN_IN_TEXT.finditer(raw.decode("utf-8", errors="replace")):
            _add(tokens, match[1])
        parsed.tokens, parsed.sender = tokens, sender
        return parsed

    # A reply: it quotes our Message-ID (In-Reply-To, References) and comes from the reader.
    for name in ("In-Reply-To", "References"):
        for value in message.get_all(name, []):
            for msgid in re.findall(r"<[^>]+>", str(value)):
                _add(tokens, verp.token_in_message_id(msgid))
    subject = _REPLY_PREFIX.sub("", str(message.get("Subject", "")))
    legacy = _LEGACY_SUBJECT.search(subject)
    says = _UNSUBSCRIBE_WORD.search(subject) or _UNSUBSCRIBE_WORD.search(_first_words(message))
    if kinds.get(verp.BOUNCES) or _automatic(message) or not says:
        # Mail to the bounce address that no detector understood (an auto-reply, spam) is no request.
        return Parsed(IGNORED, "no bounce, report or unsubscribe request found", tokens=tokens, sender=sender)
    return Parsed(
        UNSUBSCRIBE,
        "reply saying unsubscribe",
        tokens=tokens,
        sender=sender,
        from_reader=True,
        legacy_unsubscribe=legacy[1] if legacy and not tokens else None,
    )
