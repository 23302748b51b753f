"""Telegram's message rules, as the real Bot API applies them: HTML subset, lengths, buttons. Pure.

Each check raises `Rejected(status, description)` with the wording Telegram uses, so code under test
sees the same `BadRequest` texts it would see in production.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_TEXT = 4096  # Unicode scalars after entity parsing (measured: not UTF-16 units)
MAX_CALLBACK_DATA = 64  # bytes
MAX_CALLBACK_ANSWER = 200
MAX_COMMANDS = 100

# tag -> attributes Telegram understands on it (others are ignored, as Telegram does)
ALLOWED_TAGS: dict[str, set[str]] = {
    "b": set(), "strong": set(), "i": set(), "em": set(), "u": set(), "ins": set(),
    "s": set(), "strike": set(), "del": set(), "a": {"href"}, "code": {"class"}, "pre": set(),
    "blockquote": {"expandable"}, "tg-spoiler": set(), "span": {"class"}, "tg-emoji": {"emoji-id"},
}
NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}

_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[^<>]*?)?)\s*(/?)>")
_ATTR = re.compile(r"""([a-zA-Z-]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?""")
_ENTITY = re.compile(r"&(?:#(\d{1,7})|#[xX]([0-9a-fA-F]{1,6})|([a-zA-Z]+));")
_TEXT_BUTTON = "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
_COMMAND = re.compile(r"^[a-z0-9_]{1,32}$")


class Rejected(Exception):
    """What the Bot API answers instead of ok: an HTTP status and Telegram's description."""

    def __init__(self, status: int, description: str, parameters: dict | None = None):
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


def _bad(description: str) -> Rejected:
    return Rejected(400, f"Bad Request: {description}")


def _entities(text: str, offset: int) -> Rejected:
    return _bad(f"can't parse entities: {text} at byte offset {offset}")


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def _unescape(raw: str, source: str, start: int) -> str:
    """Plain text of a run between tags; a `<` or `&` that is no allowed entity is an error."""
    out: list[str] = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "<":
            raise _entities("Unexpected character '<'", _byte_offset(source, start + i))
        if ch != "&":
            out.append(ch)
            i += 1
            continue
        m = _ENTITY.match(raw, i)
        if not m:
            raise _entities("Can't find end of the entity starting", _byte_offset(source, start + i))
        dec, hexa, name = m.groups()
        if name is not None:
            if name not in NAMED_ENTITIES:
                raise _entities(f'Unsupported HTML entity "&{name};"', _byte_offset(source, start + i))
            out.append(NAMED_ENTITIES[name])
        else:
            code = int(dec) if dec is not None else int(hexa, 16)
            if not 0 < code <= 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise _entities("Invalid numeric HTML entity", _byte_offset(source, start + i))
            out.append(chr(code))
        i = m.end()
    return "".join(out)


@dataclass
class _Open:
    name: str
    offset: int


def parse_html(text: str) -> str:
    """The plain text Telegram would show for `text` in parse_mode HTML, or Rejected."""
    plain: list[str] = []
    stack: list[_Open] = []
    pos = 0
    while True:
        lt = text.find("<", pos)
        chunk_end = len(text) if lt == -1 else lt
        plain.append(_unescape(text[pos:chunk_end], text, pos))
        if lt == -1:
            break
        m = _TAG.match(text, lt)
        if not m:
            if text.find(">", lt) == -1:
                raise _entities("Unclosed start tag", _byte_offset(text, lt))
            raise _entities("Unexpected character '<'", _byte_offset(text, lt))
        closing, name, attrs, selfclose = m.group(1), m.group(2).lower(), m.group(3), m.group(4)
        offset = _byte_offset(text, lt)
        if closing:
            if not stack:
                raise _entities(f'Unexpected end tag "{name}"', offset)
            if stack[-1].name != name:
                raise _entities(
                    f'Unmatched end tag at byte offset {offset}, expected "</{stack[-1].name}>", '
                    f'found "</{name}>"', offset)
            stack.pop()
        else:
            if name not in ALLOWED_TAGS or selfclose:
                raise _entities(f'Unsupported start tag "{name}"', offset)
            _check_attributes(name, attrs, text, offset)
            inside = stack[-1].name if stack else ""
            if inside in {"code", "pre"} and not (inside == "pre" and name == "code"):
                raise _entities(f'Tag "{name}" can\'t be nested inside "{stack[-1].name}"', offset)
            stack.append(_Open(name, offset))
        pos = m.end()
    if stack:
        unclosed = stack[-1]
        raise _entities(f'Can\'t find end tag corresponding to start tag "{unclosed.name}"', unclosed.offset)
    return "".join(plain)


def _check_attributes(name: str, attrs: str, source: str, offset: int) -> None:
    values: dict[str, str] = {}
    for m in _ATTR.finditer(attrs):
        key = m.group(1).lower()
        raw = next((g for g in m.group(2, 3, 4) if g is not None), "")
        values[key] = _unescape(raw, source, 0) if "&" in raw else raw
    if name == "span" and values.get("class") != "tg-spoiler":
        raise _entities('Tag "span" must have class "tg-spoiler"', offset)
    if name == "a" and "href" in values:
        href = values["href"]
        if not re.match(r"^(https?://[^\s/$.?#].\S*|tg://\S+|mailto:\S+)$", href):
            raise _bad(f"can't parse entities: Wrong HTTP URL \"{href}\"")
    if name == "tg-emoji" and not values.get("emoji-id", "").isdigit():
        raise _entities('Tag "tg-emoji" must have attribute "emoji-id"', offset)


def message_text(text: object, parse_mode: object) -> str:
    """Validate a message's text; return its plain text (what the 4096 limit is measured on)."""
    if text is None or text == "":
        raise _bad("message text is empty")
    text = str(text)
    mode = str(parse_mode or "").lower()
    plain = parse_html(text) if mode == "html" else text
    if not plain.strip():
        raise _bad("message text is empty")
    if len(plain) > MAX_TEXT:
        raise _bad("message is too long")
    return plain


def reply_markup(markup: object) -> dict | None:
    """Validate an inline keyboard the way Telegram does (callback_data 1-64 bytes, one action)."""
    if markup in (None, ""):
        return None
    if not isinstance(markup, dict):
        raise _bad("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" not in markup:
        return markup  # reply keyboards and force_reply: stored, not checked
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise _bad("field \"inline_keyboard\" of the InlineKeyboardMarkup must be an Array of Arrays")
    for row in rows:
        for button in row:
            if not isinstance(button, dict) or not button.get("text"):
                raise _bad(_TEXT_BUTTON)
            actions = [k for k in button if k != "text"]
            if len(actions) != 1:
                raise _bad(_TEXT_BUTTON)
            if "callback_data" in button:
                data = button["callback_data"]
                if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= MAX_CALLBACK_DATA:
                    raise _bad("BUTTON_DATA_INVALID")
            if "url" in button and not re.match(r"^(https?|tg)://\S+$", str(button["url"])):
                raise _bad(f"inline keyboard button URL '{button['url']}' is invalid: Wrong HTTP URL")
    return markup


def bot_commands(commands: object) -> list[dict]:
    if not isinstance(commands, list) or len(commands) > MAX_COMMANDS:
        raise _bad("BOT_COMMANDS_TOO_MUCH" if isinstance(commands, list) else "commands is not an array")
    for c in commands:
        if not isinstance(c, dict) or not _COMMAND.match(str(c.get("command", ""))):
            raise _bad("BOT_COMMAND_INVALID")
        if not 1 <= len(str(c.get("description", ""))) <= 256:
            raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
    return commands
