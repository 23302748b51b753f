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
- "<Festival> <year>" ("Toronto 2024") is the Festivals section;
- a known section is that section;
- anything else is kept as a section ("Platform", Toronto's sidebar, stays findable), except in
  the country slot: the last of several fields after a regular section ("Production | Gondor")
  is where countries go, so an unknown name there is an unknown country and is dropped.

Interview records (an ``Interview: …`` line, or the Interviews section) get kind "interview",
the section Interviews, the full ``Name • Director of X`` line as title and the quote as summary.
When a layout puts the date and the tags on separate lines, either order, they are joined.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import date
from urllib.parse import urljoin

from bs4 import BeautifulSoup, Comment, Declaration, Doctype, NavigableString, ProcessingInstruction, Tag

from digests import catalog
from digests.sources import ARTICLE, INTERVIEW, ParsedArticle, ParsedPage

log = logging.getLogger(__name__)

TEXT_ID_PREFIX = "clapper:text/"

_META = re.compile(r"^(?P<d>\d{1,2})/(?P<m>\d{1,2})(?:/(?P<y>\d{4}))?\s*(?:\|\s*(?P<rest>.*))?$")
_COUNT = re.compile(
    r"(?P<total>\d[\d,.\u00a0 ]*)\s+articles?\s+available"
    r"(?:.*?starting from\s+(?P<since>\d{1,2}/\d{1,2}/\d{4}))?"
    r"(?:.*?last article published on\s+(?P<last>\d{1,2}/\d{1,2}/\d{4}))?",
    re.IGNORECASE,
)
_FESTIVAL_YEAR = re.compile(r"^\S.*\s(?:19|20)\d{2}$")
_HEADING = re.compile(r"^[^|/]{2,60}\s/\s[^|/]{2,60}$")  # "Production / Belgium"
_INTERVIEW_PREFIX = re.compile(r"^interview\s*:\s*", re.IGNORECASE)
_SHARE_BAR = re.compile(r"\bshare on (?:facebook|twitter|linkedin|reddit|x)\b|\bpin on pinterest\b", re.I)
_FOOTER = re.compile(
    r"^(?:privacy policy|cookies?\b|terms\b|legal notice|imprint|contact us|newsletter|©|copyright)"
    r"|^(?:«|‹|<)?\s*(?:previous|next|first|last)(?: page)?\s*(?:»|›|>)?$"
    r"|^[\d\s.…«»‹›<>|]+$",
    re.IGNORECASE,
)
_JUNK = re.compile(r"^(?:read more|more|see all|»|›)$", re.IGNORECASE)
_PAGE_PATH = re.compile(r"/p/(\d+)/?$")

_BLOCK_TAGS = frozenset(
    "address article aside blockquote br dd div dl dt figcaption figure form h1 h2 h3 h4 h5 h6 hr "
    "li main ol p section table tbody td th thead tr ul".split()
)
# Menus, share bars and footers are not part of any record; the pagination link is read apart.
_CARD_PARTS = frozenset({"header", "footer"})
_SKIP_TAGS = frozenset("script style noscript template svg head nav header footer aside form button".split())


@dataclass(frozen=True, slots=True)
class Line:
    text: str
    href: str | None = None


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
    lines = _html_lines(root)
    heading = None
    h1 = soup.find("h1")
    if isinstance(h1, Tag):
        heading = " ".join(h1.get_text(" ").split()) or None
    page = _parse_lines(lines, fetched=fetched, base_url=base_url, heading_hint=heading)
    page.next_url = _next_page_url(soup, base_url)
    return page


# ----------------------------------------------------------------------------- HTML to lines


def _html_lines(root: Tag) -> list[Line]:
    """Block-level text as lines; a line's href is the link its first words sit in."""
    lines: list[Line] = []
    buf: list[str] = []
    line_href: list[str | None] = [None]

    def flush() -> None:
        text = " ".join("".join(buf).split())
        if text:
            lines.append(Line(text, line_href[0]))
        buf.clear()
        line_href[0] = None

    def walk(node: Tag, link: str | None, in_article: bool) -> None:
        for child in node.children:
            if isinstance(child, NavigableString):
                if isinstance(child, Comment | Doctype | Declaration | ProcessingInstruction):
                    continue
                if str(child).strip() and line_href[0] is None and not "".join(buf).strip():
                    line_href[0] = link
                buf.append(str(child))
            elif isinstance(child, Tag):
                # A card's own <header>/<footer> holds its title and tags; the page's are chrome.
                if child.name in _SKIP_TAGS and not (in_article and child.name in _CARD_PARTS):
                    continue
                block = child.name in _BLOCK_TAGS
                if block:
                    flush()
                href = child.get("href") if child.name == "a" else None
                walk(child, str(href) if href else link, in_article or child.name == "article")
                if block:
                    flush()

    walk(root, None, False)
    flush()
    return lines


def _next_page_url(soup: BeautifulSoup, base_url: str | None) -> str | None:
    """The link to the next page: rel=next, else the /p/N/ link with the smallest N above ours."""
    nxt = soup.find("a", rel="next", href=True) or soup.find("link", rel="next", href=True)
    if isinstance(nxt, Tag):
        return urljoin(base_url or "", str(nxt["href"]))
    current = 1
    if base_url and (m := _PAGE_PATH.search(base_url.split("?")[0])):
        current = int(m.group(1))
    best: tuple[int, str] | None = None
    for a in soup.find_all("a", href=True):
        href = str(a["href"])
        m = _PAGE_PATH.search(href.split("?")[0].split("#")[0])
        if m and int(m.group(1)) > current and (best is None or int(m.group(1)) < best[0]):
            best = (int(m.group(1)), href)
    return urljoin(base_url or "", best[1]) if best else None


# ----------------------------------------------------------------------------- lines to records


def _parse_lines(
    lines: list[Line], *, fetched: date | None, base_url: str | None, heading_hint: str | None = None
) -> ParsedPage:
    page = ParsedPage()
    lines = [ln for ln in lines if not _SHARE_BAR.search(ln.text)]

    start = 0
    for i, ln in enumerate(lines):
        m = _COUNT.search(ln.text)
        if m and not _META.match(ln.text):
            page.total = int(re.sub(r"\D", "", m.group("total")))
            page.first_date = _full_date(m.group("since"))
            page.last_published = _full_date(m.group("last"))
            if heading_hint is None and i > 0:
                heading_hint = lines[i - 1].text
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
        article = _record(record, m, fields, reference=reference, base_url=base_url)
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


def _record(
    body: list[Line], meta: re.Match[str], fields: str, *, reference: date, base_url: str | None
) -> ParsedArticle | None:
    collapsed: list[Line] = []
    for ln in body:
        if not collapsed or ln.text != collapsed[-1].text:
            collapsed.append(ln)
    if not collapsed:
        log.warning("listing: date line without a record, skipped: %r", meta.group(0))
        return None

    kind = ARTICLE
    head = collapsed[0]
    title = head.text
    if _INTERVIEW_PREFIX.match(title):
        kind, title = INTERVIEW, _INTERVIEW_PREFIX.sub("", title)
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
    sections, countries = _meta_fields(fields)
    if kind == INTERVIEW and "Interviews" not in sections:
        sections.append("Interviews")
    elif kind == ARTICLE and "Interviews" in sections:
        kind = INTERVIEW

    if href and not href.startswith(("javascript:", "mailto:", "#")):
        url = urljoin(base_url or "", href)
    else:
        url = text_id(title, published)
    return ParsedArticle(
        title=title,
        summary=" ".join(rest),
        url=url,
        published=published,
        sections=tuple(sections),
        countries=tuple(countries),
        kind=kind,
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


def _meta_fields(rest: str) -> tuple[list[str], list[str]]:
    fields = [" ".join(f.split()) for f in rest.split("|")]
    fields = [f for f in fields if f]
    sections: list[str] = []
    countries: list[str] = []
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
        if _FESTIVAL_YEAR.match(field):
            add(sections, "Festivals")
            continue
        if pos == len(fields) - 1 and pos > 0 and first_is_section:
            log.debug("listing: unknown country %r dropped", field)
            continue
        add(sections, catalog.canonical_section(field))
    return sections, countries


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
