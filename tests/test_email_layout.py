"""Email layout that survives every client: tables, mso conditionals, dark/mobile CSS in every
email, a preheader with spacer, and big digests that keep every group under Gmail's clip size."""

from __future__ import annotations

import re
from datetime import date, timedelta

from digests import broadcast, catalog, emails
from digests.compose import ArticleView, Composer, DigestContext
from digests.email_groups import choose_caps

ARCHIVE = "https://clapper.example/archive"


def _check_every_client(page: str) -> None:
    assert "@media (prefers-color-scheme: dark)" in page and "@media (max-width: 480px)" in page
    assert '<table role="presentation"' in page
    assert "<!--[if mso]>" in page and "<![endif]-->" in page
    preheader = re.search(r'<div class="preheader"[^>]*>(.*?)</div>', page, re.S)
    assert preheader, "no preheader"
    # Outlook for Windows shows display:none text unless told mso-hide (the Cerberus pattern).
    assert "mso-hide: all" in page.split('<div class="preheader"')[1].split(">")[0]
    text = preheader.group(1)
    # css-inline writes the spacer's invisible characters as they are (and &nbsp; as an entity).
    assert text.count("\u034f\u200c") >= 30
    assert text.split("\u034f")[0].strip(), "the preheader has no words before its spacer"


def test_confirmation_email_has_dark_and_mobile_css_a_preheader_and_a_bulletproof_button():
    mail = emails.render_email(
        "confirm",
        code=None,
        confirm_url="https://x.example/confirm?token=a&b",
        address="a@b.example",
        minutes=30,
        from_bot=False,
    )
    _check_every_client(mail.html)
    assert "Confirm a@b.example" in mail.html
    vml = (
        '<v:roundrect xmlns:v="urn:schemas-microsoft-com:vml" href="https://x.example/confirm?token=a&amp;b"'
    )
    assert vml in mail.html
    assert '<a class="btn" href="https://x.example/confirm?token=a&amp;b"' in mail.html


def test_announcement_email_has_a_heading_wrapped_text_and_the_same_layout():
    body = broadcast.prepare("New: Czech news. " + "Clapper now follows Czech productions too. " * 6)
    mail = broadcast.render_email(body, unsubscribe_url="https://x/u", preferences_url="https://x/p")
    _check_every_client(mail.html)
    assert re.search(r"<h1[^>]*>News from Clapper</h1>", mail.html)
    lines = mail.text.splitlines()
    assert lines[0] == "News from Clapper"
    assert max(len(line) for line in lines) <= 76
    assert "Clapper now follows Czech productions too." in " ".join(lines)


def _big(n: int) -> list[ArticleView]:
    countries = list(catalog.countries())[:12]
    return [
        ArticleView(
            i,
            f"https://news.example/{i}",
            f"Production {i} starts filming in {countries[i % 12]}",
            date(2026, 11, 30) - timedelta(days=i % 20),
            "A long summary of the shoot, its cast, its funding and its co-producers. " * 3,
            (countries[i % 12],),
            ("Production",) if i % 2 else ("Funding",),
        )
        for i in range(1, n + 1)
    ], countries


def test_a_400_article_digest_shows_every_group_newest_first_under_100_kb():
    articles, countries = _big(400)
    ctx = DigestContext(
        followed=tuple(("country", c) for c in countries),
        frequency="weekly",
        has_links=True,
        archive_url=ARCHIVE,
    )
    digest = Composer(email_max_articles=50).email(articles, ctx)
    size = len(digest.html.encode())
    assert size < 100_000, size
    for country in countries:
        assert re.search(rf"<h2[^>]*>{re.escape(country)}</h2>", digest.html), country
        assert re.search(rf"\d+ more in {re.escape(country)} →", digest.html), country
        assert f"== {country} ==" in digest.text
    # Mixed sections: the headline does not claim they are all production articles.
    assert digest.subject.startswith("400 new articles: ")
    assert "400 new articles" in digest.html and "production articles" not in digest.html
    # Inside each group the newest comes first.
    first = digest.text.split(f"== {countries[1]} ==")[1].split("==")[0]
    shown_dates = re.findall(r"^(\d+ \w{3} 2026)", first, re.M)
    assert shown_dates and shown_dates == sorted(shown_dates, key=lambda d: int(d.split()[0]), reverse=True)


def test_the_newest_group_comes_first_and_the_preheader_names_its_newest_title():
    prod = ("Production",)
    older = ArticleView(1, "https://a/1", "Old Austrian shoot", date(2026, 11, 1), "", ("Austria",), prod)
    newer = ArticleView(2, "https://a/2", "New Zambian shoot", date(2026, 11, 29), "", ("Zambia",), prod)
    ctx = DigestContext(followed=(("country", "Austria"), ("country", "Zambia")), frequency="daily")
    digest = Composer().email([older, newer], ctx)
    assert digest.subject.startswith("2 new production articles: Zambia, Austria")
    assert digest.html.index("New Zambian shoot") < digest.html.index("Old Austrian shoot")
    preheader = re.search(r'<div class="preheader"[^>]*>(.*?)\u034f', digest.html, re.S).group(1)
    assert preheader == "Zambia, Austria: New Zambian shoot"
    _check_every_client(digest.html)


def test_following_every_country_still_fits_and_the_newest_groups_keep_an_article():
    countries = list(catalog.countries())
    articles = [
        ArticleView(
            i,
            f"https://news.example/{i}",
            f"Shoot {i} in {countries[i % len(countries)]}",
            date(2026, 11, 30) - timedelta(days=i),  # lower ids are newer
            "A summary long enough to matter. " * 4,
            (countries[i % len(countries)],),
            ("Production",),
        )
        for i in range(1, 501)
    ]
    ctx = DigestContext(
        followed=tuple(("country", c) for c in countries),
        frequency="weekly",
        has_links=True,
        archive_url=ARCHIVE,
    )
    digest = Composer().email(articles, ctx)
    assert len(digest.html.encode()) < 100_000
    assert digest.html.count("<h2") == len(countries)
    assert len(re.findall(r"\d+ more in [^<]+ →", digest.html)) == len(countries)
    shown = digest.html.count('class="summary"')
    assert shown >= 1
    # The article kept is the newest (id 1 first), not the alphabetically first group's.
    assert "Shoot 1 in" in digest.html


def test_choose_caps_shrinks_the_shared_cap_then_keeps_the_newest_groups():
    assert choose_caps(4, 12, lambda caps: sum(caps) <= 10) == [2, 2, 2, 2]
    assert choose_caps(5, 3, lambda caps: sum(caps) <= 2) == [1, 1, 0, 0, 0]
    assert choose_caps(3, 50, lambda caps: True) == [50, 50, 50]
    assert choose_caps(3, 5, lambda caps: sum(caps) == 0) == [0, 0, 0]
