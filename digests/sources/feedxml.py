"""The fast feed reader: well-formed RSS 2.0, RSS 1.0/0.90 (RDF) and Atom 1.0 with expat.

Returns None for anything it does not fully understand, so the caller falls back to feedparser:
being fast must never cost an item.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from urllib.parse import urljoin

_XML_BASE = "{http://www.w3.org/XML/1998/namespace}base"
_ATOM = "{http://www.w3.org/2005/Atom}"
_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
_RSS1 = ("{http://purl.org/rss/1.0/}", "{http://my.netscape.com/rdf/simple/0.9/}")
_DC = "{http://purl.org/dc/elements/1.1/}"
_CONTENT = "{http://purl.org/rss/1.0/modules/content/}encoded"
_ITUNES_KEYWORDS = "{http://www.itunes.com/dtds/podcast-1.0.dtd}keywords"


@dataclass(slots=True)
class RawEntry:
    """One item as the document wrote it, before any decision (dates and links unparsed)."""

    title: str = ""
    links: list[str] = field(default_factory=list)  # <link> elements only, best first
    guid: str | None = None
    guid_is_link: bool = False  # RSS isPermaLink (default true); Atom: no link given
    dates: list[str] = field(default_factory=list)  # published first, then updated
    parsed_dates: list[time.struct_time] = field(default_factory=list)  # feedparser's, UTC
    categories: list[str] = field(default_factory=list)
    summary: str = ""


@dataclass(slots=True)
class RawFeed:
    title: str = ""
    link: str = ""
    dates: list[str] = field(default_factory=list)
    entries: list[RawEntry] = field(default_factory=list)
    bozo: str = ""  # why the document is not well-formed (feedparser salvaged it)


def read_xml(raw: bytes, base_url: str | None) -> RawFeed | None:
    try:
        root = ET.fromstring(raw)
    except (ET.ParseError, ValueError):
        return None
    # Only an explicit xml:base resolves links here; the fetched URL is the caller's last resort,
    # after the feed's own link.
    base = _base(root, None)
    if base is not None and base_url:
        base = urljoin(base_url, base)
    if root.tag == "rss":
        channel = root.find("channel")
        return None if channel is None else _rss(channel, _base(channel, base))
    if root.tag == f"{_RDF}RDF":
        return _rdf(root, base)
    if root.tag == f"{_ATOM}feed":
        return _atom(root, base)
    return None


def _base(elem: ET.Element, parent: str | None) -> str | None:
    """The element's xml:base resolved against its parent's; None while no xml:base was seen
    (then the caller's own fallbacks apply: the feed's link, the fetched URL)."""
    own = elem.get(_XML_BASE)
    if own is None:
        return parent
    return urljoin(parent or "", own.strip())


def _join(base: str | None, href: str | None) -> str:
    href = (href or "").strip()
    return urljoin(base, href) if base and href else href


def _text(elem: ET.Element | None) -> str:
    return (elem.text or "") if elem is not None else ""


# ----------------------------------------------------------------------------- RSS 2.0


def _rss(channel: ET.Element, base: str | None) -> RawFeed:
    feed = RawFeed(
        title=_text(channel.find("title")),
        link=_join(base, _text(channel.find("link"))),
        # lastBuildDate last: a build day bounds an undated item's day better than our fetch day.
        dates=[_text(channel.find(x)) for x in ("pubDate", f"{_DC}date", "lastBuildDate")],
    )
    for item in channel.iter("item"):
        feed.entries.append(_rss_item(item, _base(item, base)))
    return feed


def _rss_item(item: ET.Element, base: str | None) -> RawEntry:
    entry = RawEntry()
    pub = dc = ""
    summary = content = ""
    for child in item:
        tag = child.tag
        if tag == "title":
            entry.title = child.text or ""
        elif tag == "link":
            if child.text and child.text.strip():
                entry.links.insert(0, _join(_base(child, base), child.text))
        elif tag == f"{_ATOM}link" and child.get("rel", "alternate") == "alternate":
            entry.links.append(_join(_base(child, base), child.get("href")))
        elif tag == "guid":
            entry.guid = (child.text or "").strip() or None
            entry.guid_is_link = child.get("isPermaLink", "true").strip().lower() == "true"
        elif tag == "pubDate":
            pub = child.text or ""
        elif tag == f"{_DC}date":
            dc = child.text or ""
        elif tag in (f"{_DC}subject", _ITUNES_KEYWORDS):
            entry.categories.append(child.text or "")
        elif tag == "description":
            summary = child.text or ""
        elif tag == _CONTENT:
            content = child.text or ""
    # Any depth, as feedparser reads them: Macworld wraps its <category>s in <categories>.
    entry.categories[:0] = [c.text or "" for c in item.iter("category")]
    entry.dates = [pub, dc]
    entry.summary = summary or content
    return entry


# ----------------------------------------------------------------------------- RSS 1.0 / 0.90


def _rdf(root: ET.Element, base: str | None) -> RawFeed | None:
    for ns in _RSS1:
        channel = root.find(f"{ns}channel")
        if channel is not None:
            break
    else:
        return None
    feed = RawFeed(
        title=_text(channel.find(f"{ns}title")),
        link=_join(base, _text(channel.find(f"{ns}link"))),
        dates=[_text(channel.find(f"{_DC}date"))],
    )
    for item in root.iter(f"{ns}item"):
        item_base = _base(item, base)
        entry = RawEntry(guid=item.get(f"{_RDF}about"), guid_is_link=True)
        content = ""
        for child in item:
            tag = child.tag
            if tag == f"{ns}title":
                entry.title = child.text or ""
            elif tag == f"{ns}link" and child.text and child.text.strip():
                entry.links.append(_join(_base(child, item_base), child.text))
            elif tag == f"{_DC}date":
                entry.dates.append(child.text or "")
            elif tag == f"{_DC}subject":
                entry.categories.append(child.text or "")
            elif tag == f"{ns}description":
                entry.summary = child.text or ""
            elif tag == _CONTENT:
                content = child.text or ""
        entry.summary = entry.summary or content
        feed.entries.append(entry)
    return feed


# ----------------------------------------------------------------------------- Atom 1.0


def _atom_text(elem: ET.Element | None) -> str:
    if elem is None:
        return ""
    if elem.get("type") == "xhtml":
        return "".join(elem.itertext())
    return elem.text or ""


def _atom_link(elem: ET.Element, base: str | None) -> str | None:
    if elem.get("rel", "alternate") != "alternate":
        return None
    return _join(_base(elem, base), elem.get("href"))


def _atom(root: ET.Element, base: str | None) -> RawFeed:
    links = [x for x in (_atom_link(e, base) for e in root.findall(f"{_ATOM}link")) if x]
    feed = RawFeed(
        title=_atom_text(root.find(f"{_ATOM}title")),
        link=links[0] if links else "",
        dates=[_text(root.find(f"{_ATOM}updated"))],
    )
    for item in root.iter(f"{_ATOM}entry"):
        item_base = _base(item, base)
        entry = RawEntry()
        published = updated = ""
        summary = content = ""
        for child in item:
            tag = child.tag
            if tag == f"{_ATOM}title":
                entry.title = _atom_text(child)
            elif tag == f"{_ATOM}link":
                if href := _atom_link(child, item_base):
                    entry.links.append(href)
            elif tag == f"{_ATOM}id":
                entry.guid = (child.text or "").strip() or None
            elif tag == f"{_ATOM}published":
                published = child.text or ""
            elif tag == f"{_ATOM}updated":
                updated = child.text or ""
            elif tag == f"{_ATOM}category":
                entry.categories.append(child.get("term") or child.get("label") or "")
            elif tag == f"{_ATOM}summary":
                summary = _atom_text(child)
            elif tag == f"{_ATOM}content":
                content = _atom_text(child)
        entry.guid_is_link = not entry.links
        entry.dates = [published, updated]
        entry.summary = summary or content
        feed.entries.append(entry)
    return feed
