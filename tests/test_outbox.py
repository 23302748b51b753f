"""The outbox as a queue: claim, order per destination, retry/backoff, recovery, counts."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlmodel import select

from digests import outbox
from digests.db import session_scope
from digests.models import Outbox, Subscriber, utcnow


def _add(engine, *, recipient="100", channel="telegram", key="k", subscriber_id=None, **extra) -> int:
    with session_scope(engine) as session:
        row = Outbox(
            subscriber_id=subscriber_id,
            channel=channel,
            digest_key=key,
            recipient=recipient,
            body=f"body {key}",
            **extra,
        )
        assert outbox.enqueue(session, row)
        session.flush()
        return row.id


def _row(engine, row_id) -> Outbox:
    with session_scope(engine) as session:
        return session.get(Outbox, row_id)


def test_enqueue_is_idempotent(engine):
    with session_scope(engine) as session:
        sub = Subscriber(telegram_chat_id=1)
        session.add(sub)
        session.flush()
        assert outbox.enqueue(
            session, Outbox(subscriber_id=sub.id, channel="telegram", digest_key="d", recipient="1", body="x")
        )
        assert not outbox.enqueue(
            session, Outbox(subscriber_id=sub.id, channel="telegram", digest_key="d", recipient="1", body="y")
        )
    with session_scope(engine) as session:
        assert len(session.exec(select(Outbox)).all()) == 1


def test_claim_takes_due_rows_once_and_marks_them_sending(engine):
    ids = [_add(engine, recipient=str(100 + i), key=f"k{i}") for i in range(5)]
    later = _add(engine, recipient="999", key="later", next_attempt_at=utcnow() + timedelta(hours=1))
    got = outbox.claim(engine, worker_id="w1", limit=10)
    assert [r.id for r in got] == ids
    assert all(r.state == "sending" and r.claimed_by == "w1" and r.claimed_at for r in got)
    assert outbox.claim(engine, worker_id="w2", limit=10) == []
    assert _row(engine, later).state == "queued"


def test_parts_of_one_destination_stay_in_order(engine):
    part1 = _add(engine, recipient="7", key="d#1/3")
    part2 = _add(engine, recipient="7", key="d#2/3")
    part3 = _add(engine, recipient="7", key="d#3/3")
    other = _add(engine, recipient="8", key="x")
    # A limit that cuts the line: the rest of it waits while its head is in flight.
    first = outbox.claim(engine, worker_id="w1", limit=2)
    assert [r.id for r in first] == [part1, part2]
    second = outbox.claim(engine, worker_id="w2", limit=10)
    assert [r.id for r in second] == [other]
    assert outbox.mark_sent(engine, part1, worker_id="w1")
    assert outbox.claim(engine, worker_id="w2", limit=10) == []  # part2 still in flight
    assert outbox.mark_sent(engine, part2, worker_id="w1")
    assert [r.id for r in outbox.claim(engine, worker_id="w2", limit=10)] == [part3]


def test_a_retry_waiting_at_the_head_holds_back_later_parts(engine, settings):
    part1 = _add(engine, recipient="7", key="d#1/2")
    part2 = _add(engine, recipient="7", key="d#2/2")
    claimed = outbox.claim(engine, worker_id="w", limit=1)
    assert [r.id for r in claimed] == [part1]
    assert outbox.mark_retry(engine, part1, worker_id="w", settings=settings, error="timeout") == "queued"
    assert outbox.claim(engine, worker_id="w", limit=10) == []
    # Once its retry is due, the head goes first and the tail follows in the same claim.
    later = utcnow() + timedelta(seconds=settings.delivery_retry_base + 1)
    assert [r.id for r in outbox.claim(engine, worker_id="w", limit=10, now=later)] == [part1, part2]


def test_retry_backs_off_exponentially_then_dies_with_the_error(engine, settings):
    settings = settings.model_copy(update={"delivery_max_attempts": 3, "delivery_retry_base": 10})
    row_id = _add(engine)
    now = utcnow()
    waits = []
    for attempt in range(1, 4):
        [row] = outbox.claim(engine, worker_id="w", limit=1, now=now)
        state = outbox.mark_retry(
            engine, row.id, worker_id="w", settings=settings, error=f"boom {attempt}", now=now
        )
        stored = _row(engine, row_id)
        assert stored.attempts == attempt and stored.last_error == f"boom {attempt}"
        if attempt < 3:
            assert state == "queued"
            waits.append((stored.next_attempt_at - now).total_seconds())
            now = stored.next_attempt_at
        else:
            assert state == "dead"
    assert waits == [10, 20]
    assert outbox.retry_delay(30, base=10, cap=3600) == 3600


def test_settling_a_row_needs_the_claim(engine, settings):
    row_id = _add(engine)
    outbox.claim(engine, worker_id="w1", limit=1)
    assert not outbox.mark_sent(engine, row_id, worker_id="someone-else")
    assert outbox.mark_retry(engine, row_id, worker_id="someone-else", settings=settings, error="x") is None
    assert outbox.mark_sent(engine, row_id, worker_id="w1")
    assert _row(engine, row_id).state == "sent"


def test_rows_of_a_dead_worker_come_back_after_the_timeout(engine):
    row_id = _add(engine)
    assert outbox.claim(engine, worker_id="dead", limit=1)
    assert outbox.recover_stale(engine, timeout=300) == 0
    # Its last heartbeat was 100 s ago.
    outbox.touch(engine, [row_id], worker_id="dead", now=utcnow() - timedelta(seconds=100))
    assert outbox.recover_stale(engine, timeout=50) == 1
    assert _row(engine, row_id).state == "queued"
    [again] = outbox.claim(engine, worker_id="alive", limit=1)
    assert again.id == row_id
    # The dead worker, if it wakes up, cannot settle a row that is no longer its own.
    assert not outbox.mark_sent(engine, row_id, worker_id="dead")


def test_requeue_and_release_do_not_count_attempts(engine):
    a = _add(engine, recipient="1", key="a")
    b = _add(engine, recipient="2", key="b")
    outbox.claim(engine, worker_id="w", limit=10)
    assert outbox.requeue(engine, [a], worker_id="w", delay=60, error="server down") == 1
    assert outbox.release_worker(engine, worker_id="w") == 1
    ra, rb = _row(engine, a), _row(engine, b)
    assert (ra.state, ra.attempts, ra.last_error) == ("queued", 0, "server down")
    assert ra.next_attempt_at > utcnow() + timedelta(seconds=50)
    assert (rb.state, rb.attempts) == ("queued", 0)


def test_cancelled_rows_are_never_claimed(engine):
    row_id = _add(engine)
    with session_scope(engine) as session:
        row = session.get(Outbox, row_id)
        row.state = "cancelled"
    assert outbox.claim(engine, worker_id="w", limit=10) == []


def test_blocked_chat_cancels_its_queue_and_marks_the_subscriber(engine):
    with session_scope(engine) as session:
        sub = Subscriber(telegram_chat_id=55)
        session.add(sub)
        session.flush()
        sub_id = sub.id
    first = _add(engine, recipient="55", key="a", subscriber_id=sub_id)
    second = _add(
        engine, recipient="55", key="b", subscriber_id=sub_id, next_attempt_at=utcnow() + timedelta(days=1)
    )
    outbox.claim(engine, worker_id="w", limit=1)
    assert (
        outbox.mark_blocked(
            engine,
            first,
            worker_id="w",
            subscriber_id=sub_id,
            recipient="55",
            error="Forbidden: bot was blocked by the user",
        )
        == 1
    )
    assert _row(engine, first).state == "dead"
    assert (_row(engine, second).state, _row(engine, second).last_error) == (
        "cancelled",
        "Forbidden: bot was blocked by the user",
    )
    with session_scope(engine) as session:
        assert session.get(Subscriber, sub_id).telegram_blocked_at is not None


def test_migrated_chat_follows_to_the_new_id(engine):
    with session_scope(engine) as session:
        sub = Subscriber(telegram_chat_id=-100)
        session.add(sub)
        session.flush()
        sub_id = sub.id
    row_id = _add(engine, recipient="-100", subscriber_id=sub_id)
    outbox.migrate_chat(engine, old_chat_id=-100, new_chat_id=-1009999999999, subscriber_id=sub_id)
    assert _row(engine, row_id).recipient == "-1009999999999"
    with session_scope(engine) as session:
        assert session.get(Subscriber, sub_id).telegram_chat_id == -1009999999999


def test_counts_by_state(engine):
    for i in range(3):
        _add(engine, recipient=str(i), key=str(i))
    _add(engine, recipient="e@x.org", channel="email", key="e")
    outbox.claim(engine, worker_id="w", limit=1)
    assert outbox.counts(engine) == {
        "queued": 3,
        "sending": 1,
        "sent": 0,
        "failed": 0,
        "dead": 0,
        "cancelled": 0,
    }
    assert outbox.counts(engine, channel="email")["queued"] == 1
    assert outbox.counts(engine, channel="telegram")["sending"] == 1


# Several workers need PostgreSQL's row locks; SQLite runs one worker, so there is no SQLite case.
@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_concurrent_claims_on_postgres_are_disjoint(engine):
    ids = {_add(engine, recipient=str(i), key=str(i)) for i in range(300)}
    results: dict[str, list[int]] = {}
    barrier = threading.Barrier(4)

    def work(name: str) -> None:
        barrier.wait()
        got: list[int] = []
        while batch := outbox.claim(engine, worker_id=name, limit=7):
            got.extend(r.id for r in batch)
        results[name] = got

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [row_id for got in results.values() for row_id in got]
    assert sorted(claimed) == sorted(ids)
    assert len(claimed) == len(set(claimed))
    assert sum(1 for got in results.values() if got) >= 2
