"""Listing pages of the Cineuropa kind, from their HTML or from their text. Pure: no I/O.

A page is a heading ("Production / Belgium"), a count line ("301 articles available in total
starting from 21/10/2002. Last article published on 29/07/2019."), then records, each closed by a
meta line ``DD/MM[/YYYY] | section | … | Country/Country``. Above its meta line a record holds
its title (text dumps repeat it), for interviews an ``Interview: …`` line and a quote, and a
summary. Both inputs are reduced to the same lines (the HTML ones carry their link), so one
record parser serves both.

Meta-line fields, decided one by one:
- a field with at least one known country ("France/Belgium") lists countries; unknown names in
  it are dropped (logged at debug): a country nobody can subscribe to is noise;
- "<Festival> <year>" ("Toronto 2024"), or a known event named without a year ("Marché du
  Film"), is a festival tag and the event's section (see "Named events" below);
- a known section is that section;
- anything else is kept as a section ("Platform", Toronto's sidebar, stays findable), except in
  the country slot: the last of several fields after a regular section ("Production | Gondor")
  is where countries go, so an unknown name there is an unknown country and is dropped.

Interview records (an ``Interview: …`` line, or the Interviews section) get kind "interview",
the section Interviews, the full ``Name • Director of X`` line as title and the quote as summary.
When a layout puts the date and the tags on separate lines, either order, they are joined.

Every edition (English, French, Spanish, Italian) has the same shape in its own words: count lines
("332 artículos disponibles en total a partir del …"), advertisement lines inside the list
("(El artículo continúa más abajo - Inf. publicitaria)", dropped), "Entrevista:" / "Critique :"
prefixes, and localized countries and sections, which the catalog maps to canonical names. On an
interviews page (the count line counts interviews) every record is an interview. A review
("Review:", "Critique :", "Crítica:", "Recensione:") is also filed under Reviews.

Named events: "Cannes 2024" is the section Festivals ("Oscars 2010": Awards, "Producers on the
Move 2021": Markets) and the festival tag "Cannes 2024" (canonical name plus edition).
"""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import date
from urllib.parse import urljoin

from bs4 import BeautifulSoup, Tag

from digests import catalog
from digests.sources import ARTICLE, INTERVIEW, ParsedArticle, ParsedPage
from digests.sources.listing_html import Line, html_lines, next_page_url

log = logging.getLogger(__name__)

TEXT_ID_PREFIX = "clapper:text/"

_META = re.compile(r"^(?P<d>\d{1,2})/(?P<m>\d{1,2})(?:/(?P<y>\d{4}))?\s*(?:\|\s*(?P<rest>.*))?$")
# "301 articles available in total starting from …", "1534 articles disponibles au total à partir
# du …", "332 artículos disponibles en total …", "8056 interviste disponibili in totale …".
# Only these nouns: "2 films available on Netflix" in a summary is no count line.
_COUNT = re.compile(
    r"(?P<total>\d[\d,.\u00a0 ]*)\s+(?P<noun>articles?|art[ií]culos?|articol[io]|interviews?|entretiens|"
    r"entrevistas|interviste|reviews|critiques|cr[ií]ticas|recensioni)\s+(?:available|disponibles?|disponibili)\b",
    re.IGNORECASE,
)
_COUNT_DATE = re.compile(r"(?P<before>[^/\d]*)(?P<date>\d{1,2}/\d{1,2}/\d{4})")
# The date after these words is the newest article's ("Last article published on", "Dernière mise
# à jour le", "Último artículo publicado el", "Ultimo aggiornamento il"); the other one is the first.
_LAST_WORDS = re.compile(r"\b(?:last|derni[eè]re?|[uú]ltim[oa])\b", re.IGNORECASE)
_INTERVIEW_NOUNS = frozenset({"interviews", "interview", "entretiens", "entrevistas", "interviste"})
# "(El artículo continúa más abajo - Inf. publicitaria)", "(L'article continue plus bas - Inf.
# publicitaire)", "(Continua a leggere qui sotto - Inf. pubblicitaria)".
_AD_LINE = re.compile(r"^\(.*\b(?:publicit\w*|pubblicit\w*|advertisement|commercial information)\W*\)$", re.I)
_FESTIVAL_YEAR = re.compile(r"^\S.*\s(?:19|20)\d{2}$")
_HEADING = re.compile(r"^[^|/]{2,60}\s/\s[^|/]{2,60}$")  # "Production / Belgium"
_INTERVIEW_PREFIX = re.compile(r"^(?:interview|entrevista|intervista|entretien)\s*:\s*", re.IGNORECASE)
_REVIEW_PREFIX = re.compile(r"^(?:review|critique|cr[ií]tica|recensione)\s*:\s*", re.IGNORECASE)
_SHARE_BAR = re.compile(r"\bshare on (?:facebook|twitter|linkedin|reddit|x)\b|\bpin on pinterest\b", re.I)
_FOOTER = re.compile(
    r"^(?:privacy policy|cookies?\b|terms\b|legal notice|imprint|contact us|newsletter|©|copyright)"
    r"|^(?:«|‹|<)?\s*(?:previous|next|first|last)(?: page)?\s*(?:»|›|>)?$"
    r"|^[\d\s.…«»‹›<>|]+$",
    re.IGNORECASE,
)
_JUNK = re.compile(r"^(?:read more|more|see all|»|›)$", re.IGNORECASE)
# ----------------------------------------------------------------------------- entry points


def looks_like_html(data: str) -> bool:
    head = data.lstrip()[:2000].lower()
    return head.startswith("<") and any(t in head for t in ("<html", "<!doctype", "<body", "<div", "<main"))


def parse(data: str, *, base_url: str | None = None, fetched: date | None = None) -> ParsedPage:
    """A listing page from its HTML or its text, whichever `data` is."""
    if looks_like_html(data):
        return parse_html(data, base_url=base_url, fetched=fetched)
    return parse_text(data, fetched=fetched)


def parse_text(text: str, *, fetched: date | None = None) -> ParsedPage:
    lines = [Line(t) for t in (" ".join(raw.split()) for raw in text.splitlines()) if t]
    return _parse_lines(lines, fetched=fetched, base_url=None)


def parse_html(html: str, *, base_url: str | None = None, fetched: date | None = None) -> ParsedPage:
    soup = BeautifulSoup(html, "html.parser")
    base = soup.find("base", href=True)
    if isinstance(base, Tag):
        base_url = urljoin(base_url or "", str(base["href"]))
    root = soup.find("main") or soup.find(id="content") or soup.body or soup
    lines = html_lines(root)
    heading = None
    h1 = soup.find("h1")
    if isinstance(h1, Tag):
        heading = " ".join(h1.get_text(" ").split()) or None
    page = _parse_lines(lines, fetched=fetched, base_url=base_url, heading_hint=heading)
    page.next_url = next_page_url(soup, base_url)
    return page


# ----------------------------------------------------------------------------- lines to records


def _parse_lines(
    lines: list[Line], *, fetched: date | None, base_url: str | None, heading_hint: str | None = None
) -> ParsedPage:
    page = ParsedPage()
    lines = [ln for ln in lines if not (_SHARE_BAR.search(ln.text) or _AD_LINE.match(ln.text))]

    start = 0
    interviews_page = False
    for i, ln in enumerate(lines):
        m = _COUNT.search(ln.text)
        if m and not _META.match(ln.text):
            page.total = int(re.sub(r"\D", "", m.group("total")))
            page.first_date, page.last_published = _count_dates(ln.text[m.end() :])
            interviews_page = m.group("noun").casefold() in _INTERVIEW_NOUNS
            if heading_hint is None and i > 0:
                heading_hint = _heading_above(lines[:i])
            start = i + 1
            break
    else:
        if heading_hint is not None:
            idx = next((i for i, ln in enumerate(lines) if ln.text == heading_hint), None)
            start = idx + 1 if idx is not None else 0
        elif lines and _HEADING.match(lines[0].text) and not _META.match(lines[0].text):
            heading_hint = lines[0].text
            start = 1
    page.heading = heading_hint

    reference = page.last_published or fetched or date.today()
    body: list[Line] = []
    rest = lines[start:]
    i = 0
    while i < len(rest):
        ln = rest[i]
        i += 1
        m = _META.match(ln.text)
        if not m:
            if not _JUNK.match(ln.text):
                body.append(ln)
            continue
        record, body = body, []
        fields = m.group("rest") or ""
        if not fields:
            # Some layouts put the date and the tags in separate blocks, in either order.
            if i < len(rest) and _is_fields_line(rest[i].text):
                fields = rest[i].text
                i += 1
            elif record and _is_fields_line(record[-1].text):
                fields = record.pop().text
        article = _record(
            record, m, fields, reference=reference, base_url=base_url, interview=interviews_page
        )
        if article is None:
            page.skipped += 1
        else:
            page.articles.append(article)

    leftover = [ln for ln in body if not _FOOTER.match(ln.text)]
    if leftover:
        page.skipped += 1
        log.warning(
            "listing: last record cut off (no date line), skipped: %r",
            leftover[0].text[:80],
            extra={"event": "listing_record_cut_off", "title": leftover[0].text},
        )
    return page


def _heading_above(lines: list[Line]) -> str:
    """The page's name above its count line: the nearest short line that is not a sentence
    (interviews pages put a blurb between "Interviste" and the count)."""
    for ln in reversed(lines[-4:]):
        if len(ln.text) <= 60 and not ln.text.endswith((".", "!", "?")):
            return ln.text
    return lines[-1].text


def _count_dates(text: str) -> tuple[date | None, date | None]:
    """(first, last) dates of a count line's tail, told apart by the words before each."""
    first = last = None
    for m in _COUNT_DATE.finditer(text):
        if _LAST_WORDS.search(m.group("before")):
            last = last or _full_date(m.group("date"))
        else:
            first = first or _full_date(m.group("date"))
    return first, last


def _record(
    body: list[Line],
    meta: re.Match[str],
    fields: str,
    *,
    reference: date,
    base_url: str | None,
    interview: bool = False,
) -> ParsedArticle | None:
    collapsed: list[Line] = []
    for ln in body:
        if not collapsed or ln.text != collapsed[-1].text:
            collapsed.append(ln)
    if not collapsed:
        log.warning("listing: date line without a record, skipped: %r", meta.group(0))
        return None

    kind = INTERVIEW if interview else ARTICLE
    head = collapsed[0]
    title = head.text
    if _INTERVIEW_PREFIX.match(title):
        kind, title = INTERVIEW, _INTERVIEW_PREFIX.sub("", title)
    review = _REVIEW_PREFIX.match(title) is not None
    href = head.href
    rest: list[str] = []
    for ln in collapsed[1:]:
        if _INTERVIEW_PREFIX.match(ln.text):
            # "Interview: Name • …" repeats the heading (often cut short): a marker, not content.
            kind = INTERVIEW
            href = href or ln.href
            continue
        if ln.text == title:
            continue
        href = href or ln.href
        rest.append(ln.text)

    published = _meta_date(meta, reference)
    if published is None:
        log.warning("listing: impossible date %r, record %r skipped", meta.group(0), title)
        return None
    sections, countries, festivals = _meta_fields(fields)
    if kind == INTERVIEW and "Interviews" not in sections:
        sections.append("Interviews")
    elif kind == ARTICLE and "Interviews" in sections:
        kind = INTERVIEW
    if review and "Reviews" not in sections:
        sections.append("Reviews")

    linked = href and not href.startswith(("javascript:", "mailto:", "#"))
    url = urljoin(base_url or "", href) if linked else ""
    if not url.startswith(("http://", "https://")):
        # A relative link with nothing to resolve it against is no address: the text id is stabler.
        url = text_id(title, published)
    return ParsedArticle(
        title=title,
        summary=" ".join(rest),
        url=url,
        published=published,
        sections=tuple(sections),
        countries=tuple(countries),
        kind=kind,
        festivals=tuple(festivals),
    )


def text_id(title: str, published: date) -> str:
    """A stable id for an article known only from text: same title and date, same id."""
    digest = hashlib.sha256(f"{catalog.normalize(title)}|{published.isoformat()}".encode()).hexdigest()
    return f"{TEXT_ID_PREFIX}{digest[:24]}"


def _is_fields_line(text: str) -> bool:
    """'Production | France/Belgium': every field a known section, festival or country list."""
    if _META.match(text):
        return False
    fields = [f.strip() for f in text.split("|")]
    return all(
        f
        and (
            catalog.lookup_section(f) is not None
            or _FESTIVAL_YEAR.match(f) is not None
            or any(catalog.lookup_country(p) for p in f.split("/"))
        )
        for f in fields
    )


def _meta_fields(rest: str) -> tuple[list[str], list[str], list[str]]:
    """(sections, countries, festival labels) of a meta line's fields."""
    fields = [" ".join(f.split()) for f in rest.split("|")]
    fields = [f for f in fields if f]
    sections: list[str] = []
    countries: list[str] = []
    festivals: list[str] = []
    first_is_section = bool(fields) and catalog.lookup_section(fields[0]) is not None

    def add(target: list[str], value: str) -> None:
        if value not in target:
            target.append(value)

    for pos, field in enumerate(fields):
        parts = [p.strip() for p in field.split("/") if p.strip()]
        known = [catalog.lookup_country(p) for p in parts]
        if any(known):
            for part, value in zip(parts, known, strict=True):
                if value:
                    add(countries, value)
                else:
                    log.debug("listing: unknown country %r dropped", part)
            continue
        if catalog.lookup_section(field):
            add(sections, catalog.canonical_section(field))
            continue
        if len(parts) > 1 and any(catalog.lookup_section(p) for p in parts):
            # "Films / Critiques", "Industrie / Marché": two sections in one field.
            for part in parts:
                add(sections, catalog.canonical_section(part))
            continue
        country_slot = pos == len(fields) - 1 and pos > 0 and first_is_section
        if _FESTIVAL_YEAR.match(field) or (catalog.lookup_festival(field) and not country_slot):
            # "Cannes 2024", or an event named without its year ("Marché du Film"); a bare
            # "London" where countries go is an unknown country, not the festival.
            name, edition = catalog.split_edition(field)
            add(festivals, catalog.festival_label(name, edition))
            add(sections, catalog.event_section(name))
            continue
        if country_slot:
            log.debug("listing: unknown country %r dropped", field)
            continue
        add(sections, catalog.canonical_section(field))
    return sections, countries, festivals


def _full_date(text: str | None) -> date | None:
    if not text:
        return None
    d, m, y = (int(x) for x in text.split("/"))
    try:
        return date(y, m, d)
    except ValueError:
        return None


def _meta_date(meta: re.Match[str], reference: date) -> date | None:
    d, m = int(meta.group("d")), int(meta.group("m"))
    if meta.group("y"):
        try:
            return date(int(meta.group("y")), m, d)
        except ValueError:
            return None
    return resolve_day_month(d, m, reference)


def resolve_day_month(day: int, month: int, reference: date) -> date | None:
    """The latest DD/MM not after `reference` (year-less dates mark a page's newest articles)."""
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    for year in range(reference.year, reference.year - 8, -1):  # 29/02 may need a leap year
        try:
            candidate = date(year, month, day)
        except ValueError:
            continue
        if candidate <= reference:
            return candidate
    return None
