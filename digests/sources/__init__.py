"""Source parsers (listing pages, feeds) and their HTTP fetcher; each yields `ParsedArticle`s."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

ARTICLE = "article"
INTERVIEW = "interview"


def article_json(article) -> dict[str, object]:
    """The public one-line JSON form (`--json`); other tools depend on exactly these keys."""
    return {
        "title": article.title,
        "summary": article.summary,
        "url": article.url,
        "published": article.published.isoformat(),
        "sections": list(article.sections),
        "countries": list(article.countries),
    }


@dataclass(frozen=True, slots=True)
class ParsedArticle:
    """One article as a source shows it; tags are canonical catalog names."""

    title: str
    summary: str
    url: str
    published: date
    sections: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()
    kind: str = ARTICLE
    tags: tuple[str, ...] = ()  # free tags (feed categories the catalog does not know): matched, never listed
    dated: bool = True  # False: the source gave no readable date, `published` is a stand-in
    guid: str | None = None  # the feed's own id: tells apart distinct items that share one link

    def as_json(self) -> dict[str, object]:
        return article_json(self)


@dataclass(slots=True)
class ParsedPage:
    """What one fetched document held: a listing page or a feed."""

    articles: list[ParsedArticle] = field(default_factory=list)
    heading: str | None = None
    total: int | None = None
    first_date: date | None = None  # "starting from …"
    last_published: date | None = None  # "Last article published on …"
    next_url: str | None = None  # pagination (HTML listings only)
    skipped: int = 0  # records dropped (cut off, no date…)
