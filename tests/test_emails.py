"""Email sign-up services: double opt-in by code, expiry, attempt limits, operator adds."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from digests import emails
from digests.db import session_scope
from digests.models import Outbox, Subscriber, Subscription, utcnow


def _outbox(engine, channel="email"):
    with session_scope(engine) as s:
        return s.exec(select(Outbox).where(Outbox.channel == channel).order_by(Outbox.id)).all()


def test_request_queues_code_email_and_verify_confirms(engine, settings):
    now = utcnow()
    with session_scope(engine) as s:
        sent = emails.request(s, settings, chat_id=42, address=" Reader@Example.COM ", now=now, code="123456")
    assert sent.address == "reader@example.com"
    rows = _outbox(engine)
    assert len(rows) == 1
    assert rows[0].recipient == "reader@example.com"
    assert rows[0].digest_key.startswith("confirm:")
    assert "123456" in rows[0].subject and "/verify 123456" in rows[0].body_text
    assert "/verify 123456" in rows[0].body and 'class="code" style="' in rows[0].body  # CSS inlined
    with session_scope(engine) as s:
        sub = emails.by_chat(s, 42)
        assert sub.email_status == "pending"
        assert sub.email_code_hash and "123456" not in sub.email_code_hash
        result = emails.verify(s, settings, chat_id=42, code="123 456", now=now + timedelta(minutes=5))
    assert result.ok and result.frequency == "weekly"
    with session_scope(engine) as s:
        sub = emails.by_chat(s, 42)
        assert sub.email_status == "confirmed" and sub.email_code_hash is None


def test_wrong_codes_are_limited_and_counted_across_transactions(engine, settings):
    now = utcnow()
    with session_scope(engine) as s:
        emails.request(s, settings, chat_id=7, address="a@example.org", now=now, code="111111")
    outcomes = []
    for _ in range(emails.MAX_ATTEMPTS):
        with session_scope(engine) as s:
            outcomes.append(emails.verify(s, settings, chat_id=7, code="999999", now=now))
    assert [o.reason for o in outcomes] == ["wrong"] * (emails.MAX_ATTEMPTS - 1) + ["too_many"]
    assert outcomes[0].attempts_left == emails.MAX_ATTEMPTS - 1
    with session_scope(engine) as s:
        # Even the right code is refused now: a new /email is needed.
        assert emails.verify(s, settings, chat_id=7, code="111111", now=now).reason == "too_many"
    with session_scope(engine) as s:
        assert emails.by_chat(s, 7).email_status == "pending"
    # Asking again the same day renews nothing: no new code, no new guesses.
    soon = now + emails.RESEND_AFTER + timedelta(seconds=1)
    with pytest.raises(emails.EmailError) as refused, session_scope(engine) as s:
        emails.request(s, settings, chat_id=7, address="a@example.org", now=soon, code="222222")
    assert refused.value.reason == "too_many_wrong"
    # A day after the first wrong code the address may try again, with a fresh code.
    later = now + timedelta(days=1, seconds=1)
    with session_scope(engine) as s:
        emails.request(s, settings, chat_id=7, address="a@example.org", now=later, code="222222")
    with session_scope(engine) as s:
        assert emails.verify(s, settings, chat_id=7, code="222222", now=later).ok
    assert len(_outbox(engine)) == 2


def test_code_expires(engine, settings):
    now = utcnow()
    with session_scope(engine) as s:
        emails.request(s, settings, chat_id=8, address="b@example.org", now=now, code="123123")
    with session_scope(engine) as s:
        late = now + emails.CODE_TTL + timedelta(seconds=1)
        assert emails.verify(s, settings, chat_id=8, code="123123", now=late).reason == "expired"


def test_resend_is_throttled_and_addresses_are_validated(engine, settings):
    now = utcnow()
    with pytest.raises(emails.EmailError) as bad:
        with session_scope(engine) as s:
            emails.request(s, settings, chat_id=9, address="not an address", now=now)
    assert bad.value.reason == "invalid"
    with session_scope(engine) as s:
        emails.request(s, settings, chat_id=9, address="c@example.org", now=now)
    with pytest.raises(emails.EmailError) as soon:
        with session_scope(engine) as s:
            emails.request(s, settings, chat_id=9, address="c@example.org", now=now + timedelta(seconds=5))
    assert soon.value.reason == "too_soon" and 0 < soon.value.extra["seconds"] <= 60
    # Another chat cannot claim an address that is in use.
    with pytest.raises(emails.EmailError) as taken:
        with session_scope(engine) as s:
            emails.request(s, settings, chat_id=10, address="C@example.org", now=now)
    assert taken.value.reason == "taken"


def test_off_forgets_the_address_and_withdraws_queued_mail(engine, settings):
    now = utcnow()
    with session_scope(engine) as s:
        emails.request(s, settings, chat_id=11, address="d@example.org", now=now, code="000001")
    with session_scope(engine) as s:
        assert emails.off(s, chat_id=11) == "d@example.org"
    with session_scope(engine) as s:
        sub = emails.by_chat(s, 11)
        assert sub.email is None and sub.email_status == "none"
    assert [r.state for r in _outbox(engine)] == ["cancelled"]
    with session_scope(engine) as s:
        assert emails.off(s, chat_id=11) is None


def test_add_reader_confirmed_and_pending(engine, settings):
    web = settings.model_copy(update={"public_base_url": "https://news.example.org"})
    reader = emails.new_reader("e@example.org", ["belgium", "Czechia"], ["production"], "daily")
    assert reader.countries == ("Belgium", "Czech Republic") and reader.sections == ("Production",)
    with session_scope(engine) as s:
        emails.add_reader(s, settings, reader, confirmed=True)
    with pytest.raises(emails.EmailError) as dup:
        with session_scope(engine) as s:
            emails.add_reader(s, settings, reader, confirmed=True)
    assert dup.value.reason == "exists"
    with pytest.raises(emails.EmailError) as noweb:
        with session_scope(engine) as s:
            emails.add_reader(s, settings, emails.new_reader("f@example.org", [], [], ""), confirmed=False)
    assert noweb.value.reason == "no_web"
    with session_scope(engine) as s:
        emails.add_reader(s, web, emails.new_reader("f@example.org", [], [], ""), confirmed=False)
    rows = _outbox(engine)
    assert len(rows) == 1 and rows[0].recipient == "f@example.org"
    assert "https://news.example.org/confirm?token=" in rows[0].body_text
    with session_scope(engine) as s:
        listed = {r.email: r for r in emails.list_readers(s)}
        assert listed["e@example.org"].status == "confirmed"
        assert listed["e@example.org"].frequency == "daily"
        assert listed["e@example.org"].countries == ["Belgium", "Czech Republic"]
        assert listed["f@example.org"].status == "pending"
        assert emails.remove_reader(s, "E@example.org")
        assert not emails.remove_reader(s, "nobody@example.org")
    with session_scope(engine) as s:
        assert s.exec(select(Subscriber).where(Subscriber.email == "e@example.org")).first() is None
        assert s.exec(select(Subscription)).all() == []


def test_new_reader_rejects_unknown_terms_with_a_hint():
    with pytest.raises(emails.EmailError) as exc:
        emails.new_reader("g@example.org", ["Belgum"], [], "weekly")
    assert "Belgum" in exc.value.detail and "Belgium" in exc.value.detail
    with pytest.raises(emails.EmailError):
        emails.new_reader("g@example.org", [], [], "hourly")


def test_a_new_address_withdraws_mail_queued_for_the_old_one(engine, settings):
    now = utcnow()
    with session_scope(engine) as s:
        emails.request(s, settings, chat_id=12, address="old@example.org", now=now, code="121212")
    with session_scope(engine) as s:
        assert emails.verify(s, settings, chat_id=12, code="121212", now=now).ok
        sub = emails.by_chat(s, 12)
        s.add(
            Outbox(
                subscriber_id=sub.id,
                channel="email",
                digest_key="digest:x",
                recipient="old@example.org",
                subject="s",
                body="b",
            )
        )
    later = now + emails.RESEND_AFTER
    with session_scope(engine) as s:
        emails.request(s, settings, chat_id=12, address="new@example.org", now=later, code="343434")
    states = {r.digest_key: r.state for r in _outbox(engine)}
    assert states["digest:x"] == "cancelled"
    with session_scope(engine) as s:
        sub = emails.by_chat(s, 12)
        assert (sub.email, sub.email_status) == ("new@example.org", "pending")
