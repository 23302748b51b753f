"""Readers imported a chunk at a time: the same rows, report and guarantees as one by one."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import event, insert, select
from sqlmodel import col

from digests import bulk_readers, emails, follows, importer
from digests.db import session_scope
from digests.models import Follow, Subscriber, Subscription

NOW = datetime(2026, 11, 30, 9, 15, tzinfo=UTC)

CSV = """email,countries,sections,frequency,follows
ann@example.org,Belgium;France,Production|Funding,daily,"Lukas Dhont;Be For Films, Inc."
not-an-address,Belgium,,weekly,
bob@example.org,Spain,,weekly,
cy@example.org,,,,
ANN@example.org,Germany,,weekly,
di@example.org,Belgium,,weekly,x
eve@example.org,Czechia,Festivals,instant,Animas;animas
fay@example.org,Belgium;France;Spain;Germany,Production,weekly,
gus@example.org,Belgium,,weekly,Animas;Lukas Dhont;Girl
"""


def _subscriber_row(session, address: str) -> dict:
    row = session.execute(select(Subscriber.__table__).where(Subscriber.email == address)).one()
    return dict(row._mapping)


def _terms(session, subscriber_id: int) -> list[tuple[str, str]]:
    return list(session.execute(
        select(Subscription.kind, Subscription.value)
        .where(Subscription.subscriber_id == subscriber_id).order_by(col(Subscription.id))
    ).all())


def test_a_bulk_row_is_the_row_add_reader_writes(engine, settings):
    with session_scope(engine) as s:
        one = emails.new_reader("one@example.org", ["Belgium", "France"], ["Sales"], "daily",
                                ["Lukas Dhont", "Be For Films"])
        emails.add_reader(s, settings, one, confirmed=True, now=NOW)
    rows = importer.parse("email,countries,sections,frequency,follows\n"
                          "many@example.org,Belgium;France,Sales,daily,Lukas Dhont;Be For Films\n")[0]
    with session_scope(engine) as s:
        refused = bulk_readers.add_readers(s, settings, [r.reader for r in rows], confirmed=True, now=NOW)
    assert refused == [None]
    with session_scope(engine) as s:
        by_one, by_many = _subscriber_row(s, "one@example.org"), _subscriber_row(s, "many@example.org")
        assert by_many.pop("email") == "many@example.org" and by_one.pop("email") == "one@example.org"
        assert by_many.pop("id") != by_one.pop("id")
        assert by_many == by_one  # every other column, defaults included
        assert by_many["email_status"] == "confirmed" and by_many["email_frequency"] == "daily"
        assert by_many["timezone"] == "Europe/Brussels" and by_many["delivery_time"] == "08:00"
        ids = [s.execute(select(Subscriber.id).where(Subscriber.email == a)).scalar_one()
               for a in ("one@example.org", "many@example.org")]
        assert _terms(s, ids[0]) == _terms(s, ids[1]) == [
            ("country", "Belgium"), ("country", "France"), ("section", "Sales")]
        loaded = follows.load(s, ids)
        assert loaded[ids[0]] == loaded[ids[1]] == [("lukas dhont", "Lukas Dhont"),
                                                    ("be for films", "Be For Films")]
    assert [f.phrase for f in follows.listed(engine, ids[1])] == ["Lukas Dhont", "Be For Films"]


@pytest.mark.parametrize("chunk", [2, 500])
def test_mixed_file_gives_the_report_and_rows_of_one_by_one(engine, settings, monkeypatch, chunk):
    monkeypatch.setattr(bulk_readers, "CHUNK", chunk)
    limited = settings.model_copy(update={"max_subscriptions": 4, "max_follows": 2})
    with session_scope(engine) as s:
        s.add(Subscriber(email="bob@example.org", email_status="pending"))
    with session_scope(engine) as s:
        report = importer.import_csv(s, limited, CSV, confirmed=True, now=NOW)
    assert report.imported == [(2, "ann@example.org"), (5, "cy@example.org"), (8, "eve@example.org")]
    assert report.confirmations_queued == 0
    bad = [(b.line, b.email, b.reason) for b in report.bad]
    assert [line for line, _, _ in bad] == [3, 4, 6, 7, 9, 10]
    assert bad[0][2].startswith("invalid address")
    assert bad[1] == (4, "bob@example.org", "bob@example.org is already known (pending)")
    assert bad[2] == (6, "ANN@example.org", "same address as line 2")
    assert bad[3][2].startswith("cannot follow 'x'")
    assert bad[4] == (9, "fay@example.org", "at most 4 countries and sections")
    assert bad[5] == (10, "gus@example.org", "at most 2 names and phrases")
    with session_scope(engine) as s:
        people = {r.email: r for r in s.execute(select(Subscriber)).scalars()}
        assert sorted(people) == ["ann@example.org", "bob@example.org", "cy@example.org", "eve@example.org"]
        assert [(people[a].email_status, people[a].email_frequency, people[a].email_confirmed_at)
                for a in ("ann@example.org", "cy@example.org", "eve@example.org")] == [
            ("confirmed", "daily", NOW), ("confirmed", "weekly", NOW), ("confirmed", "instant", NOW)]
        assert people["bob@example.org"].email_status == "pending"
        assert _terms(s, people["ann@example.org"].id) == [
            ("country", "Belgium"), ("country", "France"), ("section", "Production"), ("section", "Funding")]
        assert _terms(s, people["bob@example.org"].id) == []
        assert _terms(s, people["cy@example.org"].id) == []
        assert _terms(s, people["eve@example.org"].id) == [("country", "Czech Republic"),
                                                           ("section", "Festivals")]
        assert follows.load(s, [p.id for p in people.values()]) == {
            people["ann@example.org"].id: [("lukas dhont", "Lukas Dhont"),
                                           ("be for films inc", "Be For Films, Inc.")],
            people["eve@example.org"].id: [("animas", "Animas")],
        }


def test_a_race_refuses_only_the_raced_row(engine, settings, monkeypatch):
    """Another process stores an address after the chunk's check: the chunk is redone row by row."""
    monkeypatch.setattr(bulk_readers, "CHUNK", 2)
    checked = bulk_readers.known_statuses
    raced = []

    def check_then_race(session, addresses):
        known = checked(session, addresses)
        if not raced:
            with engine.begin() as other:  # a connection of its own, committed before our insert
                other.execute(insert(Subscriber.__table__).values(
                    email="bob@example.org", email_status="confirmed", created_at=NOW))
            raced.append(addresses)
        return known

    monkeypatch.setattr(bulk_readers, "known_statuses", check_then_race)
    text = ("email,countries\nann@example.org,Belgium\nbob@example.org,France\n"
            "cy@example.org,Spain\ndi@example.org,\neve@example.org,Germany\n")
    with session_scope(engine) as s:
        report = importer.import_csv(s, settings, text, confirmed=True, now=NOW)
    assert raced == [["ann@example.org", "bob@example.org"]]
    assert report.imported == [(2, "ann@example.org"), (4, "cy@example.org"), (5, "di@example.org"),
                               (6, "eve@example.org")]
    assert [(b.line, b.email) for b in report.bad] == [(3, "bob@example.org")]
    assert "already known" in report.bad[0].reason
    with session_scope(engine) as s:
        people = {r.email: r.id for r in s.execute(select(Subscriber)).scalars()}
        assert sorted(people) == ["ann@example.org", "bob@example.org", "cy@example.org", "di@example.org",
                                  "eve@example.org"]
        assert _terms(s, people["ann@example.org"]) == [("country", "Belgium")]
        assert _terms(s, people["bob@example.org"]) == []  # the other process's row, untouched
        assert _terms(s, people["eve@example.org"]) == [("country", "Germany")]


def test_a_race_inside_the_file_is_found_by_the_row_by_row_retry(engine, settings):
    """Callers that skip parse() may pass one address twice: the second is refused, as before."""
    twice = [emails.new_reader("ann@example.org", ["Belgium"], [], "weekly"),
             emails.new_reader("ann@example.org", ["France"], [], "daily"),
             emails.new_reader("bob@example.org", [], [], "weekly", ["Girl"])]
    with session_scope(engine) as s:
        refused = bulk_readers.add_readers(s, settings, twice, confirmed=True, now=NOW)
    assert refused[0] is None and refused[2] is None
    assert refused[1].detail == "ann@example.org is already known (confirmed)"
    with session_scope(engine) as s:
        ann = s.execute(select(Subscriber).where(Subscriber.email == "ann@example.org")).scalar_one()
        assert (ann.email_frequency, _terms(s, ann.id)) == ("weekly", [("country", "Belgium")])
        assert s.execute(select(Follow.key)).scalars().all() == ["girl"]


def test_confirmed_readers_take_a_few_statements_per_chunk_not_per_reader(engine, settings):
    text = "email,countries,sections,frequency\n" + "".join(
        f"reader{i}@example.org,Belgium,Production,weekly\n" for i in range(1200))
    good, _ = importer.parse(text)
    statements = []

    def count(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement.split(None, 3)[:3])

    event.listen(engine, "before_cursor_execute", count)
    try:
        with session_scope(engine) as s:
            report = importer.import_rows(s, settings, good, confirmed=True, now=NOW)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(report.imported) == 1200
    # 3 chunks: SELECT, SAVEPOINT, INSERT subscriber, INSERT subscription, RELEASE (and COMMIT).
    assert len(statements) <= 3 * 5 + 2, statements
    with session_scope(engine) as s:
        assert len(s.execute(select(Subscription.id)).all()) == 2400
