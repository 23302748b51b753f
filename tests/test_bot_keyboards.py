"""Callback data: compact, within Telegram's 64 bytes, and refused when not something the bot sent."""

from __future__ import annotations

import pytest

from bot import keyboards
from bot.keyboards import Action, decode, encode
from digests import catalog
from digests.catalog import COUNTRY, SECTION, Term
from digests.subscriptions import ChatSettings, Unknown


def _data(markup) -> list[str]:
    return [b.callback_data for row in markup.inline_keyboard for b in row]


def test_every_button_the_bot_can_draw_fits_and_decodes():
    everything = [Term(COUNTRY, c) for c in catalog.countries()]
    everything += [Term(SECTION, s) for s in catalog.sections()]
    markups = [keyboards.countries_keyboard(p, everything) for p in range(keyboards.page_count())]
    markups += [keyboards.sections_keyboard(everything), keyboards.list_keyboard(everything),
                keyboards.start_keyboard(catalog.countries()[:8]),
                keyboards.suggestions_keyboard([Unknown("x", everything[:3])]),
                keyboards.confirm_keyboard("ua:y", "confirm_unsubscribe_all"),
                keyboards.confirm_keyboard("stop:y", "confirm_stop"), keyboards.stats_keyboard(),
                keyboards.settings_keyboard(ChatSettings("daily", "08:00", "UTC", "Monday", True, False, ()))]
    seen = 0
    for markup in markups:
        for data in _data(markup):
            assert 1 <= len(data.encode()) <= 64, data
            assert decode(data) is not None, data
            seen += 1
    assert seen > 500
    # Every country appears in the browser exactly once, across the pages.
    toggles = [decode(d).term.value for p in range(keyboards.page_count())
               for d in _data(keyboards.countries_keyboard(p, [])) if d.startswith("t:")]
    assert sorted(toggles) == sorted(catalog.countries())


@pytest.mark.parametrize(("data", "expected"), [
    ("s:c:Belgium", Action("s", Term(COUNTRY, "Belgium"))),
    ("s:s:Box Office", Action("s", Term(SECTION, "Box Office"))),
    ("t:c:2:Czech Republic", Action("t", Term(COUNTRY, "Czech Republic"), 2)),
    ("t:s:0:Funding", Action("t", Term(SECTION, "Funding"), 0)),
    ("r:c:Saint Helena, Ascension and Tristan da Cunha",
     Action("r", Term(COUNTRY, "Saint Helena, Ascension and Tristan da Cunha"))),
    ("p:3", Action("p", page=3)),
    ("f:weekly", Action("f", value="weekly")),
    ("pz:1", Action("pz", value="1")),
    ("ua:y", Action("ua:y")),
    ("adm:stats", Action("adm:stats")),
])
def test_decode_round_trips(data, expected):
    assert decode(data) == expected


@pytest.mark.parametrize("data", [
    None, "", "s", "s:c", "s:c:", "s:c:belgium",  # names must be canonical, as the bot writes them
    "s:c:Atlantis", "s:q:Belgium", "s:s:Belgium", "s:c:Production", "t:c:Belgium", "t:c:x:Belgium",
    "t:c:999:Belgium", "t:s:1:Funding", "p:", "p:-1", "p:1e3", "p:9999", "f:hourly", "pz:yes",
    "ua:n", "stop", "adm", "adm:stats:1", "x:y", "🎬", "s:c:" + "B" * 70, "r:c:Belgium\n",
])
def test_decode_refuses_what_the_bot_never_sends(data):
    assert decode(data) is None


def test_encode_refuses_more_than_64_bytes():
    assert encode("s", "c", "Belgium") == "s:c:Belgium"
    with pytest.raises(ValueError):
        encode("s", "c", "é" * 31)
    with pytest.raises(ValueError):
        encode("")


def test_browser_ticks_followed_and_pages():
    markup = keyboards.countries_keyboard(0, [Term(COUNTRY, "Albania"), Term(SECTION, "Funding")])
    labels = [b.text for row in markup.inline_keyboard for b in row]
    assert "✅ Albania" in labels and "Afghanistan" in labels
    nav = markup.inline_keyboard[-2]
    assert [b.callback_data for b in nav] == ["p:0", "p:1"]  # no "previous" on the first page
    last = keyboards.countries_keyboard(keyboards.page_count() - 1, [])
    assert [b.callback_data for b in last.inline_keyboard[-2]][-1] == f"p:{keyboards.page_count() - 1}"
    # Out-of-range pages are clamped, never an error.
    assert _data(keyboards.countries_keyboard(999, [])) == _data(last)


def test_suggestions_at_most_three_per_word_and_none_without_guesses():
    many = [Term(COUNTRY, n) for n in ("France", "Finland", "Fiji", "Faroe Islands")]
    markup = keyboards.suggestions_keyboard([Unknown("frnace", many), Unknown("zzz", [])])
    assert _data(markup) == ["s:c:France", "s:c:Finland", "s:c:Fiji"]
    assert keyboards.suggestions_keyboard([Unknown("zzz", [])]) is None
    assert keyboards.list_keyboard([]) is None
