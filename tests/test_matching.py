import random

import pytest

from digests.catalog import Term
from digests.matching import ArticleIndex, group_by_key, match_bulk, matches, subscription_key
from digests.models import ArticleTag, Subscription

BE = ("country", "Belgium")
FR = ("country", "France")
PROD = ("section", "Production")
FEST = ("section", "Festivals")


@pytest.mark.parametrize(
    ("subs", "tags", "expected"),
    [
        ([BE], [BE, PROD], True),
        ([BE], [FR, PROD], False),
        ([BE, FR], [FR], True),  # within a kind: any
        ([BE, PROD], [BE, FEST], False),  # across kinds: both
        ([BE, PROD], [BE, PROD, FR], True),
        ([PROD], [FR, PROD], True),  # no country chosen: every country
        ([PROD, FEST], [FEST], True),
        ([], [BE, PROD], False),  # follows nothing
        ([BE], [], False),
        ([("country", "belgium")], [BE], True),  # stray case does not break a match
    ],
)
def test_matching_rule(subs, tags, expected):
    assert matches(subs, tags) is expected


def test_accepts_terms_and_model_rows():
    subs = [Term("country", "Belgium"), Subscription(subscriber_id=1, kind="section", value="Production")]
    tags = [ArticleTag(article_id=1, kind="country", value="Belgium"), ("section", "Production")]
    assert matches(subs, tags)
    assert subscription_key(subs) == subscription_key([PROD, BE, BE])


def test_index_keeps_the_given_order():
    index = ArticleIndex([(30, [BE]), (10, [BE, PROD]), (20, [FR])])
    assert index.select(subscription_key([BE])) == (30, 10)
    assert index.select(subscription_key([BE, FR])) == (30, 10, 20)
    assert index.select(subscription_key([BE, FEST])) == ()
    assert index.select(frozenset()) == ()


def test_bulk_agrees_with_the_rule_and_shares_work():
    rng = random.Random(7)
    countries = [("country", c) for c in ("Belgium", "France", "Italy", "Spain", "Poland", "Norway")]
    sections = [("section", s) for s in ("Production", "Festivals", "Distribution", "Funding")]
    articles = [
        (i, rng.sample(countries, rng.randint(0, 3)) + rng.sample(sections, rng.randint(0, 2)))
        for i in range(300)
    ]
    subscribers = {
        sid: rng.sample(countries, rng.randint(0, 2)) + rng.sample(sections, rng.randint(0, 2))
        for sid in range(2000)
    }
    result = match_bulk(articles, subscribers)
    for sid, subs in subscribers.items():
        assert result[sid] == tuple(aid for aid, tags in articles if matches(subs, tags))
    # Equal subscription sets share one tuple: the work was done once per distinct set.
    groups = group_by_key(subscribers)
    assert len(groups) <= 22 * 11 < len(subscribers) / 5
    for members in groups.values():
        assert len({id(result[m]) for m in members}) == 1
