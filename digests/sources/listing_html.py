"""Listing pages' HTML reduced to lines of text, each with the link its first words sit in. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urljoin

from bs4 import BeautifulSoup, Comment, Declaration, Doctype, NavigableString, ProcessingInstruction, Tag

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


def html_lines(root: Tag) -> list[Line]:
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


def next_page_url(soup: BeautifulSoup, base_url: str | None) -> str | None:
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
