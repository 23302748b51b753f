"""Every wording the bot sends comes from templates/telegram: replies (HTML) and labels (plain text)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from digests import compose

LABELS = "telegram/labels.txt.j2"


def reply(name: str, /, **context: Any) -> str:
    """Render templates/telegram/NAME.html.j2 (autoescaped Telegram HTML), trimmed."""
    return compose.render(compose.make_environment(), f"telegram/{name}.html.j2", **context).strip()


@lru_cache(maxsize=1)
def _labels() -> Any:
    # A template module exposes its macros as callables; the .txt.j2 name keeps it unescaped, since
    # button labels and callback answers are plain text, not HTML.
    return compose.make_environment().get_template(LABELS).module


def label(name: str, /, *args: Any) -> str:
    """A button label or a short callback answer: macro NAME of templates/telegram/labels.txt.j2."""
    return str(getattr(_labels(), name)(*args)).strip()
