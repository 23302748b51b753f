"""Pure matching: which articles a set of subscriptions selects.

A followed phrase (digests/phrases.py) adds articles besides this rule: `select_with_phrases`.

The rule (also written in the bot's /help): within a kind (country, section) any chosen value
matches; across kinds every kind with a choice must match; a kind with nothing chosen matches
everything; no subscriptions at all follows nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

Tag = tuple[str, str]  # (kind, value)
SubscriptionKey = frozenset[Tag]


def _pair(item: Any) -> Tag:
    """(kind, value) from a Term, a Subscription, an ArticleTag or a plain tuple."""
    if isinstance(item, tuple):
        kind, value = item
    else:
        kind, value = item.kind, item.value
    # Values are canonical names from the catalog; casefolding only guards against stray case.
    # A free tag (a feed category the catalog does not know) matches a section of that name.
    return ("section" if kind == "tag" else kind), value.casefold()


def subscription_key(subs: Iterable[Any]) -> SubscriptionKey:
    """A hashable, order-free key: subscribers with equal keys get the same articles."""
    return frozenset(_pair(s) for s in subs)


def _by_kind(pairs: Iterable[Tag]) -> dict[str, set[str]]:
    chosen: dict[str, set[str]] = defaultdict(set)
    for kind, value in pairs:
        chosen[kind].add(value)
    return chosen


def matches(subs: Iterable[Any], tags: Iterable[Any]) -> bool:
    """True when an article with `tags` is selected by the subscriptions `subs`."""
    chosen = _by_kind(_pair(s) for s in subs)
    if not chosen:
        return False
    have = _by_kind(_pair(t) for t in tags)
    return all(values & have.get(kind, set()) for kind, values in chosen.items())


class ArticleIndex:
    """Articles (in the order given, e.g. newest first) indexed by tag for fast bulk matching."""

    def __init__(self, articles: Sequence[tuple[int, Iterable[Any]]]):
        self.order: dict[int, int] = {}
        self._by_tag: dict[Tag, set[int]] = defaultdict(set)
        for position, (article_id, tags) in enumerate(articles):
            self.order.setdefault(article_id, position)
            for tag in tags:
                self._by_tag[_pair(tag)].add(article_id)

    def select(self, key: SubscriptionKey) -> tuple[int, ...]:
        """Ids of the articles `key` matches, in the index's order."""
        if not key:
            return ()
        selected: set[int] | None = None
        for kind, values in _by_kind(key).items():
            # Union within a kind, then intersection across kinds.
            hits: set[int] = set()
            for value in values:
                hits |= self._by_tag.get((kind, value), set())
            selected = hits if selected is None else selected & hits
            if not selected:
                return ()
        assert selected is not None
        return tuple(sorted(selected, key=self.order.__getitem__))


def match_bulk(
    articles: Sequence[tuple[int, Iterable[Any]]],
    subscriptions: Mapping[Hashable, Iterable[Any]],
) -> dict[Hashable, tuple[int, ...]]:
    """Each subscriber's matching article ids (in `articles` order), computed once per distinct set.

    `articles`: (article id, tags) pairs, e.g. newest first. `subscriptions`: subscriber id ->
    their subscriptions. Subscribers with identical sets share one result tuple.
    """
    index = ArticleIndex(articles)
    by_key: dict[SubscriptionKey, tuple[int, ...]] = {}
    result: dict[Hashable, tuple[int, ...]] = {}
    for subscriber, subs in subscriptions.items():
        key = subscription_key(subs)
        hit = by_key.get(key)
        if hit is None:
            hit = by_key[key] = index.select(key)
        result[subscriber] = hit
    return result


def group_by_key(subscriptions: Mapping[Hashable, Iterable[Any]]) -> dict[SubscriptionKey, list[Hashable]]:
    """Subscribers grouped by identical subscription set (the unit of shared work)."""
    groups: dict[SubscriptionKey, list[Hashable]] = defaultdict(list)
    for subscriber, subs in subscriptions.items():
        groups[subscription_key(subs)].append(subscriber)
    return dict(groups)


def select_with_phrases(
    by_tags: tuple[int, ...],
    mine_phrases: tuple[tuple[str, str], ...],
    phrase_hits: Mapping[str, Sequence[int]],
    order: Mapping[int, int],
    by_id: Mapping[int, Any],
    first_seen: Mapping[int, Any],
    since: Any,
) -> tuple[tuple[Any, ...], tuple[Any, ...], tuple[tuple[int, str], ...]]:
    """The new articles for one reader: (the tag rule's, those only a followed phrase brings, and
    (article id, phrase) for each of the latter: their "why" line). Both lists in `order`."""
    ids = [i for i in by_tags if first_seen[i] > since]
    selected = tuple(by_id[i] for i in ids)
    if not mine_phrases:
        return selected, (), ()
    taken = set(ids)
    because: dict[int, str] = {}
    for k, phrase in mine_phrases:
        for i in phrase_hits.get(k, ()):
            if i not in taken and i not in because and first_seen[i] > since:
                because[i] = phrase
    extra = tuple(by_id[i] for i in sorted(because, key=order.__getitem__))
    return selected, extra, tuple(sorted(because.items()))
