"""A shared rendering's MIME parts encoded once; each reader's links spliced into the bytes.

The readers of one fan-out get the same digest but for their own links (unsubscribe,
preferences, view). Normalising, encoding and checking 13 kB per part was most of the cost of
building each message, so a part is prepared once per rendering, cut at its link placeholders,
and each message joins the pieces around that reader's links.

A spliced part is byte for byte the part `RenderedMail` would build from the personalised text
(tests/test_splice.py holds them side by side). Where that could differ, `render` says None and
the caller builds the part in full: a link missing (the view line is then dropped), a link that
is not ASCII when the server takes only 7bit, a line a link would push past RFC 5322's 998
octets, anything odd in a link, or a part holding the MIME boundary.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from digests.compose import PREFERENCES_PLACEHOLDER, UNSUBSCRIBE_PLACEHOLDER, VIEW_PLACEHOLDER

# RFC 5322: at most 998 octets on a line, CRLF excluded.
MAX_LINE = 998
PLACEHOLDERS = {
    UNSUBSCRIBE_PLACEHOLDER: "unsubscribe",
    PREFERENCES_PLACEHOLDER: "preferences",
    VIEW_PLACEHOLDER: "view",
}
_SPLIT = re.compile("(" + "|".join(map(re.escape, PLACEHOLDERS)) + ")")


def normalise(content: str) -> bytes:
    """A part's text as it goes on the wire, before CRLF: one newline convention, UTF-8."""
    return content.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")


def head(subtype: str, cte: str) -> bytes:
    return f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: {cte}\r\n'.encode(
        "ascii"
    )


@dataclass(frozen=True, slots=True)
class PartTemplate:
    """One text part cut at its placeholders: pieces are CRLF bytes, or a link's name."""

    subtype: str
    pieces: tuple[bytes | str, ...]
    names: frozenset[str]
    ascii: bool
    # Each line holding links: (its octets without them, the names of the links on it).
    lines: tuple[tuple[int, tuple[str, ...]], ...]


def prepare(content: str, subtype: str, boundary: bytes) -> PartTemplate | None:
    """The template of one part; None when no reader's part could go unencoded (a line over
    998 octets without any link, or the boundary in the text): those are built in full."""
    raw = normalise(content)
    if boundary in raw:
        return None
    lines = []
    for line in raw.split(b"\n"):
        found = _SPLIT.findall(line.decode("utf-8"))
        names = tuple(PLACEHOLDERS[f] for f in found)
        base = len(line) - sum(map(len, found))  # placeholders are ASCII: characters are octets
        if base > MAX_LINE:
            return None
        if names:
            lines.append((base, names))
    pieces: list[bytes | str] = []
    for i, piece in enumerate(_SPLIT.split(raw.decode("utf-8"))):
        if i % 2:
            pieces.append(PLACEHOLDERS[piece])
        elif piece:
            pieces.append(piece.replace("\n", "\r\n").encode("utf-8"))
    return PartTemplate(
        subtype=subtype,
        pieces=tuple(pieces),
        names=frozenset(p for p in pieces if isinstance(p, str)),
        ascii=raw.isascii(),
        lines=tuple(lines),
    )


def values(links: dict[str, str | None], subtype: str) -> dict[str, bytes] | None:
    """Each link as it stands in a part of `subtype` (HTML-escaped in HTML, as personalise does);
    None when a link is missing or could change the text around it."""
    found = {}
    for name in PLACEHOLDERS.values():
        url = links.get(name)
        if url is None or "\r" in url or "\n" in url or "CLAPPER-PERSONAL-" in url:
            return None
        found[name] = (html.escape(url, quote=True) if subtype == "html" else url).encode("utf-8")
    return found


def render(
    template: PartTemplate, links: dict[str, bytes], *, eightbit: bool, boundary: bytes
) -> tuple[bytes, bool] | None:
    """(the part, whether it is 8bit) with these links in; None where it must be built in full."""
    for base, names in template.lines:
        if base + sum(len(links[n]) for n in names) > MAX_LINE:
            return None
    ascii = template.ascii and all(links[n].isascii() for n in template.names)
    if not ascii and not eightbit:
        return None  # quoted-printable: encoded per reader
    body = b"".join(p if isinstance(p, bytes) else links[p] for p in template.pieces)
    if boundary in body:
        return None
    return head(template.subtype, "7bit" if ascii else "8bit") + b"\r\n" + body + b"\r\n", not ascii
