"""How an email digest shares its space out: every group shown, newest group first, a per-group
cap, and an archive link for the rest of each group (pure; used by compose.Composer)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlencode

if TYPE_CHECKING:
    from digests.compose import ArticleView, DigestContext, Group


@dataclass(frozen=True, slots=True)
class EmailGroup:
    """One group of an email digest: the articles shown and how many more the archive holds."""

    name: str | None
    articles: tuple[ArticleView, ...]
    more: int = 0
    archive_url: str | None = None  # where the `more` articles are, when the web pages are public


def newest_groups_first(groups: Sequence[Group]) -> list[Group]:
    """Groups whose newest article is newest come first (ties by name); "Also new" stays last."""

    def key(g: Group):
        newest = g.articles[0] if g.articles else None
        stamp = (newest.published.toordinal(), newest.id) if newest else (0, 0)
        return (g.name is None, -stamp[0], -stamp[1], (g.name or "").casefold())

    return sorted(groups, key=key)


def is_production(article: ArticleView) -> bool:
    return any(s.casefold() == "production" for s in article.sections)


def capped(group: Group, cap: int, by: str, ctx: DigestContext) -> EmailGroup:
    shown = group.articles[:cap]
    more = len(group.articles) - len(shown)
    url = None
    if more and ctx.archive_url:
        url = ctx.archive_url
        if group.name is not None and by in ("country", "section"):
            query = {by: group.name}
            # The archive filters one value per kind: narrow by the reader's other kind when they
            # follow exactly one (Italy + Production → Italy's production news).
            other = [v for k, v in ctx.followed if k != by and k in ("country", "section")]
            if len(other) == 1:
                query["section" if by == "country" else "country"] = other[0]
            url += "?" + urlencode(query)
    return EmailGroup(group.name, shown, more, url)


def choose_caps(count: int, start: int, fits: Callable[[Sequence[int]], bool]) -> list[int]:
    """Articles shown per group (groups newest first) for the largest layout that `fits`.

    Every group shows up to a shared cap, which shrinks until the email fits under Gmail's
    clipping size; every group keeps at least its heading and its "N more in …" link. When even
    one article each is too much, the newest groups keep theirs (as many as fit), the rest none.
    """
    cap = start
    while not fits([cap] * count) and cap > 1:
        cap = cap // 2 if cap > 4 else cap - 1
    if fits([cap] * count):
        return [cap] * count
    low, high = 0, count - 1  # how many of the newest groups keep one article
    while low < high:
        middle = (low + high + 1) // 2
        if fits([1] * middle + [0] * (count - middle)):
            low = middle
        else:
            high = middle - 1
    return [1] * low + [0] * (count - low)
