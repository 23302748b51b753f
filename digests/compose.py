"""Pure composing: Jinja2 templates -> Telegram HTML parts and email (subject, HTML, text).

No I/O besides loading templates. A `Composer` lives for one queue run and caches renders:
subscribers who share subscriptions and a watermark get the very same digest, so it is rendered
once per distinct (articles, channel, context). Personal bits (unsubscribe and preferences links)
stay out of the cached render as placeholders that `EmailDigest.personalise` fills in.
"""

from __future__ import annotations

import html
import re
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import css_inline
import jinja2

from digests.config import TEMPLATES_DIR
from digests.email_groups import EmailGroup, capped, choose_caps, is_production, newest_groups_first

TELEGRAM_LIMIT = 4096  # characters (UTF-16 code units) after entity parsing

TG_DIGEST = "telegram/digest.html.j2"
TG_NOTHING_NEW = "telegram/nothing_new.html.j2"
EMAIL_HTML = "email/digest.html.j2"
EMAIL_TEXT = "email/digest.txt.j2"
EMAIL_SUBJECT = "email/digest_subject.txt.j2"
TG_PHRASES = "telegram/digest_phrases.html.j2"
EMAIL_PHRASES_HTML = "email/digest_phrases.html.j2"
EMAIL_PHRASES_TEXT = "email/digest_phrases.txt.j2"
# Where the "names you follow" block goes. Digests are rendered (and cached) with it in place,
# shared by every reader of the same countries and sections; each reader's own block of
# phrase-only articles then replaces it, so following names adds small renders, not whole ones.
PHRASES_MARK = "CLAPPER-PHRASES-BLOCK"

# Plain tokens that survive escaping and CSS inlining; replaced per subscriber after the cache.
UNSUBSCRIBE_PLACEHOLDER = "CLAPPER-PERSONAL-UNSUBSCRIBE-URL"
PREFERENCES_PLACEHOLDER = "CLAPPER-PERSONAL-PREFERENCES-URL"
VIEW_PLACEHOLDER = "CLAPPER-PERSONAL-VIEW-URL"
# Gmail clips a message over 102 KB and hides the rest, the unsubscribe footer included.
EMAIL_MAX_BYTES = 100_000

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class TemplateError(RuntimeError):
    """A template failed to load or render; the message names the template and line."""

    def __init__(self, template: str, line: int | None, message: str):
        self.template, self.line = template, line
        where = f"{template}:{line}" if line else template
        super().__init__(f"template {where}: {message}")


def safe_href(url: str) -> str | None:
    """`url` fit for an href, or None: only http(s) with a host, so a source can never slip in a
    `javascript:`, `data:` or relative link; the template escapes it as an attribute."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or not url[:8].lower().startswith(
        ("https://", "http://")
    ):
        return None
    # Telegram rejects an href with whitespace or control characters; scraped URLs carry some.
    return re.sub(r"[\s\x00-\x1f\x7f]", lambda m: f"%{ord(m.group()):02X}", url)


@dataclass(frozen=True, slots=True)
class ArticleView:
    """What a digest shows of one article."""

    id: int
    url: str
    title: str
    published: date
    summary: str = ""
    countries: tuple[str, ...] = ()
    sections: tuple[str, ...] = ()
    kind: str = "article"
    festivals: tuple[str, ...] = ()  # "Cannes 2024"

    @property
    def link(self) -> str | None:
        """The URL to link, or None (text-only `clapper:text/...` pages, anything not http)."""
        return safe_href(self.url)


@dataclass(frozen=True, slots=True)
class DigestContext:
    """Everything besides the articles that shapes a digest and may differ between subscribers."""

    followed: tuple[tuple[str, str], ...] = ()  # (kind, value) the subscriber follows
    frequency: str = "daily"  # instant | daily | weekly
    local_date: date = date(2000, 1, 1)  # the digest's date in the subscriber's timezone
    period_start: date | None = None  # weekly: the day the covered week starts
    has_links: bool = False  # PUBLIC_BASE_URL set: unsubscribe/preferences are web links
    # (article id, phrase) for articles that only a followed phrase brought: their "why" line.
    because: tuple[tuple[int, str], ...] = ()

    def why(self, article_id: int) -> str | None:
        """The followed phrase that alone brought this article, if any."""
        for aid, phrase in self.because:
            if aid == article_id:
                return phrase
        return None
    archive_url: str = ""  # the public /archive page ("N more in Italy" links), when there is one


@dataclass(frozen=True, slots=True)
class Group:
    name: str | None  # a country or section; None when the subscriber follows nothing to group by
    articles: tuple[ArticleView, ...]


@dataclass(frozen=True, slots=True)
class TelegramDigest:
    parts: tuple[str, ...]
    template: str
    article_count: int


@dataclass(frozen=True, slots=True)
class EmailDigest:
    subject: str
    html: str
    text: str
    template: str
    article_count: int

    def personalise(
        self, unsubscribe_url: str | None, preferences_url: str | None, view_url: str | None = None
    ) -> EmailDigest:
        """This digest with one subscriber's links in place of the shared placeholders."""
        page, text = self.html, self.text
        for placeholder, url in (
            (UNSUBSCRIBE_PLACEHOLDER, unsubscribe_url),
            (PREFERENCES_PLACEHOLDER, preferences_url),
            (VIEW_PLACEHOLDER, view_url),
        ):
            if url is None and placeholder == VIEW_PLACEHOLDER:
                # Callers that have no page for this digest drop the "view in browser" line.
                page = re.sub(r"<!--view-->.*?<!--/view-->", "", page, flags=re.S)
                text = re.sub(r"(?m)^.*" + VIEW_PLACEHOLDER + r".*\n?", "", text)
                continue
            if placeholder in text or placeholder in page:
                if url is None:
                    raise ValueError("this digest was composed with links; pass the subscriber's URLs")
                page = page.replace(placeholder, html.escape(url, quote=True))
                text = text.replace(placeholder, url)
        return replace(self, html=page, text=text)


# --- formatting helpers (also exposed to templates as filters) ---


def fmt_date(value: date) -> str:
    """'17 Nov 2025', whatever the process locale."""
    return f"{value.day} {_MONTHS[value.month - 1]} {value.year}"


def fmt_day(value: date) -> str:
    """'17 Nov' (subjects and headers, where the year is obvious)."""
    return f"{value.day} {_MONTHS[value.month - 1]}"


def telegram_length(text_html: str) -> int:
    """Length as Telegram counts it: tags removed, entities decoded, in UTF-16 code units."""
    plain = html.unescape(re.sub(r"<[^>]*>", "", text_html))
    return len(plain.encode("utf-16-le")) // 2


# Text templates print as is (subjects, plain-text parts, labels, CLI); everything else is HTML and
# escaped, so a template or shared file that forgets its suffix fails safe (visible `&amp;`), never
# live markup. None (a template built from a string or a macro called from Python) stays text.
_TEXT_SUFFIXES = (".txt.j2", ".subject.j2")


def _html_autoescape(name: str | None) -> bool:
    return bool(name) and not name.endswith(_TEXT_SUFFIXES)


class _Loader(jinja2.FileSystemLoader):
    """templates/ on disk, where a shared file `_NAME.j2` is also reachable as `_NAME.txt.j2`.

    Jinja escapes a macro's output by the rule of the file that defines it, and the caller then
    treats it as safe: HTML callers import `_macros.j2` (escaped), text callers `_macros.txt.j2`,
    the same source compiled without escaping. One wording, two escape modes.
    """

    def get_source(self, environment: jinja2.Environment, template: str):
        try:
            return super().get_source(environment, template)
        except jinja2.TemplateNotFound:
            leaf = template.rpartition("/")[2]
            if not (leaf.startswith("_") and leaf.endswith(".txt.j2")):
                raise
            return super().get_source(environment, template.removesuffix(".txt.j2") + ".j2")


# One inliner for every email: without keep_at_rules css-inline drops the @media rules, i.e. the
# dark and mobile styles (it then writes them back into a single <style>).
_INLINER = css_inline.CSSInliner(load_remote_stylesheets=False, keep_at_rules=True)


def inline_css(page: str) -> str:
    """`page` with its <style> rules inlined and its @media rules kept in a <style>."""
    return _INLINER.inline(page)




@lru_cache(maxsize=8)
def make_environment(path: str | Path = TEMPLATES_DIR) -> jinja2.Environment:
    """The one Jinja2 environment over `path` (templates/ by default)."""
    env = jinja2.Environment(
        loader=_Loader(str(path)),
        undefined=jinja2.StrictUndefined,
        autoescape=_html_autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters["date"] = fmt_date
    env.filters["day"] = fmt_day
    env.filters["href"] = safe_href  # for views without ArticleView.link: '' or None = no link
    return env


def _template_line(exc: BaseException, name: str, env: jinja2.Environment) -> tuple[str, int | None]:
    """The template and line an exception came from (Jinja rewrites tracebacks to template lines)."""
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return exc.name or exc.filename or name, exc.lineno
    roots = [Path(p).resolve() for p in getattr(env.loader, "searchpath", [])]
    found: tuple[str, int | None] = (name, None)
    for frame in traceback.extract_tb(exc.__traceback__):
        path = Path(frame.filename or "").resolve()
        for root in roots:
            if path.is_relative_to(root):
                # The innermost template frame wins: a macro's own line, not its caller's.
                found = (path.relative_to(root).as_posix(), frame.lineno)
    return found


def render(env: jinja2.Environment, name: str, **context: Any) -> str:
    """Render template `name`; any failure becomes a TemplateError naming template and line."""
    try:
        return env.get_template(name).render(**context)
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(name, None, f"not found ({exc.message})") from exc
    except Exception as exc:  # noqa: BLE001 - every template failure is reported the same way
        template, line = _template_line(exc, name, env)
        message = exc.message if isinstance(exc, jinja2.TemplateError) and exc.message else str(exc)
        raise TemplateError(template, line, f"{type(exc).__name__}: {message}") from exc


# --- pure digest structure ---


def newest_first(articles: Iterable[ArticleView]) -> list[ArticleView]:
    return sorted(articles, key=lambda a: (a.published, a.id), reverse=True)


def grouping_kind(followed: Iterable[tuple[str, str]]) -> str:
    """Digests group by followed country, else section, else festival."""
    kinds = {k for k, _ in followed}
    return next((k for k in ("country", "section", "festival") if k in kinds), "none")


def _values(article: ArticleView, kind: str) -> Sequence[str]:
    if kind == "festival":  # followed by name, shown with the edition: "Cannes 2024" is Cannes
        return [label.rpartition(" ")[0] if label[-4:].isdigit() else label for label in article.festivals]
    return article.countries if kind == "country" else article.sections


def group_articles(
    articles: Sequence[ArticleView], followed: Iterable[tuple[str, str]]
) -> tuple[str, list[Group]]:
    """('country'|'section'|'festival'|'none', groups): by followed country, else section, else festival.

    Each article appears once, under the first followed value it carries (alphabetical order);
    groups are alphabetical, articles inside newest first.
    """
    followed = list(followed)
    by = grouping_kind(followed)
    if by == "none":
        return by, [Group(None, tuple(newest_first(articles)))] if articles else []
    names = sorted({v for k, v in followed if k == by}, key=str.casefold)
    rank = {name.casefold(): i for i, name in enumerate(names)}
    buckets: dict[str | None, list[ArticleView]] = {}
    for article in newest_first(articles):
        values = _values(article, by)
        hits = sorted((rank[v.casefold()], v) for v in values if v.casefold() in rank)
        key = names[hits[0][0]] if hits else None
        buckets.setdefault(key, []).append(article)
    ordered = sorted(buckets, key=lambda n: (n is None, rank.get((n or "").casefold(), 0)))
    return by, [Group(name, tuple(buckets[name])) for name in ordered]


def _flatten(groups: Sequence[Group]) -> list[tuple[str | None, ArticleView]]:
    return [(g.name, a) for g in groups for a in g.articles]


def _regroup(items: Sequence[tuple[str | None, ArticleView]]) -> list[Group]:
    groups: list[Group] = []
    for name, article in items:
        if groups and groups[-1].name == name:
            groups[-1] = Group(name, groups[-1].articles + (article,))
        else:
            groups.append(Group(name, (article,)))
    return groups


def _shorten(text: str, drop: int) -> str:
    """`text` without its last `drop` characters (at a word boundary when possible), plus '…'."""
    keep = max(len(text) - drop - 1, 0)
    cut = text[:keep]
    if " " in cut[-30:]:
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip(" ,.;:") + "…" if keep else ""


def _tg_unmarked(digest: TelegramDigest) -> TelegramDigest:
    return replace(digest, parts=tuple(p.replace(PHRASES_MARK, "") for p in digest.parts))


def _email_unmarked(digest: EmailDigest) -> EmailDigest:
    return replace(digest, html=digest.html.replace(PHRASES_MARK, ""),
                   text=digest.text.replace(PHRASES_MARK, ""))


@dataclass
class Composer:
    """Renders digests for one run, caching by (channel, articles, context)."""

    env: jinja2.Environment = field(default_factory=make_environment)
    telegram_limit: int = TELEGRAM_LIMIT
    email_max_articles: int = 50
    email_max_bytes: int = EMAIL_MAX_BYTES
    renders: int = 0
    cache_hits: int = 0
    _cache: dict[tuple, Any] = field(default_factory=dict, repr=False)
    _css: str | None = field(default=None, repr=False)

    @classmethod
    def for_settings(cls, settings: Any, **kw: Any) -> Composer:
        return cls(email_max_articles=settings.email_max_articles, **kw)

    def _cached(self, key: tuple, build) -> Any:
        hit = self._cache.get(key)
        if hit is not None:
            self.cache_hits += 1
            return hit
        self.renders += 1
        value = self._cache[key] = build()
        return value

    # --- Telegram ---

    def telegram(
        self, articles: Sequence[ArticleView], ctx: DigestContext, extra: Sequence[ArticleView] = ()
    ) -> TelegramDigest:
        """Telegram HTML parts (split at article boundaries), or the "nothing new" message.

        `extra`: articles only a followed phrase brought (`ctx.because` names it), shown after the
        others in a block of their own.
        """
        if not extra or not articles:
            shown = list(articles) or list(extra)
            ids = tuple(a.id for a in shown)
            return self._final(("telegram", ids, ctx), ("telegram-marked", ids, ctx),
                               lambda: self._telegram(shown, ctx), _tg_unmarked)
        key = ("telegram", tuple(a.id for a in articles), tuple(a.id for a in extra), ctx)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = self._telegram_with(articles, ctx, extra)
        return hit

    def _telegram_with(
        self, articles: Sequence[ArticleView], ctx: DigestContext, extra: Sequence[ArticleView]
    ) -> TelegramDigest:
        shared = replace(ctx, because=())
        base = self._cached(("telegram-marked", tuple(a.id for a in articles), shared),
                            lambda: self._telegram(articles, shared))
        blocks = self._tg_blocks(extra, ctx)
        *head, last = base.parts
        # Lengths add up: the mark sits between tags, so no tag or entity spans the join.
        last_length = self._cached(("telegram-length", last), lambda: telegram_length(last))
        fits = last_length - len(PHRASES_MARK) + self._length(blocks[0]) + 2 <= self.telegram_limit
        if len(blocks) == 1 and fits:
            parts = (*head, last.replace(PHRASES_MARK, blocks[0] + "\n\n"))
        else:
            parts = (*head, last.replace(PHRASES_MARK, ""), *blocks)
        return TelegramDigest(parts, base.template, base.article_count + len(extra))

    def _piece(self, template: str, part: str, count: int = 0, article: ArticleView | None = None,
               why: str = "", inline: bool = False) -> str:
        """One piece of a phrase block (its heading, or one article with its "why" line), rendered
        once per run whoever it reaches."""
        key = (template, part, count, article.id if article else None, why)

        def build() -> str:
            ctx = DigestContext(because=((article.id, why),) if article else ())
            text = render(self.env, template, part=part, count=count, a=article, ctx=ctx).strip()
            return css_inline.inline_fragment(text, self._email_css()) if inline else text

        return self._cached(key, build)

    def _tg_blocks(self, extra: Sequence[ArticleView], ctx: DigestContext) -> list[str]:
        """The phrase-only articles as one block, or as several messages when one would not fit."""
        room = self.telegram_limit - 100  # the heading and the blank lines between articles
        packs: list[list[str]] = [[]]
        used = 0
        for article in extra:
            text = self._piece(TG_PHRASES, "item", article=article, why=ctx.why(article.id) or "")
            cost = self._length(text) + 2
            if cost > room:  # a summary too long for a message of its own: title and meta only
                text = "\n".join(text.split("\n")[:2])
                cost = telegram_length(text) + 2
            if packs[-1] and used + cost > room:
                packs.append([])
                used = 0
            packs[-1].append(text)
            used += cost
        return ["\n\n".join([self._piece(TG_PHRASES, "head", len(p)), *p]) for p in packs]

    def _length(self, text: str) -> int:
        return self._cached(("telegram-length", text), lambda: telegram_length(text))

    def _final(self, key: tuple, marked_key: tuple, build, finish) -> Any:
        """The cached digest under `key`: the marked render (itself cached) with `finish` applied."""
        hit = self._cache.get(key)
        if hit is not None:
            self.cache_hits += 1
            return hit
        value = self._cache[key] = finish(self._cached(marked_key, build))
        return value

    def _tg_part(self, groups: Sequence[Group], ctx: DigestContext, part: int, parts: int, total: int) -> str:
        by = grouping_kind(ctx.followed)
        return render(
            self.env,
            TG_DIGEST,
            groups=groups,
            grouped_by=by,
            ctx=ctx,
            part=part,
            parts=parts,
            article_count=total,
            phrases_mark=PHRASES_MARK,
        ).strip()

    def _telegram(self, articles: Sequence[ArticleView], ctx: DigestContext) -> TelegramDigest:
        if not articles:
            text = render(self.env, TG_NOTHING_NEW, ctx=ctx).strip()
            return TelegramDigest((text,), TG_NOTHING_NEW, 0)
        _, groups = group_articles(articles, ctx.followed)
        total = len(articles)
        whole = self._tg_part(groups, ctx, 1, 1, total)
        if telegram_length(whole) <= self.telegram_limit:
            return TelegramDigest((whole,), TG_DIGEST, total)
        return TelegramDigest(tuple(self._split(groups, ctx, total)), TG_DIGEST, total)

    def _split(self, groups: Sequence[Group], ctx: DigestContext, total: int) -> list[str]:
        """Pack articles into parts that fit, measuring each article's cost once."""
        limit = self.telegram_limit
        # The frame (header with the widest "99/99", footer) that every part may carry.
        frame = telegram_length(self._tg_part([], ctx, 99, 99, total))
        items, costs = [], []
        for name, article in _flatten(groups):
            item, length = self._fit(name, article, ctx, total)
            items.append(item)
            costs.append(length - frame)
        packs: list[list[tuple[str | None, ArticleView]]] = [[]]
        used = frame
        for item, cost in zip(items, costs, strict=True):
            if packs[-1] and used + cost > limit:
                packs.append([])
                used = frame
            packs[-1].append(item)
            used += cost
        # Costs are estimates (a shared heading counts once per article): verify and carry over.
        while True:
            parts = len(packs)
            rendered = [self._tg_part(_regroup(p), ctx, i + 1, parts, total) for i, p in enumerate(packs)]
            over = [
                i for i, text in enumerate(rendered) if telegram_length(text) > limit and len(packs[i]) > 1
            ]
            if not over:
                return rendered
            i = over[0]
            if i + 1 == len(packs):
                packs.append([])
            packs[i + 1].insert(0, packs[i].pop())

    def _fit(self, name: str | None, article: ArticleView, ctx: DigestContext, total: int):
        """((group, article), length alone in a part): a too long article gets its summary (then
        title) shortened until it fits."""
        for _ in range(20):
            length = telegram_length(self._tg_part([Group(name, (article,))], ctx, 99, 99, total))
            if length <= self.telegram_limit:
                return (name, article), length
            overflow = length - self.telegram_limit + 1
            if article.summary:
                article = replace(article, summary=_shorten(article.summary, overflow))
            else:
                article = replace(article, title=_shorten(article.title, overflow))
        raise TemplateError(TG_DIGEST, None, "a single article cannot fit in one Telegram message")

    # --- email ---

    def email(
        self, articles: Sequence[ArticleView], ctx: DigestContext, extra: Sequence[ArticleView] = ()
    ) -> EmailDigest:
        """Subject, inlined HTML and plain text, with placeholders for the personal links.

        `extra` as for `telegram`: a block after the others, rendered (and cached) on its own.
        """
        if not extra or not articles:
            shown = list(articles) or list(extra)
            ids = tuple(a.id for a in shown)
            return self._final(("email", ids, ctx), ("email-marked", ids, ctx),
                               lambda: self._email(shown, ctx), _email_unmarked)
        shared = replace(ctx, because=())
        base = self._cached(("email-marked", tuple(a.id for a in articles), shared),
                            lambda: self._email(articles, shared))

        heads = (self._piece(EMAIL_PHRASES_HTML, "head", len(extra), inline=True),
                 self._piece(EMAIL_PHRASES_TEXT, "head", len(extra)))
        pieces = [(self._piece(EMAIL_PHRASES_HTML, "item", article=a, why=ctx.why(a.id) or "", inline=True),
                   self._piece(EMAIL_PHRASES_TEXT, "item", article=a, why=ctx.why(a.id) or ""))
                  for a in extra]
        page = "\n".join([heads[0], *(p for p, _ in pieces)]) + "\n"
        text = "\n\n\n" + "\n\n".join([heads[1], *(t for _, t in pieces)]) + "\n"
        return replace(base, html=base.html.replace(PHRASES_MARK, page),
                       text=base.text.replace(PHRASES_MARK, text),
                       article_count=base.article_count + len(extra))

    def _email_css(self) -> str:
        """The digest layout's stylesheet, for inlining blocks rendered apart from their page."""
        if self._css is None:
            page = render(self.env, "email/_layout.html.j2")
            start, end = page.find("<style>"), page.find("</style>")
            self._css = page[start + len("<style>") : end] if start >= 0 else ""
        return self._css

    def _email(self, articles: Sequence[ArticleView], ctx: DigestContext) -> EmailDigest:
        by, groups = group_articles(articles, ctx.followed)
        groups = newest_groups_first(groups)
        links = (
            {
                "unsubscribe": UNSUBSCRIBE_PLACEHOLDER,
                "preferences": PREFERENCES_PLACEHOLDER,
                "view": VIEW_PLACEHOLDER,
            }
            if ctx.has_links
            else None
        )
        context = dict(
            phrases_mark=PHRASES_MARK,
            grouped_by=by,
            ctx=ctx,
            article_count=len(articles),
            all_production=bool(articles) and all(is_production(a) for a in articles),
            group_names=[g.name for g in groups if g.name],
            links=links,
        )
        subject = " ".join(render(self.env, EMAIL_SUBJECT, **context).split())
        built: dict[tuple[int, ...], tuple[list[EmailGroup], str]] = {}

        def build(caps: Sequence[int]) -> tuple[list[EmailGroup], str]:
            key = tuple(caps)
            if key not in built:
                shown = [capped(g, c, by, ctx) for g, c in zip(groups, caps, strict=True)]
                page = inline_css(render(self.env, EMAIL_HTML, subject=subject, groups=shown, **context))
                built[key] = shown, page
            return built[key]

        caps = choose_caps(
            len(groups),
            max(1, self.email_max_articles // max(len(groups), 1)),
            lambda caps: len(build(caps)[1].encode()) <= self.email_max_bytes,
        )
        shown, page = build(caps)
        text = render(self.env, EMAIL_TEXT, subject=subject, groups=shown, **context).strip() + "\n"
        return EmailDigest(subject, page, text, EMAIL_HTML, len(articles))
