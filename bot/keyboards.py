"""Inline keyboards and their callback data. Pure: no I/O besides reading button labels.

Callback data is `op:arg:arg…`, at most 64 bytes (Telegram's limit), and is validated on the way
back: anyone can send any callback data, so `decode` returns None for anything the bot did not
and could not have produced (unknown op, wrong arity, a name not in the catalog, a page out of range).

    s:c|s|f:NAME        follow a country/section/festival (suggestion and /start buttons)
    t:c|s|f:PAGE:NAME   toggle one in the browser, then redraw PAGE (sections, festivals: page 0)
    r:c|s|f:NAME        remove one (/list)
    rf:ID               stop following phrase ID (/list; checked against the chat on the way back)
    p:PAGE              country browser page;  sec  sections keyboard;  fes  festivals keyboard
    ua / ua:y           unsubscribe from all: ask / confirmed
    stop:y              /stop confirmed;  x  cancel a question
    f:FREQUENCY         /settings frequency;  pz:1|0  pause / resume
    adm:stats           refresh /stats (admins only)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.render import label
from digests import catalog
from digests.catalog import COUNTRY, FESTIVAL, SECTION, Term
from digests.follows import Followed, FollowResult
from digests.subscriptions import FREQUENCIES, ChatSettings, Unknown

MAX_DATA_BYTES = 64
PAGE_SIZE = 24  # countries per browser page: 8 rows of 3
COLUMNS = 3
# The festivals browser shows the catalog's first ones (the big festivals); any other is one
# `/subscribe NAME` away, and /festivals lists those with articles lately.
FESTIVAL_BUTTONS = 24
_KIND_CODE = {COUNTRY: "c", SECTION: "s", FESTIVAL: "f"}
_CODE_KIND = {v: k for k, v in _KIND_CODE.items()}
_SIMPLE_OPS = {"sec", "fes", "ua", "ua:y", "stop:y", "x", "adm:stats"}


@dataclass(frozen=True, slots=True)
class Action:
    """A decoded, validated callback."""

    op: str  # s | t | r | rf | p | sec | fes | ua | ua:y | stop:y | x | f | pz | adm:stats
    term: Term | None = None
    page: int = 0
    value: str = ""


def encode(*parts: str) -> str:
    data = ":".join(parts)
    if not 1 <= len(data.encode("utf-8")) <= MAX_DATA_BYTES:
        raise ValueError(f"callback data must be 1-{MAX_DATA_BYTES} bytes: {data!r}")
    return data


def _term(code: str, name: str) -> Term | None:
    kind = _CODE_KIND.get(code)
    if kind == COUNTRY and catalog.lookup_country(name) == name:
        return Term(COUNTRY, name)
    if kind == SECTION and catalog.lookup_section(name) == name:
        return Term(SECTION, name)
    if kind == FESTIVAL and catalog.lookup_festival(name) == name:
        return Term(FESTIVAL, name)
    return None


def page_count() -> int:
    return max(1, -(-len(catalog.countries()) // PAGE_SIZE))


def _page(text: str) -> int | None:
    if not text.isdigit() or len(text) > 3:
        return None
    page = int(text)
    return page if page < page_count() else None


def decode(data: str | None) -> Action | None:
    """The action behind callback `data`, or None when it is not something the bot sent."""
    if not data or len(data.encode("utf-8")) > MAX_DATA_BYTES:
        return None
    if data in _SIMPLE_OPS:
        return Action(data)
    op, _, rest = data.partition(":")
    if op in {"s", "r"}:
        code, _, name = rest.partition(":")
        term = _term(code, name)
        return Action(op, term) if term else None
    if op == "t":
        code, _, rest = rest.partition(":")
        page_text, _, name = rest.partition(":")
        term, page = _term(code, name), _page(page_text)
        if term is None or page is None or (term.kind != COUNTRY and page != 0):
            return None
        return Action(op, term, page)
    if op == "p":
        page = _page(rest)
        return Action(op, page=page) if page is not None else None
    if op == "f" and rest in FREQUENCIES:
        return Action(op, value=rest)
    if op == "rf" and rest.isdigit() and len(rest) <= 18:
        return Action(op, value=rest)
    if op == "pz" and rest in {"0", "1"}:
        return Action(op, value=rest)
    return None


def _button(text: str, *data: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(text, callback_data=encode(*data))


def _rows(buttons: Sequence[InlineKeyboardButton], columns: int) -> list[list[InlineKeyboardButton]]:
    return [list(buttons[i : i + columns]) for i in range(0, len(buttons), columns)]


def follow_button(term: Term) -> InlineKeyboardButton:
    return _button(label("follow", term.value), "s", _KIND_CODE[term.kind], term.value)


def start_keyboard(countries: Iterable[str]) -> InlineKeyboardMarkup:
    """Popular countries to follow in one tap, then the browsers."""
    buttons = [follow_button(Term(COUNTRY, name)) for name in countries]
    rows = _rows(buttons, 2)
    rows.append([_button(label("all_countries"), "p", "0"), _button(label("sections"), "sec")])
    return InlineKeyboardMarkup(rows)


def suggestions_keyboard(unknown: Iterable[Unknown]) -> InlineKeyboardMarkup | None:
    """One row per unknown word: up to three guesses, each subscribing in one tap."""
    rows = [[follow_button(t) for t in u.suggestions[:3]] for u in unknown if u.suggestions]
    return InlineKeyboardMarkup(rows) if rows else None


def countries_keyboard(page: int, followed: Iterable[Term]) -> InlineKeyboardMarkup:
    """One page of every country; a tick on those followed; tapping toggles."""
    names = catalog.countries()
    chosen = {t.value for t in followed if t.kind == COUNTRY}
    page = min(max(page, 0), page_count() - 1)
    chunk = names[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
    buttons = [_button(label("toggle", name, name in chosen), "t", "c", str(page), name) for name in chunk]
    rows = _rows(buttons, COLUMNS)
    nav = []
    if page > 0:
        nav.append(_button(label("previous"), "p", str(page - 1)))
    nav.append(_button(label("page", page + 1, page_count()), "p", str(page)))
    if page < page_count() - 1:
        nav.append(_button(label("next"), "p", str(page + 1)))
    rows.append(nav)
    rows.append([_button(label("sections"), "sec"), _button(label("festivals"), "fes")])
    return InlineKeyboardMarkup(rows)


def sections_keyboard(followed: Iterable[Term]) -> InlineKeyboardMarkup:
    chosen = {t.value for t in followed if t.kind == SECTION}
    buttons = [_button(label("toggle", name, name in chosen), "t", "s", "0", name)
               for name in catalog.sections()]
    rows = _rows(buttons, 2)
    rows.append([_button(label("all_countries"), "p", "0"), _button(label("festivals"), "fes")])
    return InlineKeyboardMarkup(rows)


def festivals_keyboard(followed: Iterable[Term]) -> InlineKeyboardMarkup:
    chosen = {t.value for t in followed if t.kind == FESTIVAL}
    buttons = [_button(label("toggle", name, name in chosen), "t", "f", "0", name)
               for name in catalog.festivals()[:FESTIVAL_BUTTONS]]
    rows = _rows(buttons, COLUMNS)
    rows.append([_button(label("all_countries"), "p", "0"), _button(label("sections"), "sec")])
    return InlineKeyboardMarkup(rows)


def browser_keyboard(term: Term, page: int, followed: Iterable[Term]) -> InlineKeyboardMarkup:
    """The browser page `term` sits on, redrawn after a toggle."""
    if term.kind == COUNTRY:
        return countries_keyboard(page, followed)
    return sections_keyboard(followed) if term.kind == SECTION else festivals_keyboard(followed)


def list_keyboard(terms: Iterable[Term], phrases: Iterable[Followed] = ()) -> InlineKeyboardMarkup | None:
    """A remove button for each subscription and followed phrase, then "unsubscribe from all"."""
    terms = list(terms)
    buttons = [_button(label("remove", t.value), "r", _KIND_CODE[t.kind], t.value) for t in terms]
    buttons += [_button(label("remove_phrase", f.phrase), "rf", str(f.id)) for f in phrases]
    if not buttons:
        return None
    rows = _rows(buttons, 2)
    if terms:
        rows.append([_button(label("unsubscribe_all"), "ua")])
    return InlineKeyboardMarkup(rows)


def follow_result_keyboard(result: FollowResult) -> InlineKeyboardMarkup | None:
    """/follow's answer: the country or section to subscribe to instead, or names it may mean."""
    if result.term is not None:
        return InlineKeyboardMarkup([[follow_button(result.term)]])
    if result.suggestions:
        return InlineKeyboardMarkup([[follow_button(t) for t in result.suggestions[:3]]])
    return None


def confirm_keyboard(yes_data: str, yes_label: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[_button(label(yes_label), yes_data), _button(label("cancel"), "x")]])


def settings_keyboard(current: ChatSettings) -> InlineKeyboardMarkup:
    frequency = [_button(label("frequency", f, f == current.frequency), "f", f) for f in FREQUENCIES]
    pause = _button(label("resume"), "pz", "0") if current.paused else _button(label("pause"), "pz", "1")
    return InlineKeyboardMarkup([frequency, [pause]])


def stats_keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[_button(label("refresh"), "adm:stats")]])
