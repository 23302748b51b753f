"""Real listing pages of every edition (English, French, Spanish, Italian), expectations by hand.

The pages in tests/corpus/listings/ are text dumps of public cineuropa.org pages as stored in the
search tool's page corpus (each file is named after its page: es-tag-espana-francia.txt is
https://cineuropa.org/es/tag/?tag=España+/+Francia, it-interviews-p2.txt is
https://cineuropa.org/it/interviews/p/2 …). The stored copies end mid-record; each file stops
after its last whole record. Nothing in them was written here, and none were used to develop the
parser's English rules: the French, Spanish and Italian rules were written from the issue's list
before these pages were read.

Each record: (published, kind, title, sections, countries, festivals); sections are compared as
sets (their order is the page's), countries and festivals in the page's order.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from digests.sources import INTERVIEW, listing

CORPUS = Path(__file__).parent / "corpus" / "listings"
ART, INT = "article", INTERVIEW
F = "Festivals"
IV = "Interviews"
RV = "Reviews"

# file: (heading, total, first date, last published, records)
PAGES: dict[str, tuple] = {
    "es-tag-espana-francia.txt": (
        "España / Francia",
        332,
        date(2002, 6, 21),
        date(2026, 3, 5),
        [
            (
                date(2026, 3, 5),
                ART,
                "Florian Zeller ha dirigido a Penélope Cruz y Javier Bardem en Bunker",
                {"Production", "Funding"},
                ("France", "Spain"),
                (),
            ),
            (
                date(2026, 2, 24),
                INT,
                "Marcelo Martinessi • Director de Narciso",
                {F, "Panorama", IV},
                (),
                ("Berlinale 2026",),
            ),
            (
                date(2026, 2, 18),
                INT,
                "Carlo d’Ursi • Productor de Chicas tristes",
                {F, "Generation", IV},
                (),
                ("Berlinale 2026",),
            ),
            (date(2026, 2, 18), ART, "Crítica: Narciso", {F, "Panorama", RV}, (), ("Berlinale 2026",)),
        ],
    ),
    "es-tag-espana-mexico.txt": (
        "España / México",
        62,
        date(2014, 3, 28),
        date(2026, 2, 18),
        [
            (
                date(2026, 2, 18),
                INT,
                "Carlo d’Ursi • Productor de Chicas tristes",
                {F, "Generation", IV},
                (),
                ("Berlinale 2026",),
            ),
            (
                date(2026, 2, 17),
                INT,
                "Fernanda Tovar • Directora de Chicas tristes",
                {F, "Generation", IV},
                (),
                ("Berlinale 2026",),
            ),
            (
                date(2026, 2, 14),
                ART,
                "Crítica: Chicas tristes",
                {F, "Generation", RV},
                (),
                ("Berlinale 2026",),
            ),
            (
                date(2026, 2, 10),
                ART,
                "EXCLUSIVA: Póster de Chicas tristes, seleccionada en Berlinale Generation",
                {F, "Generation"},
                (),
                ("Berlinale 2026",),
            ),
        ],
    ),
    "es-interviews-p10.txt": (
        "Entrevistas",
        7984,
        date(2002, 8, 19),
        date(2025, 8, 29),
        [
            (
                date(2025, 5, 26),
                INT,
                "Marion Guillard • Directora de We Had Fun Yesterday",
                {F, "Markets", IV},
                (),
                ("Cannes 2025", "Marché du Film"),
            ),
            (
                date(2025, 5, 26),
                INT,
                "Masha Chernaya • Director de The Shards",
                {F, "Markets", IV},
                (),
                ("Cannes 2025", "Marché du Film"),
            ),
            (
                date(2025, 5, 26),
                INT,
                "Zuzana Kirchnerová • Directora de Caravan",
                {F, "Un Certain Regard", IV},
                (),
                ("Cannes 2025",),
            ),
            (
                date(2025, 5, 26),
                INT,
                "Lise Akoka y Romane Gueret • Directoras de Ma frère",
                {F, "Cannes Première", IV},
                (),
                ("Cannes 2025",),
            ),
        ],
    ),
    "es-interviews-p83.txt": (
        "Entrevistas",
        8018,
        date(2002, 8, 19),
        date(2025, 9, 6),
        [
            (
                date(2023, 9, 11),
                INT,
                "Mika Gustafson • Directora de Paradise Is Burning",
                {F, "Orizzonti", IV},
                (),
                ("Venice 2023",),
            ),
            (
                date(2023, 9, 11),
                INT,
                "Małgorzata Szumowska, Michał Englert • Directores de Woman of",
                {F, "Competición", IV},
                (),
                ("Venice 2023",),
            ),
            (
                date(2023, 9, 11),
                INT,
                "J.A. Bayona • Director de La sociedad de la nieve",
                {F, "Fuera de competición", IV},
                (),
                ("Venice 2023",),
            ),
            (
                date(2023, 9, 9),
                INT,
                "Zacharias Mavroeidis • Director of The Summer With Carmen",
                {F, "Giornate degli Autori", IV},
                (),
                ("Venice 2023",),
            ),
        ],
    ),
    "es-interviews-p8.txt": (
        "Entrevistas",
        7090,
        date(2002, 8, 19),
        date(2024, 3, 27),
        [
            (
                date(2024, 2, 16),
                INT,
                "Sasha Nathwani • Director de Last Swim",
                {F, "Generation", IV},
                (),
                ("Berlinale 2024",),
            ),
            (
                date(2024, 2, 16),
                INT,
                "Mascha Halberstad • Directora de Fox and Hare Save the Forest",
                {F, "Generation", IV},
                (),
                ("Berlinale 2024",),
            ),
            (
                date(2024, 2, 14),
                INT,
                "Farshad Hashemi • Director de Me, Maryam, the Children and 26 Others",
                {F, IV},
                (),
                ("Göteborg 2024",),
            ),
            (
                date(2024, 2, 13),
                INT,
                "Carlos Muguiro • Director, Elías Querejeta Zine Eskola",
                {IV},
                ("Spain",),
                (),
            ),
        ],
    ),
    "fr-interviews-p6.txt": (
        "Interviews",
        8398,
        date(2002, 5, 14),
        date(2026, 3, 3),
        [
            (
                date(2026, 2, 5),
                INT,
                "Ivo M. Ferreira • Réalisateur de Projecto Global",
                {F, "Compétition Big Screen", IV},
                (),
                ("Rotterdam 2026",),
            ),
            (
                date(2026, 2, 5),
                INT,
                "Volkan Üce • Réalisateur de 2m²",
                {F, "Compétition Big Screen", IV},
                (),
                ("Rotterdam 2026",),
            ),
            (
                date(2026, 2, 5),
                INT,
                "Łukasz Ronduda • Réalisateur de Tell Me What You Feel",
                {F, "Compétition Big Screen", IV},
                (),
                ("Rotterdam 2026",),
            ),
            (
                date(2026, 2, 5),
                INT,
                "Leni Huyghe • Réalisatrice de Real Faces",
                {F, IV},
                (),
                ("Ostend 2026",),
            ),
        ],
    ),
    "fr-interviews-p19.txt": (
        "Interviews",
        8004,
        date(2002, 5, 14),
        date(2025, 7, 8),
        [
            (
                date(2025, 2, 20),
                INT,
                "Ina Weisse • Réalisatrice de Cicadas",
                {F, "Panorama", IV},
                (),
                ("Berlinale 2025",),
            ),
            (
                date(2025, 2, 20),
                INT,
                "Marcin Wierzchowski • Réalisateur de Das Deutsche Volk",
                {F, "Berlinale Special", IV},
                (),
                ("Berlinale 2025",),
            ),
            (
                date(2025, 2, 20),
                INT,
                "Lionel Baier • Réalisateur de La cache",
                {F, "Compétition", IV},
                (),
                ("Berlinale 2025",),
            ),
            (
                date(2025, 2, 19),
                INT,
                "Petra Volpe • Réalisatrice de Late Shift",
                {F, "Berlinale Special", IV},
                (),
                ("Berlinale 2025",),
            ),
        ],
    ),
    "fr-interviews-p4.txt": (
        "Interviews",
        8167,
        date(2002, 5, 14),
        date(2025, 10, 2),
        [
            (
                date(2025, 9, 8),
                INT,
                "Roderick Warich • Réalisateur de Funeral Casino Blues",
                {F, "Orizzonti", IV},
                (),
                ("Venice 2025",),
            ),
            (
                date(2025, 9, 8),
                INT,
                "Akihiro Hata • Réalisateur de Grand ciel",
                {F, "Orizzonti", IV},
                (),
                ("Venice 2025",),
            ),
            (
                date(2025, 9, 8),
                INT,
                "Robyn Citizen • Directrice de la programmation et de la section Platform du "
                "Festival international du film de Toronto",
                {F, IV},
                (),
                ("Toronto 2025",),
            ),
            (
                date(2025, 9, 8),
                INT,
                "Leonardo Di Costanzo • Réalisateur d'Elisa",
                {F, "Compétition", IV},
                (),
                ("Venice 2025",),
            ),
        ],
    ),
    "it-interviews-p2.txt": (
        "Interviste",
        8056,
        date(2002, 5, 14),
        date(2025, 9, 4),
        [
            (
                date(2025, 9, 1),
                INT,
                "Evi Kalogiropoulou • Regista di Gorgonà",
                {F, "Settimana Internazionale della Critica", IV},
                (),
                ("Venice 2025",),
            ),
            (
                date(2025, 8, 31),
                INT,
                "László Nemes • Regista di Orphan",
                {F, "Concorso", IV},
                (),
                ("Venice 2025",),
            ),
            (
                date(2025, 8, 31),
                INT,
                "Nicolangelo Gelormini • Regista di La Gioia",
                {F, "Giornate degli Autori", IV},
                (),
                ("Venice 2025",),
            ),
            (
                date(2025, 8, 31),
                INT,
                "Vladlena Sandu • Regista di Memory",
                {F, "Giornate degli Autori", IV},
                (),
                ("Venice 2025",),
            ),
        ],
    ),
    "it-interviews-p3.txt": (
        "Interviste",
        8242,
        date(2002, 5, 14),
        date(2026, 1, 13),
        [
            (
                date(2025, 12, 2),
                INT,
                "Siiri Halko • Regista di The Well",
                {F, "Industry@Tallinn & Baltic Event", IV},
                (),
                ("Black Nights 2025",),
            ),
            (
                date(2025, 12, 1),
                INT,
                "Denys Sobolev • Regista di Alice Wants to Live",
                {F, "Industry@Tallinn & Baltic Event", IV},
                (),
                ("Black Nights 2025",),
            ),
            (
                date(2025, 11, 28),
                INT,
                "Charles Courcier • Distributore, Soupir",
                {"Distributore del mese", IV},
                (),
                (),
            ),
        ],
    ),
    "it-interviews-p7.txt": (
        "Interviste",
        8122,
        date(2002, 5, 14),
        date(2025, 10, 2),
        [
            (
                date(2025, 8, 29),
                INT,
                "Dalija Dozet • Regista di My Dad’s Lessons",
                {F, "Concorso Documentari", IV},
                (),
                ("Sarajevo 2025",),
            ),
            (
                date(2025, 8, 28),
                INT,
                "Teona Strugar Mitevska • Regista di Teresa - La madre degli ultimi",
                {F, "Orizzonti", IV},
                (),
                ("Venice 2025",),
            ),
            (
                date(2025, 8, 28),
                INT,
                "Aleksandra Božović • Responsabile industry, Montenegro Film Rendezvous",
                {IV},
                ("Montenegro",),
                (),
            ),
            (
                date(2025, 8, 28),
                INT,
                "Renátó Olasz • Regista di Stars of Little Importance",
                {F, "Concorso", IV},
                (),
                ("Sarajevo 2025",),
            ),
        ],
    ),
    "it-interviews-p114.txt": (
        "Interviste",
        8130,
        date(2002, 5, 14),
        date(2025, 10, 10),
        [
            (
                date(2023, 2, 3),
                INT,
                "Edgar Pêra • Regista di The Nothingness Club",
                {F, "Concorso Big Screen", IV},
                (),
                ("Rotterdam 2023",),
            ),
            (
                date(2023, 2, 3),
                INT,
                "Abbas Amini • Regista di Endless Borders",
                {F, "Concorso Big Screen", IV},
                (),
                ("Rotterdam 2023",),
            ),
            (
                date(2023, 2, 2),
                INT,
                "Andreas Öhman • Regista di One Day All This Will Be Yours",
                {F, IV},
                (),
                ("Göteborg 2023",),
            ),
            (
                date(2023, 2, 1),
                INT,
                "Zaida Carmona • Regista di La amiga de mi amiga",
                {F, "Bright Future", IV},
                (),
                ("Rotterdam 2023",),
            ),
        ],
    ),
    "it-interviews-p139.txt": (
        "Interviste",
        8236,
        date(2002, 5, 14),
        date(2025, 12, 22),
        [
            (
                date(2022, 8, 24),
                INT,
                "Igor Ivanko • Regista di Fragile Memory",
                {F, "Concorso Documentari", IV},
                (),
                ("Sarajevo 2022",),
            ),
            (
                date(2022, 8, 24),
                INT,
                "Matthias Helwig • Direttore, Fünf Seen Filmfestival",
                {IV},
                ("Germany",),
                (),
            ),
            (date(2022, 8, 24), INT, "Helena Maksyom • Regista", {IV}, ("Romania", "Ukraine"), ()),
            (
                date(2022, 8, 23),
                INT,
                "Noemi Veronika Szakonyi • Regista di Six Weeks",
                {F, "Concorso", IV},
                (),
                ("Sarajevo 2022",),
            ),
        ],
    ),
    "en-tag-belgium-france-p39.txt": (
        "Belgium / France",
        1070,
        date(2003, 2, 24),
        date(2025, 8, 19),
        [
            (
                date(2022, 6, 17),
                ART,
                "Review: Yuku and the Flower of the Himalayas",
                {F, RV},
                (),
                ("Annecy 2022",),
            ),
            (
                date(2022, 6, 17),
                INT,
                "Alain Ughetto • Director of No Dogs or Italians Allowed",
                {F, IV},
                (),
                ("Annecy 2022",),
            ),
            (date(2022, 6, 16), ART, "Review: Nayola", {F, RV}, (), ("Annecy 2022",)),
            (date(2022, 6, 15), ART, "Review: No Dogs or Italians Allowed", {F, RV}, (), ("Annecy 2022",)),
            (
                date(2022, 6, 14),
                INT,
                "Banu Akseki • Director of Sans soleil",
                {IV},
                ("Belgium", "Netherlands", "France"),
                (),
            ),
        ],
    ),
    "en-tag-italy-france-p11.txt": (
        "Italy / France",
        559,
        date(2003, 3, 6),
        date(2025, 8, 20),
        [
            (
                date(2024, 2, 20),
                INT,
                "Bruno Dumont • Director of The Empire",
                {F, "Competition", IV},
                (),
                ("Berlinale 2024",),
            ),
            (date(2024, 2, 19), ART, "Review: The Empire", {F, "Competition", RV}, (), ("Berlinale 2024",)),
            (
                date(2024, 1, 23),
                ART,
                "Piero Messina's Another End selected in competition at the Berlinale",
                {"Production", "Funding"},
                ("Italy", "France", "UK"),
                (),
            ),
            (
                date(2024, 1, 18),
                ART,
                "My Summer with Irène is Carlo Sironi’s second feature film",
                {"Production", "Funding"},
                ("Italy", "France"),
                (),
            ),
        ],
    ),
    "en-tag-spain-p63.txt": (
        "Spain",
        3576,
        date(2002, 5, 30),
        date(2025, 8, 26),
        [
            (date(2023, 11, 27), ART, "De Facto wins Gijón’s top prize", {F, "Awards"}, (), ("Gijón 2023",)),
            (
                date(2023, 11, 24),
                ART,
                "Series review: This Is Not Sweden",
                {"Series", RV},
                ("Spain", "Sweden"),
                (),
            ),
            (date(2023, 11, 24), ART, "Review: Romance Scam", {F, RV}, (), ("Seville 2023",)),
            (
                date(2023, 11, 24),
                ART,
                "The 13th edition of Márgenes explores boundaries",
                {F},
                (),
                ("Márgenes 2023",),
            ),
            (date(2023, 11, 23), ART, "Series review: The Other Side", {"Series", RV}, ("Spain",), ()),
            (
                date(2023, 11, 23),
                ART,
                "Dani de la Orden shoots A House on Fire",
                {"Production", "Funding"},
                ("Spain",),
                (),
            ),
        ],
    ),
    "en-tag-france-p133.txt": (
        "France",
        10944,
        date(2002, 5, 17),
        date(2025, 8, 18),
        [
            (
                date(2023, 12, 7),
                ART,
                "Episode 61: Close (Belgium/France/Netherlands)",
                {"The Co-production Podcast"},
                (),
                (),
            ),
            (
                date(2023, 12, 7),
                ART,
                "Switzerland will be the country of honour at next year’s Marché du Film in Cannes",
                {F, "Markets"},
                (),
                ("Cannes 2024", "Marché du Film"),
            ),
            (
                date(2023, 12, 6),
                ART,
                "The Animal Kingdom receives the Louis-Delluc prize",
                {F, "Awards"},
                ("France",),
                (),
            ),
            (
                date(2023, 12, 6),
                ART,
                "Episode 60: Chicken for Linda! (France/Italy)",
                {"The Co-production Podcast"},
                (),
                (),
            ),
            (
                date(2023, 12, 6),
                INT,
                "Mohamed Ben Attia • Director of Behind the Mountains",
                {F, IV},
                (),
                ("Red Sea 2023",),
            ),
        ],
    ),
}


def _language(name: str) -> str:
    return name.split("-", 1)[0]


def _got(a) -> tuple:
    return (a.published, a.kind, a.title, set(a.sections), a.countries, a.festivals)


@pytest.mark.parametrize("name", sorted(PAGES))
def test_page_header_and_records(name):
    heading, total, first, last, records = PAGES[name]
    page = listing.parse_text((CORPUS / name).read_text(encoding="utf-8"), fetched=date(2026, 3, 10))
    assert (page.heading, page.total, page.first_date, page.last_published) == (heading, total, first, last)
    assert [_got(a) for a in page.articles] == records
    assert page.skipped == 0


def test_every_file_has_expectations_and_every_language_is_there():
    assert sorted(p.name for p in CORPUS.glob("*.txt")) == sorted(PAGES)
    assert {_language(n) for n in PAGES} == {"en", "fr", "es", "it"}


def test_right_records_per_language_at_least_99_percent():
    """The issue's target, counted per language over every record of every page."""
    for language in ("en", "fr", "es", "it"):
        right = total = 0
        for name, (*_, records) in PAGES.items():
            if _language(name) != language:
                continue
            page = listing.parse_text((CORPUS / name).read_text(encoding="utf-8"), fetched=date(2026, 3, 10))
            got = [_got(a) for a in page.articles]
            total += len(records)
            right += sum(1 for want in records if want in got)
        assert total >= 12, language
        assert right / total >= 0.99, (language, right, total)


def test_summaries_keep_the_quote_and_drop_the_markers():
    page = listing.parse_text((CORPUS / "es-tag-espana-francia.txt").read_text(encoding="utf-8"))
    interview = page.articles[1]
    assert interview.summary.startswith("“Hoy el cine tiene la enorme posibilidad de ser un puente")
    assert "Entrevista:" not in interview.summary
    assert "publicitaria" not in " ".join(a.summary for a in page.articles)


def test_author_page_in_lower_case_with_article_counts_in_french_and_italian():
    """Built here (no real author page was found): the issue's count-line wording, lower-case heading."""
    fr = listing.parse_text(
        "fabien lemercier\n\n(L'article continue plus bas - Inf. publicitaire)\n\n"
        "1534 articles disponibles au total à partir du 02/01/2003. Dernier article publié le 10/03/2026.\n\n"
        "Critique : Un film\n\nCritique : Un film\n\nRésumé\n\n"
        "09/03 | Films | Critiques | Italie/États-Unis\n"
    )
    assert (fr.heading, fr.total, fr.first_date, fr.last_published) == (
        "fabien lemercier",
        1534,
        date(2003, 1, 2),
        date(2026, 3, 10),
    )
    (a,) = fr.articles
    assert (a.title, a.published, set(a.sections), a.countries) == (
        "Critique : Un film",
        date(2026, 3, 9),
        {"Films", "Reviews"},
        ("Italy", "USA"),
    )
    it = listing.parse_text(
        "camillo de marco\n\n(Continua a leggere qui sotto - Inf. pubblicitaria)\n\n"
        "210 articoli disponibili in totale a partire dal 05/05/2005. "
        "Ultimo articolo pubblicato il 01/02/2026.\n\n"
        "Intervista: Nome • Regista di Film\n\n“Citazione”\n\n01/02 | Produzione | Finanziamenti | Germania\n"
    )
    (b,) = it.articles
    assert (it.heading, it.total, it.last_published) == ("camillo de marco", 210, date(2026, 2, 1))
    assert (b.kind, b.title, b.summary, set(b.sections), b.countries) == (
        INTERVIEW,
        "Nome • Regista di Film",
        "“Citazione”",
        {"Production", "Funding", "Interviews"},
        ("Germany",),
    )


def test_a_summary_mentioning_something_available_is_not_the_count_line():
    page = listing.parse_text("A title\n\n2 films available on a platform\n\n01/02/2025 | VOD | France\n")
    assert page.total is None
    assert [(a.title, a.summary) for a in page.articles] == [("A title", "2 films available on a platform")]
