"""Countries and sections: canonical names, aliases, lookup, and typo suggestions. Pure."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import pycountry
from rapidfuzz import fuzz, process

COUNTRY = "country"
SECTION = "section"
# A feed category that is neither a known section nor a country: stored and matched like a section
# name, never listed among the sections.
TAG = "tag"

# The film press's spellings win over ISO's where they differ (Cineuropa writes "Czech Republic").
_CANONICAL_OVERRIDES = {
    "CZ": "Czech Republic",
    "RU": "Russia",
    "TR": "Turkey",
    "KR": "South Korea",
    "KP": "North Korea",
    "PS": "Palestine",
    "VA": "Vatican",
    "GB": "UK",
    "US": "USA",
    "MK": "North Macedonia",
    "BA": "Bosnia and Herzegovina",
    "CD": "DR Congo",
    "CG": "Congo",
    "LA": "Laos",
    "MD": "Moldova",
    "TZ": "Tanzania",
    "CV": "Cape Verde",
    "SZ": "Eswatini",
    "FM": "Micronesia",
    "BN": "Brunei",
}

_EXTRA_ALIASES: dict[str, list[str]] = {
    "Czech Republic": ["Czechia", "Czech Rep", "Czech"],
    "UK": [
        "United Kingdom",
        "Great Britain",
        "Britain",
        "England",
        "Scotland",
        "Wales",
        "Northern Ireland",
        "U.K.",
    ],
    "USA": ["United States", "United States of America", "US", "U.S.", "U.S.A.", "America"],
    "Netherlands": ["The Netherlands", "Holland", "NL"],
    "North Macedonia": ["Macedonia", "FYROM", "Former Yugoslav Republic of Macedonia"],
    "Bosnia and Herzegovina": ["Bosnia", "Bosnia-Herzegovina", "Bosnia & Herzegovina", "BiH"],
    "Turkey": ["Türkiye", "Turkiye"],
    "Russia": ["Russian Federation"],
    "South Korea": ["Korea", "Republic of Korea"],
    "Ivory Coast": [],
    "Kosovo": [],
    "Vietnam": ["Viet Nam"],
    "Moldova": ["Republic of Moldova"],
    "Belgium": ["Belgique", "België"],
    "Germany": ["Deutschland"],
    "Switzerland": ["Suisse", "Schweiz"],
    "Luxembourg": ["Luxemburg"],
    "Ireland": ["Eire", "Republic of Ireland"],
    "Palestine": ["Palestinian Territories"],
    "DR Congo": ["Democratic Republic of the Congo", "Democratic Republic of Congo", "DRC", "Congo-Kinshasa"],
    "Congo": ["Republic of the Congo", "Congo-Brazzaville"],
    "United Arab Emirates": ["UAE"],
    "Hong Kong": ["Hong Kong SAR", "Hong Kong SAR China"],
    "Vatican": ["Vatican City", "Holy See"],
    "Brunei": ["Brunei Darussalam"],
    "Eswatini": ["Swaziland"],
    "Myanmar": ["Burma"],
    "Timor-Leste": ["East Timor"],
    "Taiwan": ["Chinese Taipei"],
}

# Sections real listings use; the first name is canonical.
SECTIONS: dict[str, list[str]] = {
    "Production": ["Productions", "Shooting", "Filming"],
    "Funding": ["Financing", "Finance", "Fund", "Funds"],
    "Distribution": ["Release", "Releases"],
    "Festivals": ["Festival", "Fest"],
    "Reviews": ["Review", "Critique"],
    "Interviews": ["Interview"],
    "Industry": ["Industry Report", "Business"],
    "Box Office": ["Box-Office", "Boxoffice", "Admissions"],
    "Markets": ["Market", "Film Market"],
    "Awards": ["Award", "Prizes", "Prize"],
    "Training": ["Workshops", "Education"],
    "Legislation": ["Law", "Policy"],
    "Sales": ["World Sales", "Sales Agents"],
    "Series": ["TV Series", "Television", "TV"],
    "Documentary": ["Documentaries", "Docs"],
    "Animation": ["Animated"],
    "Co-production": ["Coproduction", "Co-productions", "Coproductions"],
    "Exhibition": ["Cinemas", "Theatres"],
    "VOD": ["Streaming", "SVOD", "On Demand"],
    "Short Films": ["Shorts", "Short Film"],
}


@dataclass(frozen=True, slots=True)
class Term:
    kind: str  # COUNTRY | SECTION
    value: str  # canonical name


def normalize(text: str) -> str:
    """Case-, accent- and punctuation-insensitive key: 'Côte d’Ivoire' -> 'cote d ivoire'."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = text.casefold().replace("&", " and ")
    return " ".join(re.sub(r"[^\w]+", " ", text).split())


@lru_cache(maxsize=1)
def _country_table() -> tuple[dict[str, str], tuple[str, ...]]:
    """(normalized alias -> canonical name, canonical names sorted)."""
    table: dict[str, str] = {}
    canon: set[str] = set()
    for c in pycountry.countries:
        name = _CANONICAL_OVERRIDES.get(c.alpha_2) or getattr(c, "common_name", None) or c.name
        canon.add(name)
        for alias in {name, c.name, getattr(c, "common_name", None), getattr(c, "official_name", None)}:
            if alias:
                table.setdefault(normalize(alias), name)
    for name, aliases in _EXTRA_ALIASES.items():
        canon.add(name)
        for alias in [name, *aliases]:
            table[normalize(alias)] = name
    # The press abbreviates "Saint" ("St Lucia", "St. Kitts and Nevis").
    for key, value in list(table.items()):
        if key.startswith("saint "):
            table.setdefault("st " + key[len("saint ") :], value)
    table[normalize("Cote d'Ivoire")] = "Ivory Coast"
    canon.discard("Côte d'Ivoire")
    for key, value in list(table.items()):
        if value == "Côte d'Ivoire":
            table[key] = "Ivory Coast"
    return table, tuple(sorted(canon))


@lru_cache(maxsize=1)
def _section_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for name, aliases in SECTIONS.items():
        for alias in [name, *aliases]:
            table[normalize(alias)] = name
    return table


@lru_cache(maxsize=1)
def _official_names() -> frozenset[str]:
    names = {normalize(c.official_name) for c in pycountry.countries if hasattr(c, "official_name")}
    return frozenset(names - {normalize(n) for n in _country_table()[1]})


def countries() -> tuple[str, ...]:
    return _country_table()[1]


def sections() -> tuple[str, ...]:
    return tuple(SECTIONS)


def lookup_country(text: str) -> str | None:
    return _country_table()[0].get(normalize(text))


def lookup_section(text: str) -> str | None:
    return _section_table().get(normalize(text))


# A tag is a short label from a source's meta line or <category>; longer is junk or an attack.
TAG_MAX_LENGTH = 60
_MARKUP = re.compile(r"<[^<>]*>")
# Control characters, and the bidi overrides that can make a label read differently than it sorts.
_INVISIBLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b\u202a-\u202e\u2066-\u2069\ufeff]")


def strip_markup(text: str) -> str:
    """`text` without tags, stray angle brackets or control characters, spaces collapsed."""
    text = _INVISIBLE.sub(" ", _MARKUP.sub(" ", text))
    return " ".join(text.replace("<", " ").replace(">", " ").split())


def clean_tag(text: str) -> str:
    """A source's tag as plain text: markup and control characters removed, spaces collapsed,
    at most TAG_MAX_LENGTH characters (cut at a word when possible). May return ''."""
    text = strip_markup(text)
    if len(text) > TAG_MAX_LENGTH:
        cut = text[:TAG_MAX_LENGTH]
        text = cut.rsplit(" ", 1)[0] if " " in cut[TAG_MAX_LENGTH // 2 :] else cut
    return text.strip(" ,;:|/")


def clean_tags(values: Iterable[str]) -> tuple[str, ...]:
    """Each tag cleaned, empty ones dropped, each once."""
    return tuple(dict.fromkeys(tag for tag in map(clean_tag, values) if tag))


def clean_text(text: str) -> str:
    """A source's title, summary or URL as one line of text: control characters (which break
    Telegram, and PostgreSQL for NUL) and bidi overrides become spaces, spaces collapse."""
    return " ".join(_INVISIBLE.sub(" ", text).split())


def canonical_section(text: str) -> str:
    """A section's canonical name; an unknown one is kept, cleaned (clean_tag), never dropped."""
    cleaned = clean_tag(text)
    known = lookup_section(cleaned)
    if known:
        return known
    return cleaned[:1].upper() + cleaned[1:]


def resolve(text: str) -> Term | None:
    """A country or section by any of its names; countries win a tie (there is none today)."""
    if value := lookup_country(text):
        return Term(COUNTRY, value)
    if value := lookup_section(text):
        return Term(SECTION, value)
    return None


@lru_cache(maxsize=1)
def _choices() -> tuple[list[str], list[Term]]:
    choices: dict[str, Term] = {}
    for key, value in _section_table().items():
        choices[key] = Term(SECTION, value)
    for key, value in _country_table()[0].items():
        # Two-letter codes and ISO official names ("Islamic Republic of ...") make noisy guesses.
        if len(key) > 2 and key not in _official_names():
            choices[key] = Term(COUNTRY, value)
    return list(choices), list(choices.values())


def suggest(text: str, limit: int = 3, cutoff: float = 70.0) -> list[Term]:
    """Up to `limit` distinct terms that `text` probably meant, best first."""
    key = normalize(text)
    if not key:
        return []
    keys, terms = _choices()
    found: list[Term] = []
    matches = process.extract(key, keys, scorer=fuzz.WRatio, limit=limit * 6, score_cutoff=cutoff)
    best = matches[0][1] if matches else 0
    for _choice, score, index in matches:
        # Far weaker than the best guess is noise ("czeck republic" is not Afghanistan).
        if score < best - 12:
            break
        term = terms[index]
        if term not in found:
            found.append(term)
        if len(found) == limit:
            break
    return found


@dataclass(frozen=True, slots=True)
class ParsedTerms:
    found: list[Term]
    unknown: list[str]


_SEPARATORS = re.compile(r"[,;/|+\n]+")
_MAX_WORDS = 6  # the longest name we know ("Saint Vincent and the Grenadines")


def parse_terms(text: str) -> ParsedTerms:
    """Split free text ('Production / Belgium, czech republic') into known terms and unknown words.

    Separators are commas, slashes, pipes and spaces; multi-word names are matched longest first.
    """
    found: list[Term] = []
    unknown: list[str] = []
    for chunk in _SEPARATORS.split(text):
        words = chunk.split()
        i = 0
        pending: list[str] = []
        while i < len(words):
            for j in range(min(len(words), i + _MAX_WORDS), i, -1):
                term = resolve(" ".join(words[i:j]))
                if term:
                    break
            else:
                term, j = None, i + 1
            if term is None:
                pending.append(words[i])
            else:
                if pending:
                    unknown.append(" ".join(pending))
                    pending = []
                if term not in found:
                    found.append(term)
            i = j
        if pending:
            unknown.append(" ".join(pending))
    # "and"/"&" between names ("Belgium and France") is glue, not a typo.
    unknown = [u for u in unknown if normalize(u) not in {"and", "or", "et"}]
    return ParsedTerms(found, unknown)
