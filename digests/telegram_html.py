"""Telegram's HTML parse mode, checked before anything is queued. Pure.

What Telegram accepts: the tags below (with these attributes only), the entities &lt; &gt; &amp;
&quot; and numeric ones, every other <, > and & escaped, tags closed in order, and at most 4096
characters once the markup is parsed away.
"""

from __future__ import annotations

import html
import re

MAX_LENGTH = 4096
ALLOWED: dict[str, set[str]] = {
    "b": set(),
    "strong": set(),
    "i": set(),
    "em": set(),
    "u": set(),
    "ins": set(),
    "s": set(),
    "strike": set(),
    "del": set(),
    "tg-spoiler": set(),
    "span": {"class"},
    "a": {"href"},
    "code": {"class"},
    "pre": set(),
    "blockquote": {"expandable"},
    "tg-emoji": {"emoji-id"},
}
_NAMED_ENTITIES = {"lt", "gt", "amp", "quot"}
_LINK_SCHEMES = re.compile(r"(https?://|tg://|mailto:)", re.IGNORECASE)
_TOKEN = re.compile(
    r"<(?P<close>/?)(?P<tag>[a-zA-Z][\w-]*)(?P<attrs>[^<>]*)>"
    r"|&(?P<entity>#\d+|#[xX][0-9a-fA-F]+|[a-zA-Z]+);"
    r"|(?P<bare>[<>&])"
)
_ATTR = re.compile(r"""([a-zA-Z][\w-]*)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s"'>]+))?""")
_LOOKS_LIKE_MARKUP = re.compile(r"</?[a-zA-Z][\w-]*(\s[^<>]*)?>|&(#\d+|#[xX][0-9a-fA-F]+|[a-zA-Z]+);")


def check(text: str) -> list[str]:
    """Every reason Telegram would refuse `text` as HTML (empty list: it is fine)."""
    errors: list[str] = []
    stack: list[str] = []
    for m in _TOKEN.finditer(text):
        where = f"at character {m.start() + 1}"
        if m.group("bare"):
            char = m.group("bare")
            escaped = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}[char]
            errors.append(f"a bare '{char}' {where}: write {escaped}")
        elif m.group("entity"):
            name = m.group("entity")
            if not name.startswith("#") and name not in _NAMED_ENTITIES:
                errors.append(f"the entity &{name}; {where} is not supported (only &lt; &gt; &amp; &quot;)")
        else:
            tag = m.group("tag").lower()
            if tag not in ALLOWED:
                errors.append(f"the tag <{tag}> {where} is not supported by Telegram")
                continue
            if m.group("close"):
                if not stack or stack[-1] != tag:
                    expected = f"</{stack[-1]}>" if stack else "nothing"
                    errors.append(f"</{tag}> {where} closes {expected}")
                else:
                    stack.pop()
                continue
            attrs = m.group("attrs").strip().rstrip("/").strip()
            for name, value in _ATTR.findall(attrs):
                if name.lower() not in ALLOWED[tag]:
                    errors.append(f"<{tag}> {where} cannot have the attribute {name}")
                elif tag == "span" and value.strip("\"'") != "tg-spoiler":
                    errors.append(f'<span> {where} is only allowed as class="tg-spoiler"')
                elif tag == "a" and not value.strip("\"'"):
                    errors.append(f"<a> {where} needs an href")
                elif tag == "a" and not _LINK_SCHEMES.match(html.unescape(value.strip("\"'")).strip()):
                    # The same text becomes every reader's email HTML: no javascript: or data: links.
                    errors.append(f"<a> {where} must link to an http(s), tg: or mailto: address")
            if tag == "a" and "href" not in attrs:
                errors.append(f"<a> {where} needs an href")
            stack.append(tag)
    for tag in reversed(stack):
        errors.append(f"<{tag}> is never closed")
    if not errors and len(visible_text(text)) > MAX_LENGTH:
        errors.append(f"{len(visible_text(text))} characters once formatted; Telegram allows {MAX_LENGTH}")
    return errors


def looks_like_markup(text: str) -> bool:
    return bool(_LOOKS_LIKE_MARKUP.search(text))


def from_admin(text: str) -> tuple[str, list[str]]:
    """(Telegram HTML, problems): markup is checked as is; plain text is escaped, so `a < b` is fine."""
    text = text.strip()
    if looks_like_markup(text):
        return text, check(text)
    body = html.escape(text, quote=False)
    return body, check(body)


def visible_text(markup: str) -> str:
    """The text a reader sees: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^<>]*>", "", markup))


def to_plain(markup: str) -> str:
    """Plain-text version for email: links keep their address after the text."""

    def link(m: re.Match[str]) -> str:
        href, label = html.unescape(m.group(1)), m.group(2)
        shown = visible_text(label)
        return shown if shown == href else f"{shown} ({href})"

    text = re.sub(r"""<a\s[^>]*href=["']?([^"'\s>]+)["']?[^>]*>(.*?)</a>""", link, markup, flags=re.S)
    return visible_text(text)


def to_email_html(markup: str) -> str:
    """Telegram HTML as email HTML: line breaks kept (outside <pre>), spoilers shown as plain text."""
    parts = re.split(r"(<pre>.*?</pre>)", markup, flags=re.S)
    out = []
    for part in parts:
        if part.startswith("<pre>"):
            out.append(part)
        else:
            out.append(part.replace("\n", "<br>\n"))
    result = "".join(out)
    result = re.sub(r"</?tg-spoiler>", "", result)
    result = re.sub(r"</?tg-emoji[^>]*>", "", result)
    return result.replace('<span class="tg-spoiler">', "<span>")
