"""Catalog: canonical names, the film press's aliases, case/accent-insensitive lookup, suggestions."""

from __future__ import annotations

import pytest

from digests import catalog
from digests.catalog import COUNTRY, SECTION, Term


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("UK", "UK"),
        ("United Kingdom", "UK"),
        ("Great Britain", "UK"),
        ("Czechia", "Czech Republic"),
        ("Czech Republic", "Czech Republic"),
        ("czech republic", "Czech Republic"),
        ("The Netherlands", "Netherlands"),
        ("netherlands", "Netherlands"),
        ("Holland", "Netherlands"),
        ("North Macedonia", "North Macedonia"),
        ("Macedonia", "North Macedonia"),
        ("Bosnia", "Bosnia and Herzegovina"),
        ("Bosnia & Herzegovina", "Bosnia and Herzegovina"),
        ("Bosnia-Herzegovina", "Bosnia and Herzegovina"),
        ("United States", "USA"),
        ("Türkiye", "Turkey"),
        ("turkiye", "Turkey"),
        ("Russian Federation", "Russia"),
        ("Korea", "South Korea"),
        ("Côte d’Ivoire", "Ivory Coast"),
        ("Cote d'Ivoire", "Ivory Coast"),
        ("Kosovo", "Kosovo"),
        ("Viet Nam", "Vietnam"),
        ("Iran, Islamic Republic of", "Iran"),
        ("UAE", "United Arab Emirates"),
        ("Hong Kong SAR", "Hong Kong"),
        ("Burma", "Myanmar"),
        ("Swaziland", "Eswatini"),
        ("Brunei Darussalam", "Brunei"),
        ("Democratic Republic of Congo", "DR Congo"),
        ("St Lucia", "Saint Lucia"),
        ("St. Kitts and Nevis", "Saint Kitts and Nevis"),
        ("Chinese Taipei", "Taiwan"),
        ("BELGIUM", "Belgium"),
        ("  belgium ", "Belgium"),
        ("België", "Belgium"),
        ("Belgie", "Belgium"),  # accents are optional
        ("ÉTATS", None),
        ("Gondor", None),
        ("Belgian", None),  # demonyms are not country names
    ],
)
def test_country_aliases(text, canonical):
    assert catalog.lookup_country(text) == canonical


def test_every_canonical_country_resolves_to_itself():
    names = catalog.countries()
    assert len(names) > 240 and len(set(names)) == len(names)
    for name in names:
        assert catalog.lookup_country(name) == name
        assert catalog.resolve(name) == Term(COUNTRY, name)
    assert "Côte d'Ivoire" not in names and "Ivory Coast" in names


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("production", "Production"),
        ("Financing", "Funding"),
        ("Interview", "Interviews"),
        ("box-office", "Box Office"),
        ("Festival", "Festivals"),
        ("co-productions", "Co-production"),
        ("TV Series", "Series"),
    ],
)
def test_section_aliases(text, canonical):
    assert catalog.lookup_section(text) == canonical
    assert catalog.canonical_section(text) == canonical


def test_unknown_section_is_kept_tidied():
    assert catalog.lookup_section("Platform") is None
    assert catalog.canonical_section("platform") == "Platform"
    assert catalog.canonical_section("  Toronto   2024 ") == "Toronto 2024"
    assert catalog.canonical_section("eXtra") == "EXtra"


def test_sections_and_countries_do_not_collide():
    for section in catalog.sections():
        assert catalog.lookup_country(section) is None, section


@pytest.mark.parametrize(
    ("typo", "expected"),
    [
        ("Belgum", Term(COUNTRY, "Belgium")),
        ("czeck republic", Term(COUNTRY, "Czech Republic")),
        ("Netherland", Term(COUNTRY, "Netherlands")),
        ("Frnace", Term(COUNTRY, "France")),
        ("Macedona", Term(COUNTRY, "North Macedonia")),
        ("Fundng", Term(SECTION, "Funding")),
        ("Prodution", Term(SECTION, "Production")),
        ("festivls", Term(SECTION, "Festivals")),
    ],
)
def test_suggestions_for_typos(typo, expected):
    found = catalog.suggest(typo)
    assert found and found[0] == expected
    assert len(found) <= 3 and len(set(found)) == len(found)


def test_no_suggestion_for_noise():
    assert catalog.suggest("xyzzy qqq") == []
    assert catalog.suggest("") == []
    assert catalog.suggest("!!!") == []


def test_parse_terms_splits_free_text():
    parsed = catalog.parse_terms("Production / Belgium, czech republic; Bosnia and Herzegovina | Gondor")
    assert parsed.found == [
        Term(SECTION, "Production"),
        Term(COUNTRY, "Belgium"),
        Term(COUNTRY, "Czech Republic"),
        Term(COUNTRY, "Bosnia and Herzegovina"),
    ]
    assert parsed.unknown == ["Gondor"]
    glued = catalog.parse_terms("Belgium and France")
    assert glued.found == [Term(COUNTRY, "Belgium"), Term(COUNTRY, "France")] and glued.unknown == []
    assert catalog.parse_terms("").found == []


def test_normalize():
    assert catalog.normalize("Côte d’Ivoire") == "cote d ivoire"
    assert catalog.normalize("  Bosnia & Herzegovina ") == "bosnia and herzegovina"
