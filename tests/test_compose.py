"""Composing digests: golden files (UPDATE_GOLDEN=1 rewrites them), escaping, splitting, caching."""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path

import pytest

from digests.compose import (
    TELEGRAM_LIMIT,
    ArticleView,
    Composer,
    DigestContext,
    TemplateError,
    group_articles,
    make_environment,
    render,
    telegram_length,
)
from tests.fakes import telegram_rules

GOLDEN = Path(__file__).parent / "golden"
BE = ("country", "Belgium")
FR = ("country", "France")
PROD = ("section", "Production")
HOSTILE = "<script>alert(\"x\")</script> & <b>bold</b> 'quoted'"

UNSUB = "https://clapper.example/unsubscribe?token=abc.def-ghi"
PREFS = "https://clapper.example/preferences?token=xyz"
VIEW = "https://clapper.example/view?token=vw&key=digest%3A1"
ARCHIVE = "https://clapper.example/archive"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1" or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        if os.environ.get("UPDATE_GOLDEN") != "1":
            pytest.fail(f"golden file {name} was missing and has been written; check it and rerun")
    assert text == path.read_text(encoding="utf-8"), f"{name} differs; UPDATE_GOLDEN=1 to accept"


def sample_articles() -> list[ArticleView]:
    return [
        ArticleView(
            1,
            "https://cineuropa.org/en/newsdetail/1/",
            "Bartosz Konopka’s The Mute starts filming",
            date(2017, 9, 29),
            "The second feature film by the Oscar-nominated director is a Polish-Belgian co-production",
            ("Poland", "Belgium"),
            ("Production",),
        ),
        ArticleView(
            2,
            "https://cineuropa.org/en/newsdetail/2/?a=1&b=2",
            "Filming wraps on new thriller Animas",
            date(2017, 9, 20),
            "Finished shooting in Seville last Saturday",
            ("Spain", "France"),
            ("Production",),
        ),
        ArticleView(
            3,
            "clapper:text/5f2a",
            "Stijn Coninx draws inspiration from the Brabant killers",
            date(2017, 9, 21),
            "",
            ("Belgium", "Netherlands"),
            ("Production",),
            "interview",
        ),
        ArticleView(
            4,
            "https://cineuropa.org/en/newsdetail/4/",
            HOSTILE,
            date(2017, 9, 14),
            "Summary with <i>tags</i> & ampersands",
            ("France",),
            ("Production", "Co-production"),
        ),
    ]


WEEKLY = DigestContext(
    followed=(BE, FR),
    frequency="weekly",
    local_date=date(2025, 11, 24),
    period_start=date(2025, 11, 17),
)
DAILY_LINKS = DigestContext(
    followed=(BE, PROD),
    frequency="daily",
    local_date=date(2025, 11, 26),
    has_links=True,
    archive_url=ARCHIVE,
)


def belgian(articles: list[ArticleView]) -> list[ArticleView]:
    return [a for a in articles if "Belgium" in a.countries]


def tg_plain(part: str) -> str:
    """The fake Bot API's verdict: raises like Telegram on bad HTML or length."""
    return telegram_rules.message_text(part, "HTML")


# --- golden files ---


def test_telegram_digest_golden():
    digest = Composer().telegram(sample_articles(), WEEKLY)
    assert digest.article_count == 4 and len(digest.parts) == 1
    tg_plain(digest.parts[0])
    check_golden("telegram_digest.html", digest.parts[0] + "\n")


def test_telegram_nothing_new_golden():
    digest = Composer().telegram([], WEEKLY)
    assert digest.template == "telegram/nothing_new.html.j2" and digest.article_count == 0
    tg_plain(digest.parts[0])
    check_golden("telegram_nothing_new.html", digest.parts[0] + "\n")


def test_email_digest_golden_without_public_url():
    digest = Composer().email(sample_articles(), WEEKLY)
    assert digest.subject == "4 new production articles: Belgium, France — week of 17 Nov"
    check_golden("email_digest.html", digest.html + "\n")
    check_golden("email_digest.txt", digest.text)
    # Without PUBLIC_BASE_URL there are no links to fill in, and the reader learns how to stop.
    assert digest.personalise(None, None) == digest
    assert "reply to this email" in digest.text and "reply to this email" in digest.html


def test_email_digest_golden_with_links_and_more():
    composer = Composer(email_max_articles=1)
    digest = composer.email(belgian(sample_articles()), DAILY_LINKS).personalise(UNSUB, PREFS, VIEW)
    assert digest.subject == "2 new production articles: Belgium — 26 Nov"
    # Belgium + Production: the link shows Belgium's production news, as the reader follows.
    more = f"{ARCHIVE}?country=Belgium&section=Production"
    assert f'<a href="{more.replace("&", "&amp;")}"' in digest.html and "1 more in Belgium →" in digest.html
    assert f"1 more in Belgium: {more}" in digest.text
    assert f"View in your browser: {VIEW}" in digest.text
    assert 'href="https://clapper.example/view?token=vw&amp;key=digest%3A1"' in digest.html
    check_golden("email_digest_more.html", digest.html + "\n")
    check_golden("email_digest_more.txt", digest.text)


# --- content rules ---


def test_newest_first_grouped_by_followed_country_each_article_once():
    by, groups = group_articles(sample_articles(), [FR, BE])
    assert by == "country"
    assert [(g.name, [a.id for a in g.articles]) for g in groups] == [("Belgium", [1, 3]), ("France", [2, 4])]


def test_grouped_by_section_when_only_sections_are_followed():
    by, groups = group_articles(sample_articles(), [("section", "Co-production"), PROD])
    assert by == "section"
    assert [(g.name, [a.id for a in g.articles]) for g in groups] == [
        ("Co-production", [4]),
        ("Production", [1, 3, 2]),
    ]
    text = Composer().telegram(
        sample_articles(), DigestContext(followed=(PROD, ("section", "Co-production")))
    )
    plain = tg_plain(text.parts[0])
    assert plain.index("CO-PRODUCTION") < plain.index("PRODUCTION\n")


def test_hostile_titles_are_escaped_everywhere():
    composer = Composer()
    tg = composer.telegram(sample_articles(), WEEKLY).parts[0]
    plain = tg_plain(tg)  # Telegram's parser accepts it ...
    assert HOSTILE in plain  # ... and shows the title exactly as scraped
    assert "Summary with <i>tags</i> & ampersands" in plain
    assert "<script>" not in tg and "&lt;script&gt;" in tg
    mail = composer.email(sample_articles(), WEEKLY)
    assert "<script>" not in mail.html and "<b>bold</b>" not in mail.html
    assert "&lt;script&gt;" in mail.html
    assert HOSTILE in mail.text


def test_text_only_articles_have_no_link():
    tg = Composer().telegram(sample_articles(), WEEKLY).parts[0]
    assert "clapper:text" not in tg
    assert "<b>Stijn Coninx draws inspiration from the Brabant killers</b>" in tg
    mail = Composer().email(sample_articles(), WEEKLY)
    assert "clapper:text" not in mail.html and "clapper:text" not in mail.text


def test_links_with_whitespace_are_encoded_so_telegram_accepts_them():
    article = ArticleView(9, "https://example.org/a b", "T", date(2025, 1, 1), "", ("Belgium",))
    part = Composer().telegram([article], WEEKLY).parts[0]
    assert 'href="https://example.org/a%20b"' in part
    tg_plain(part)


def test_telegram_length_counts_utf16_units_after_entities():
    assert telegram_length("<b>a&amp;b</b>") == 3
    assert telegram_length("🎬") == 2
    assert telegram_length('<a href="https://x">é&#39;</a>') == 2


# --- splitting ---


def many_articles(n: int, summary_len: int = 400, char: str = "x") -> list[ArticleView]:
    return [
        ArticleView(
            i,
            f"https://example.org/{i}",
            f"Article number {i} & friends",
            date(2025, 11, 1 + i % 28),
            (f"{i}: " + (char + " ") * summary_len)[: summary_len * 2],
            ("Belgium" if i % 3 else "France",),
            ("Production",),
        )
        for i in range(1, n + 1)
    ]


@pytest.mark.parametrize("char", ["x", "🎥"])
def test_long_telegram_digest_splits_at_article_boundaries(char):
    articles = many_articles(40, char=char)
    digest = Composer().telegram(articles, WEEKLY)
    parts = digest.parts
    assert len(parts) > 2
    titles: list[str] = []
    for number, part in enumerate(parts, start=1):
        assert telegram_length(part) <= TELEGRAM_LIMIT
        plain = tg_plain(part)
        assert f"({number}/{len(parts)})" in plain.splitlines()[0]
        titles += re.findall(r"Article number (\d+) & friends", plain)
        # Whole articles only: every title in a part has its full summary there too.
        for article_id in re.findall(r"Article number (\d+) & friends", plain):
            assert next(a.summary for a in articles if a.id == int(article_id)).strip() in plain
    expected = [str(a.id) for g in group_articles(articles, WEEKLY.followed)[1] for a in g.articles]
    assert titles == expected  # each article once, order kept across parts
    assert "/settings" in parts[-1] and "/settings" not in parts[0]
    # The parts are reasonably full (no part holds a single article when two would fit).
    assert len(parts) <= sum(telegram_length(p) for p in parts) // (TELEGRAM_LIMIT // 2) + 1


def test_a_single_article_too_long_gets_its_summary_truncated():
    article = ArticleView(1, "https://example.org/1", "Long", date(2025, 11, 1), "word " * 3000, ("Belgium",))
    digest = Composer().telegram([article], WEEKLY)
    assert len(digest.parts) == 1
    plain = tg_plain(digest.parts[0])
    assert telegram_length(digest.parts[0]) <= TELEGRAM_LIMIT
    assert "word…" in plain and "/settings" in plain


def test_short_limit_splits_each_article_into_its_own_part():
    composer = Composer(telegram_limit=700)
    digest = composer.telegram(many_articles(5, summary_len=150), WEEKLY)
    assert len(digest.parts) == 5
    assert all(telegram_length(p) <= 700 for p in digest.parts)


# --- email size cap ---


def test_email_over_the_cap_shows_the_newest_of_each_group_and_links_the_rest():
    articles = many_articles(12, summary_len=20)
    ctx = DigestContext(followed=(BE, FR), frequency="weekly", has_links=True, archive_url=ARCHIVE)
    digest = Composer(email_max_articles=4).email(articles, ctx)
    assert digest.article_count == 12
    # 4 slots over 2 groups: the 2 newest of each; the rest are one link per group.
    assert digest.html.count('class="summary"') == 4
    assert "6 more in Belgium →" in digest.html and "2 more in France →" in digest.html
    assert f"{ARCHIVE}?country=France" in digest.text
    assert digest.subject.startswith("12 new production articles: ")


def test_email_without_a_public_archive_still_counts_the_rest():
    digest = Composer(email_max_articles=2).email(many_articles(12, summary_len=20), WEEKLY)
    assert "7 more in Belgium" in digest.html and "3 more in France" in digest.html
    assert "/archive" not in digest.html
    assert "→" not in digest.html


def test_without_a_view_url_the_view_line_is_dropped():
    digest = Composer().email(sample_articles(), DAILY_LINKS).personalise(UNSUB, PREFS)
    assert "View in your browser" not in digest.html and "View in your browser" not in digest.text
    assert "CLAPPER-PERSONAL" not in digest.html + digest.text


def test_email_is_inlined_and_keeps_media_queries():
    html_part = Composer().email(sample_articles(), WEEKLY).html
    assert '<p class="title" style="' in html_part  # inlined
    assert "@media (prefers-color-scheme: dark)" in html_part
    assert "@media (max-width: 480px)" in html_part
    assert 'name="viewport"' in html_part


# --- cache and personal bits ---


def test_render_cache_is_shared_and_personal_links_stay_out_of_it():
    composer = Composer()
    first = composer.email(sample_articles(), DAILY_LINKS)
    again = composer.email(sample_articles(), DAILY_LINKS)
    assert again is first and composer.renders == 1 and composer.cache_hits == 1
    alice = first.personalise(UNSUB + "A", PREFS + "A")
    bob = first.personalise(UNSUB + "B", PREFS + "B")
    assert UNSUB + "A" in alice.html and UNSUB + "A" in alice.text and UNSUB + "B" not in alice.html
    assert UNSUB + "B" in bob.text and PREFS + "B" in bob.html
    assert "CLAPPER-PERSONAL" not in alice.html + alice.text
    assert "CLAPPER-PERSONAL" in first.html  # the cached copy was not modified
    with pytest.raises(ValueError):
        first.personalise(None, None)
    composer.telegram(sample_articles(), WEEKLY)
    composer.telegram(sample_articles(), WEEKLY)
    composer.telegram(sample_articles()[:2], WEEKLY)
    assert composer.renders == 3 and composer.cache_hits == 2


def test_links_are_escaped_in_html_when_personalised():
    digest = Composer().email(sample_articles(), DAILY_LINKS).personalise(UNSUB + "&x=<1>", PREFS)
    assert 'href="https://clapper.example/unsubscribe?token=abc.def-ghi&amp;x=&lt;1&gt;"' in digest.html
    assert UNSUB + "&x=<1>" in digest.text


def test_nothing_new_email():
    digest = Composer().email([], WEEKLY)
    assert digest.subject == "Nothing new: Belgium, France — week of 17 Nov"
    assert "Nothing new" in digest.html and "No new articles this week" in digest.text


# --- template errors ---


def test_template_errors_name_the_template_and_line(tmp_path):
    (tmp_path / "broken_syntax.html.j2").write_text("<b>ok</b>\n{% if x %}\nno end\n")
    (tmp_path / "undefined.html.j2").write_text("line one\nline two {{ missing_var }}\n")
    (tmp_path / "child.html.j2").write_text('{% extends "base.html.j2" %}\n')
    (tmp_path / "base.html.j2").write_text("a\nb\n{{ 1 / 0 }}\n")
    env = make_environment(tmp_path)
    with pytest.raises(TemplateError, match=r"broken_syntax\.html\.j2:\d") as err:
        render(env, "broken_syntax.html.j2", x=1)
    assert err.value.template == "broken_syntax.html.j2" and err.value.line in (2, 3, 4)
    with pytest.raises(TemplateError, match=r"undefined\.html\.j2:2: .*missing_var") as err:
        render(env, "undefined.html.j2")
    assert err.value.line == 2
    with pytest.raises(TemplateError, match=r"base\.html\.j2:3: ZeroDivisionError"):
        render(env, "child.html.j2")
    with pytest.raises(TemplateError, match=r"template nope\.html\.j2: not found"):
        render(env, "nope.html.j2")


def test_every_shipped_digest_template_compiles():
    env = make_environment()
    for name in (
        "_macros.j2",
        "telegram/digest.html.j2",
        "telegram/nothing_new.html.j2",
        "email/_layout.html.j2",
        "email/digest.html.j2",
        "email/digest.txt.j2",
        "email/digest_subject.txt.j2",
    ):
        env.get_template(name)


def test_errors_inside_a_shared_macro_name_the_macro_file(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "_m.j2").write_text("{% macro boom(a) %}\n{{ a.nope.deeper }}\n{% endmacro %}\n")
    (tmp_path / "sub" / "page.html.j2").write_text('{% import "_m.j2" as m %}\nx\n{{ m.boom(a) }}\n')
    with pytest.raises(TemplateError, match=r"template _m\.j2:2: UndefinedError"):
        render(make_environment(tmp_path), "sub/page.html.j2", a={})
