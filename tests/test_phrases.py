"""The phrase rule, pure: normalising, whole words, one-pass matching, and what a reader gets."""

from __future__ import annotations

from datetime import date

from digests import phrases
from digests.compose import ArticleView, DigestContext
from digests.matching import select_with_phrases


def test_words_fold_case_accents_apostrophes_hyphens_and_ligatures():
    assert phrases.words("José Ortuño's") == ("jose", "ortuno", "s")
    assert phrases.words("Don’t Shoot") == phrases.words("don't shoot") == ("don", "t", "shoot")
    assert phrases.words("Jean-Pierre Dardenne") == ("jean", "pierre", "dardenne")
    assert phrases.words("ÁNGELA MOLINA") == ("angela", "molina")
    assert phrases.words("Straße ﬁlm") == ("strasse", "film")  # casefold and NFKD ligatures
    assert phrases.words("L’Infini, 100 kilos d'étoiles!") == ("l", "infini", "100", "kilos", "d", "etoiles")
    assert phrases.words(" -- ") == ()


def test_key_clean_and_limits():
    assert phrases.clean('  "Be   For Films" ') == "Be For Films"
    assert phrases.clean("“Lukas Dhont”") == "Lukas Dhont"
    assert phrases.key("Be For Films") == "be for films"
    assert phrases.problem("x") == "short"
    assert phrases.problem("x" * 61) == "long"
    assert phrases.problem("x" * 60) is None
    assert phrases.problem("--") == "no_words"
    assert phrases.problem("Go") is None


def test_whole_words_in_order_in_title_or_summary():
    title = "Lukas Dhont shooting his feature debut, Girl"
    assert phrases.article_matches(("girl",), title, "")
    assert not phrases.article_matches(("girl",), "Girlfriend premieres", "A girlish comedy")
    assert phrases.article_matches(("lukas", "dhont"), title, "")
    assert not phrases.article_matches(("dhont", "lukas"), title, "")  # order matters
    assert not phrases.article_matches(("lukas", "shooting"), title, "")  # together
    # Title and summary are separate texts: a phrase never spans the two.
    assert not phrases.article_matches(("girl", "the"), title, "The promising young Flemish director")
    assert phrases.article_matches(("jose", "ortuno"), "Filming wraps", "Laura Alvea and José Ortuño, with")
    assert phrases.article_matches(("don", "t", "shoot"), "Stijn Coninx … in Don’t Shoot", "")


def test_index_finds_every_phrase_of_every_length_in_one_pass():
    index = phrases.PhraseIndex(["be for films", "be", "films", "for films inc", "koro films"])
    assert len(index) == 5
    text = phrases.words("A Koro Films production, sold by Be For Films")
    assert index.find(text) == {"be for films", "be", "films", "koro films"}
    assert index.find(phrases.words("Before films")) == {"films"}
    assert phrases.PhraseIndex([]).find(text) == set()


def test_match_articles_and_reasons_keep_the_first_phrase_a_reader_listed():
    articles = [(1, "Lukas Dhont shooting Girl", ""), (2, "Girlfriend", "Girl, interrupted"),
                (3, "Nothing here", "")]
    hits = phrases.match_articles(["girl", "lukas dhont", "nobody"], articles)
    assert hits == {"girl": [1, 2], "lukas dhont": [1]}
    readers = {"ann": [("lukas dhont", "Lukas Dhont"), ("girl", "Girl")], "bo": [("nobody", "x")]}
    why = phrases.reasons(readers, hits)
    assert why == {"ann": {1: "Lukas Dhont", 2: "Girl"}}


def test_phrases_add_to_the_tag_rule_and_say_why_only_for_what_they_alone_brought():
    views = {i: ArticleView(i, f"https://e.org/{i}", f"t{i}", date(2026, 1, i)) for i in (1, 2, 3, 4)}
    order = {4: 0, 3: 1, 2: 2, 1: 3}  # newest first
    seen = {1: 10, 2: 10, 3: 10, 4: 1}  # article 4 is older than the watermark (5)
    hits = {"girl": [1, 2, 4], "dhont": [2]}
    selected, extra, because = select_with_phrases((2,), (("dhont", "Dhont"), ("girl", "Girl")), hits, order,
                                                   views, seen, 5)
    assert ([a.id for a in selected], [a.id for a in extra]) == ([2], [1])
    assert because == ((1, "Girl"),)
    assert select_with_phrases((2,), (), hits, order, views, seen, 5) == ((views[2],), (), ())
    ctx = DigestContext(because=because)
    assert (ctx.why(1), ctx.why(2)) == ("Girl", None)


def test_phrase_block_joins_the_last_part_or_comes_as_messages_that_fit():
    from digests.compose import Composer, telegram_length

    base = [ArticleView(1, "https://e.org/1", "Ghent shoot", date(2026, 1, 2), countries=("Belgium",))]
    extra = [ArticleView(i, f"https://e.org/{i}", f"Dhont news {i}", date(2026, 1, 1), summary="x " * 200)
             for i in range(2, 12)]
    ctx = DigestContext(followed=(("country", "Belgium"),), because=tuple((a.id, "Dhont") for a in extra))
    small = Composer().telegram(base, ctx, extra[:1])
    assert len(small.parts) == 1 and small.article_count == 2
    assert "1 MORE ARTICLE FOR NAMES YOU FOLLOW" in small.parts[0]
    assert small.parts[0].index("Dhont news 2") < small.parts[0].index("Change what you follow")
    big = Composer(telegram_limit=1500).telegram(base, ctx, extra)
    assert len(big.parts) > 2 and all(telegram_length(p) <= 1500 for p in big.parts)
    assert "CLAPPER-PHRASES" not in "".join(big.parts) and big.article_count == 11
    assert sum(p.count("you follow Dhont") for p in big.parts) == 10
    plain = Composer().telegram(base, DigestContext(followed=(("country", "Belgium"),)))
    assert "CLAPPER-PHRASES" not in plain.parts[0] and "FOR NAMES YOU FOLLOW" not in plain.parts[0]
