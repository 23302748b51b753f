"""Search by the phrase rule on real SQLite (FTS5, and the plain fallback) and PostgreSQL (GIN),
over a real Cineuropa listing page (tests/fixtures/production-belgium.txt)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import col, select

from digests import ingest, search
from digests.db import session_scope
from digests.models import Article
from tests.test_importer import cli  # noqa: F401 - fixture by name

PAGE = Path(__file__).parent / "fixtures" / "production-belgium.txt"
NOW = datetime(2019, 8, 1, tzinfo=UTC)


@pytest.fixture
def stored(engine, settings):
    ingest.ingest_file(engine, settings, PAGE, now=NOW)
    return engine


def titles(engine, words, **kw) -> list[str]:
    with session_scope(engine) as session:
        return [a.title for a in search.search(session, words, **kw).articles]


def backend(engine) -> str:
    with session_scope(engine) as session:
        return search._backend(session)


def test_the_rule_on_a_real_listing(stored):
    assert backend(stored) in {"fts5", "postgresql"}
    assert titles(stored, "jose ortuno") == ["Filming wraps on new thriller Animas"]
    assert titles(stored, "ANIMAS") == ["Filming wraps on new thriller Animas"]
    assert titles(stored, "don't shoot") == titles(stored, "Don’t Shoot") == [
        "Stijn Coninx draws inspiration from the Brabant killers in Don't Shoot"]
    # "Girl" as a word: Dhont's film, and "Party Girl" in a summary; never "Girlfriend".
    assert titles(stored, "girl") == ["Lukas Dhont shooting his feature debut, Girl",
                                      "Real Love, the imminent return of Claire Burger"]
    assert titles(stored, "be for films") == ["Marie-Sophie Chambon gears up for 100 kilos d'étoiles"]
    assert titles(stored, "marie sophie chambon") == titles(stored, "Marie-Sophie Chambon")
    assert titles(stored, "films be for") == []
    assert titles(stored, "ortun") == []  # whole words only
    assert titles(stored, "girl", limit=1) == ["Lukas Dhont shooting his feature debut, Girl"]
    assert titles(stored, "girl", since=date(2017, 8, 20)) == ["Lukas Dhont shooting his feature debut, Girl"]


def test_counts_newest_first_and_edits_reach_the_index(stored):
    with session_scope(stored) as session:
        found = search.search(session, "belgian", count=True, limit=2)
        assert found.count >= 2 and len(found.articles) == 2
        assert found.articles[0].published >= found.articles[1].published
        row = session.exec(select(Article).where(col(Article.title).like("Filming wraps%"))).one()
        row.summary = "Now with Jean-Pierre Léaud."
    assert titles(stored, "jose ortuno") == []
    assert titles(stored, "jean pierre leaud") == ["Filming wraps on new thriller Animas"]
    with session_scope(stored) as session:
        session.delete(session.exec(select(Article).where(col(Article.title).like("Filming wraps%"))).one())
    assert titles(stored, "jean pierre leaud") == []


# The fallback is what a SQLite without FTS5 uses: there is no PostgreSQL case.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_plain_fallback_gives_the_same_answers(stored, db_url):
    before = {w: titles(stored, w) for w in ("girl", "be for films", "jose ortuno", "don t shoot")}
    with stored.begin() as conn:
        for name in ("article_fts_insert", "article_fts_delete", "article_fts_update"):
            conn.execute(text(f"DROP TRIGGER {name}"))
        conn.execute(text("DROP TABLE article_fts"))
    assert backend(stored) == "plain"
    assert {w: titles(stored, w) for w in before} == before


def test_find_checks_input(stored):
    assert search.find(stored, "").problem == "empty"
    assert search.find(stored, "—").problem == "no_words"
    assert search.find(stored, "x" * 201).problem == "long"
    assert [a.title for a in search.find(stored, '"Lukas Dhont"').articles] == [
        "Lukas Dhont shooting his feature debut, Girl"]


def test_cli_articles_match(cli, engine, settings):  # noqa: F811
    ingest.ingest_file(engine, settings, PAGE, now=NOW)
    r = cli("articles", "--match", "jose ortuno", "--json")
    assert r.exit_code == 0 and '"title": "Filming wraps on new thriller Animas"' in r.stdout
    assert len(r.stdout.splitlines()) == 1
    r = cli("articles", "--match", "girl", "--country", "Netherlands")
    assert r.exit_code == 0 and "Lukas Dhont" in r.stdout and "Claire Burger" not in r.stdout
    assert cli("articles", "--match", "--").exit_code == 2
