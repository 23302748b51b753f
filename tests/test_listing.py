"""Listing pages: the bundled sample exactly, then each variant of the family, text and HTML."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

import pytest

from digests.config import SAMPLE_LISTING
from digests.sources import listing

FIXTURES = Path(__file__).parent / "fixtures"

# (title, summary, published, sections, countries) for every record of production-belgium.txt
SAMPLE = [
    (
        "Bartosz Konopka’s The Mute starts filming",
        "The second feature film by the Oscar-nominated director is a Polish-Belgian co-production",
        date(2017, 9, 29),
        ("Production",),
        ("Poland", "Belgium"),
    ),
    (
        "Filming wraps on new thriller Animas",
        "The second collaboration of director duo Laura Alvea and José Ortuño, starring prominent actors "
        "Ángela Molina and Luis Bermejo, finished shooting in Seville last Saturday",
        date(2017, 9, 20),
        ("Production",),
        ("Spain", "Belgium"),
    ),
    (
        "Stijn Coninx draws inspiration from the Brabant killers in Don't Shoot",
        "The Flemish director started principal photography for his new film in late August; the movie is "
        "based on the infamous criminal case, and more specifically on the testimony of a survivor",
        date(2017, 9, 20),
        ("Production",),
        ("Belgium", "Netherlands"),
    ),
    (
        "Matteo Rovere on set with Romulus and Remus, The First King",
        "After six David di Dontaello awards for Italian Race, the director has started filming with "
        "Alessandro Borghi on the legend of the founding of Rome. Belgium are co-producing",
        date(2017, 9, 14),
        ("Production",),
        ("Italy", "Belgium"),
    ),
    (
        "Lukas Dhont shooting his feature debut, Girl",
        "The promising young Flemish director, who has been making a splash with his award-festooned short "
        "L’Infini and his music videos, is now venturing into feature territory",
        date(2017, 8, 24),
        ("Production",),
        ("Belgium", "Netherlands"),
    ),
    (
        "Marie-Sophie Chambon gears up for 100 kilos d'étoiles",
        "Shooting is imminent for the filmmaker's first feature, a Koro Films production, which will be "
        "distributed in France by Bac and sold by Be For Films",
        date(2017, 8, 16),
        ("Production",),
        ("France", "Belgium"),
    ),
    (
        "Real Love, the imminent return of Claire Burger",
        "Bouli Lanners features in the first feature-length film by the director of Party Girl. A Dharamsala "
        "production sold by Indie Sales",
        date(2017, 8, 14),
        ("Production",),
        ("France", "Belgium"),
    ),
    (
        "Charlotte Rampling is Hannah for Andrea Pallaoro",
        "The second film by the director of Medeas is in competition at the 74th Venice Film Festival, "
        "and is the first chapter in a trilogy centring on women. An Italian-Belgian-French co-production",
        date(2017, 7, 28),
        ("Production",),
        ("Italy", "Belgium", "France"),
    ),
    (
        "Thierry Lhermitte stars in In the Game",
        "The actor has finished filming on Robin Sykes’ debut film. A 24 25 Films production with Belgium "
        "which will be distributed by UGC in France",
        date(2017, 7, 26),
        ("Production",),
        ("France", "Belgium"),
    ),
    (
        "Two young female directors make their first foray into features for Artemis",
        "Artemis Productions will be kicking off filming, in this second half of 2017, on two debut feature "
        "films, Escapada by Sarah Hirtt and Cavale by Virginie Gourmel",
        date(2017, 7, 14),
        ("Production",),
        ("Belgium",),
    ),
]


def test_sample_page_exactly():
    page = listing.parse(SAMPLE_LISTING.read_text(encoding="utf-8"), fetched=date(2026, 11, 26))
    assert page.heading == "Production / Belgium"
    assert page.total == 301
    assert page.first_date == date(2002, 10, 21)
    assert page.last_published == date(2019, 7, 29)
    assert page.skipped == 0
    assert page.next_url is None
    got = [(a.title, a.summary, a.published, a.sections, a.countries) for a in page.articles]
    assert got == SAMPLE
    assert {a.kind for a in page.articles} == {"article"}
    urls = [a.url for a in page.articles]
    assert all(u.startswith("clapper:text/") for u in urls)
    assert len(set(urls)) == 10


def test_sample_is_the_shared_fixture():
    assert SAMPLE_LISTING.read_text(encoding="utf-8") == (FIXTURES / "production-belgium.txt").read_text(
        encoding="utf-8"
    )


def test_text_ids_are_stable_and_depend_on_title_and_date():
    first = listing.parse(SAMPLE_LISTING.read_text(encoding="utf-8"))
    again = listing.parse(SAMPLE_LISTING.read_text(encoding="utf-8").replace("\n", "\r\n"))
    assert [a.url for a in first.articles] == [a.url for a in again.articles]
    assert listing.text_id("Girl", date(2017, 8, 24)) == listing.text_id("  GIRL ", date(2017, 8, 24))
    assert listing.text_id("Girl", date(2017, 8, 24)) != listing.text_id("Girl", date(2017, 8, 25))
    assert listing.text_id("Girl", date(2017, 8, 24)) != listing.text_id("Girls", date(2017, 8, 24))


# ----------------------------------------------------------------------------- the text family


@pytest.fixture
def variants(caplog):
    with caplog.at_level(logging.DEBUG, logger="digests.sources.listing"):
        page = listing.parse((FIXTURES / "listing-variants.txt").read_text(encoding="utf-8"))
    # caplog forgets a fixture's records once the test body starts; keep them.
    return page, list(caplog.records)


def test_variants_header_and_count(variants):
    page, _ = variants
    assert page.heading == "Festivals / Canada"
    assert (page.total, page.first_date, page.last_published) == (57, date(2012, 9, 11), date(2024, 9, 15))
    assert len(page.articles) == 5


def test_yearless_dates_resolve_against_the_page_date(variants):
    page, _ = variants
    dates = {a.title: a.published for a in page.articles}
    assert dates["Three Belgian-French films get regional support"] == date(2024, 9, 14)
    assert dates["Canadian debut wins the Platform prize"] == date(2024, 9, 8)
    # 28/12 cannot be after the page's 15/09/2024: it is the year before.
    assert dates["Sales agent picks up Croatian thriller"] == date(2023, 12, 28)
    assert dates["A film shot on both sides of the Ohrid lake"] == date(2023, 11, 30)


def test_several_sections_and_countries(variants):
    a = variants[0].articles[0]
    assert a.sections == ("Production", "Funding")
    assert a.countries == ("France", "Belgium")
    assert a.summary == "Wallimage and the CNC back projects by Bas Devos, Fien Troch and Alice Diop"


def test_interview_record(variants):
    a = variants[0].articles[1]
    assert a.kind == "interview"
    assert a.title == "Marta Nowak • Director of Quiet Waters"
    assert a.summary == "“We shot everything on the island, in winter, with a crew of nine”"
    assert a.sections == ("Interviews",)
    assert a.countries == ("Poland", "Czech Republic")


def test_festival_without_country(variants):
    a = variants[0].articles[2]
    assert a.sections == ("Festivals", "Platform")
    assert a.countries == ()


def test_single_title_line_aliases_and_unknown_countries(variants):
    page, records = variants
    a = page.articles[3]
    assert a.title == "A film shot on both sides of the Ohrid lake"
    assert a.summary.startswith("Production starts on a North Macedonian-Albanian drama")
    assert a.countries == ("North Macedonia", "Albania", "Bosnia and Herzegovina")
    # An unknown name in the country slot is dropped (and said at debug), never made a section.
    b = page.articles[4]
    assert b.sections == ("Sales", "Production") and b.countries == ()
    debug = [r.getMessage() for r in records if r.levelno == logging.DEBUG]
    assert sum("Gondor" in m for m in debug) == 2


def test_cut_off_last_record_is_skipped_with_a_warning(variants):
    page, records = variants
    assert page.skipped == 1
    assert all("Tallinn" not in a.title for a in page.articles)
    warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "cut off" in warnings[0] and "Shooting wraps in Tallinn" in warnings[0]


def test_yearless_dates_fall_back_to_the_fetch_date_without_a_page_date():
    text = (
        "Production / Spain\n\nA title\n\nA title\n\nA summary\n\n03/01 | Production | Spain\n\n"
        "Older\n\nOlder\n\nIts summary\n\n20/12 | Production | Spain\n"
    )
    page = listing.parse(text, fetched=date(2025, 1, 10))
    assert page.heading == "Production / Spain"
    assert page.total is None
    assert [a.published for a in page.articles] == [date(2025, 1, 3), date(2024, 12, 20)]


def test_resolve_day_month_edges():
    ref = date(2025, 3, 1)
    assert listing.resolve_day_month(1, 3, ref) == date(2025, 3, 1)  # the same day is not "after"
    assert listing.resolve_day_month(2, 3, ref) == date(2024, 3, 2)
    assert listing.resolve_day_month(29, 2, ref) == date(2024, 2, 29)  # the last leap year
    assert listing.resolve_day_month(31, 4, ref) is None
    assert listing.resolve_day_month(1, 13, ref) is None


def test_footer_and_pagination_junk_are_not_a_cut_off_record(caplog):
    text = (
        "Markets / Italy\n\n2 articles available in total\n\nT\n\nT\n\nS\n\n01/02/2024 | Markets | Italy\n\n"
        "« previous\n\n1 2 3\n\nnext »\n\nPrivacy Policy"
    )
    with caplog.at_level(logging.WARNING):
        page = listing.parse(text)
    assert [a.title for a in page.articles] == ["T"]
    assert page.articles[0].sections == ("Markets",)
    assert page.skipped == 0 and not caplog.records


def test_garbage_has_no_articles():
    page = listing.parse("Hello there.\nNothing to see.\n")
    assert page.articles == [] and page.total is None


# ----------------------------------------------------------------------------- HTML


BASE = "https://cineuropa.org/en/production/france/"


@pytest.fixture
def html_page():
    return listing.parse(
        (FIXTURES / "listing-production-france.html").read_text(encoding="utf-8"), base_url=BASE
    )


def test_html_page_header_and_pagination(html_page):
    assert html_page.heading == "Production / France"
    assert html_page.total == 128
    assert html_page.last_published == date(2025, 3, 12)
    assert html_page.next_url == "https://cineuropa.org/en/production/france/p/2/"
    assert html_page.skipped == 0


def test_html_records(html_page):
    got = [(a.title, a.url, a.published, a.sections, a.countries, a.kind) for a in html_page.articles]
    assert got == [
        (
            "Céline Devaux wraps her second feature, «Les Oiseaux»",
            # The parser keeps the link as found; ingest canonicalises it.
            "https://cineuropa.org/en/newsdetail/470001/?utm_source=rss&utm_medium=list#comments",
            date(2025, 3, 12),
            ("Production", "Funding"),
            ("France", "Belgium"),
            "article",
        ),
        (
            "Léa Fontaine • Director of The Quiet Shore",
            "https://cineuropa.org/en/interview/470002/",
            date(2025, 3, 10),
            ("Production", "Interviews"),
            ("France",),
            "interview",
        ),
        (
            "Funding boost for first features in Occitanie",
            "https://cineuropa.org/en/newsdetail/469870/",
            date(2024, 12, 28),
            ("Funding", "Production"),
            ("France", "Spain"),
            "article",
        ),
        (
            "Ozon's new drama premieres in Platform",
            "https://cineuropa.org/en/newsdetail/466120/",
            date(2024, 9, 8),
            ("Festivals", "Platform"),
            (),
            "article",
        ),
        (
            "Cameras roll on a Franco-Macedonian road movie",
            "https://cineuropa.org/en/newsdetail/465001/",
            date(2024, 9, 2),
            ("Production",),
            ("France", "North Macedonia", "Bosnia and Herzegovina"),
            "article",
        ),
    ]
    assert html_page.articles[0].summary.startswith(
        "The French animator-turned-director shot for eight weeks"
    )
    assert html_page.articles[1].summary == "“I wanted the sea to be a character, not a backdrop”"


def test_html_next_page_from_page_two_and_rel_next():
    html = (FIXTURES / "listing-production-france.html").read_text(encoding="utf-8")
    page2 = listing.parse(html.replace('/p/2/">2<', '/p/1/">1<'), base_url=BASE + "p/2/")
    assert page2.next_url == "https://cineuropa.org/en/production/france/p/3/"
    last = listing.parse(html, base_url=BASE + "p/3/")
    assert last.next_url is None
    rel = listing.parse(
        "<html><body><main><h1>Awards / Spain</h1><p>1 articles available</p>"
        '<div><h3><a href="/a/1/">Goya shortlist</a></h3><p>Five films</p>'
        "<p>01/01/2025 | Awards | Spain</p></div>"
        '</main><a rel="next" href="?page=2">next</a></body></html>',
        base_url="https://example.org/awards/",
    )
    assert rel.next_url == "https://example.org/awards/?page=2"
    assert [(a.title, a.url, a.sections) for a in rel.articles] == [
        ("Goya shortlist", "https://example.org/a/1/", ("Awards",))
    ]


def test_html_without_links_falls_back_to_text_ids():
    html = (
        "<html><body><h1>Production / Italy</h1><div><h2>No link here</h2><p>Summary</p>"
        "<p>05/05/2024 | Production | Italy</p></div></body></html>"
    )
    page = listing.parse(html)
    assert page.articles[0].url == listing.text_id("No link here", date(2024, 5, 5))


def test_date_and_tags_on_separate_lines_either_order():
    html = (
        "<html><body><main><h1>Production / Spain</h1><p>2 articles available in total.</p>"
        '<article><h2><a href="/n/1/">Tags after the date</a></h2><p>First summary</p>'
        '<div class="date">03/02/2025</div><div class="tags">Production | Spain/Portugal</div></article>'
        '<article><h2><a href="/n/2/">Tags before the date</a></h2><p>Second summary</p>'
        '<div class="tags">Festivals | Berlinale 2025 | Spain</div>'
        '<div class="date">01/02/2025</div></article>'
        "</main></body></html>"
    )
    page = listing.parse(html, base_url="https://example.org/production/")
    got = [(a.title, a.summary, a.published, a.sections, a.countries) for a in page.articles]
    assert got == [
        ("Tags after the date", "First summary", date(2025, 2, 3), ("Production",), ("Spain", "Portugal")),
        ("Tags before the date", "Second summary", date(2025, 2, 1), ("Festivals",), ("Spain",)),
    ]
    assert page.skipped == 0


def test_article_cards_with_their_own_header_and_footer():
    html = (
        "<html><body><header><nav><a href='/'>Home</a></nav><p>Site banner</p></header>"
        "<h1>Reviews / Denmark</h1><p>1 articles available in total.</p>"
        '<article><header><h2><a href="/r/9/">A quiet Danish drama</a></h2></header>'
        "<p>Review of a debut feature</p><footer>09/01/2025 | Reviews | Denmark</footer></article>"
        "<footer><p>Privacy Policy</p></footer></body></html>"
    )
    page = listing.parse(html, base_url="https://example.org/")
    assert [(a.title, a.url, a.sections, a.countries) for a in page.articles] == [
        ("A quiet Danish drama", "https://example.org/r/9/", ("Reviews",), ("Denmark",))
    ]
    assert page.heading == "Reviews / Denmark" and page.skipped == 0
