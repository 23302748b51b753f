"""A hostile source: markup in every field of a listing page and a feed must reach every reader as
text (Telegram digest through the fake Bot API's HTML rules, /latest, email HTML and text, web).

The payloads are lines of the "Script Injection" section of the Big List of Naughty Strings
(github.com/minimaxir/big-list-of-naughty-strings, blns.txt).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx
from sqlmodel import select

from digests import catalog, compose, emails, ingest, queue, telegram_html, tokens, web
from digests.db import session_scope
from digests.deliver import deliver_once_async
from digests.email_groups import EmailGroup
from digests.models import ArticleTag, Outbox, Subscriber, Subscription
from tests.bot_harness import Talk, api, app, bot_settings  # noqa: F401 - fixtures used by name
from tests.fakes.smtp import SMTPSink
from tests.test_web import running

NOW = datetime(2025, 3, 13, 9, 0, tzinfo=UTC)
CHAT = 5150

# A listing page as its text: markup in the title, the summary and a section of the meta line.
LISTING = """Production / Belgium

1 articles available in total starting from 21/10/2002. Last article published on 29/07/2019.

<script>alert(123)</script> The Mute starts filming

<script>alert(123)</script> The Mute starts filming

A Polish-Belgian co-production <img src=x onerror=alert(123) /> & more

29/09/2017 | Production | <b>Evil</b> & <img src=x onerror=alert(123) /> | Poland/Belgium
"""

# A feed: markup in titles, summaries, categories (escaped and as CDATA) and links.
FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>t</title><link>https://example.org/</link><description>d</description>
<item><title>&lt;svg&gt;&lt;script&gt;123&lt;1&gt;alert(123)&lt;/script&gt; Feed shoot</title>
<link>javascript:alert(123)</link>
<guid isPermaLink="true">https://example.org/feed-shoot</guid>
<description>&lt;p&gt;&amp;lt;img src=x onerror=alert(123) /&amp;gt; starts&lt;/p&gt;</description>
<category>&lt;img src=x onerror=alert(123) /&gt;</category>
<category><![CDATA[<b>Production</b>]]></category>
<category>Belgium</category>
<pubDate>Wed, 12 Mar 2025 09:30:00 +0100</pubDate></item>
<item><title>Quoted &quot;&gt;&lt;script&gt;alert(123)&lt;/script&gt;</title>
<link>https://example.org/a?q=" onfocus=JaVaSCript:alert(123) autofocus</link>
<description>' onfocus=JaVaSCript:alert(123) autofocus</description>
<category>"&gt;&lt;script&gt;alert(123)&lt;/script&gt;</category>
<category>Belgium</category>
<pubDate>Wed, 12 Mar 2025 08:30:00 +0100</pubDate></item>
</channel></rss>"""

SAFE_TAGS = {"b", "i", "a", "p", "h1", "h2", "ul", "li", "div", "span", "br", "code", "blockquote"}


def live_markup(page: str) -> list[str]:
    """Every tag in `page` that a source could have slipped in: an unexpected element, an event
    handler, or an href that is not http(s)."""
    bad = []
    # Outlook's conditional comments (the layout's own VML and settings) are not source content.
    page = re.sub(r"<!--.*?-->", "", page, flags=re.S)
    for tag in re.findall(r"<[^<>]*>", page):
        name = re.match(r"</?\s*([a-zA-Z0-9]*)", tag).group(1).lower()
        if name not in SAFE_TAGS and name not in LAYOUT_TAGS:
            bad.append(tag)
        elif re.search(r"\son\w+\s*=", tag, re.IGNORECASE):
            bad.append(tag)
        elif "href" in tag and not re.search(r'href="https?://[^"\s]+"', tag):
            bad.append(tag)
    return bad


# The email layout's and web pages' own elements.
LAYOUT_TAGS = {"", "html", "head", "meta", "title", "style", "body", "table", "tr", "td", "main", "form",
               "button", "input", "label", "fieldset", "legend", "details", "summary", "footer", "header",
               "section", "nav", "strong", "em", "small", "hr", "h3", "select", "option", "link", "tbody",
               "datalist", "textarea"}


def _ingest(engine) -> None:
    for data, name in ((LISTING, "hostile-listing"), (FEED, "hostile-feed")):
        page = ingest.parse_document(data.encode(), now=NOW)
        ingest.ingest_page(engine, page, name=name, url=f"https://example.org/{name}", now=NOW)


def _reader(engine) -> int:
    with session_scope(engine) as s:
        sub = Subscriber(
            telegram_chat_id=CHAT,
            email="ann@example.org",
            email_status="confirmed",
            email_frequency="daily",
            created_at=datetime(2025, 3, 1, tzinfo=UTC),
        )
        s.add(sub)
        s.flush()
        s.add(Subscription(subscriber_id=sub.id, kind="country", value="Belgium"))
        return sub.id


def test_tags_are_cleaned_at_ingest(engine):
    _ingest(engine)
    with session_scope(engine) as s:
        sections = {t.value for t in s.exec(select(ArticleTag).where(ArticleTag.kind == "section"))}
        free = {t.value for t in s.exec(select(ArticleTag).where(ArticleTag.kind == "tag"))}
    # Markup gone, text kept: "<b>Evil</b> & <img …/>" is the section "Evil &"; a feed category the
    # catalog does not know is a free tag, cleaned the same way.
    assert sections == {"Production", "Evil &"}
    assert free == {'" alert(123)'}


def test_clean_tag_drops_markup_controls_and_caps_length():
    assert catalog.clean_tag("<i>Co</i>-production\x00\u202e") == "Co -production"
    assert catalog.clean_tag("<img src=x onerror=alert(1)>") == ""
    assert catalog.clean_tag("word " * 30) == ("word " * 12).strip()  # 60 characters, whole words
    assert len(catalog.clean_tag("x" * 500)) == catalog.TAG_MAX_LENGTH


def test_only_http_links_become_hrefs():
    assert compose.safe_href("javascript:alert(123)") is None
    assert compose.safe_href("JaVaSCript:alert(123)") is None
    assert compose.safe_href(" data:text/html,<script>alert(1)</script>") is None
    assert compose.safe_href("https:/example.org") is None  # no host
    assert compose.safe_href("//example.org/x") is None
    assert compose.safe_href("HTTPS://example.org/a b") == "HTTPS://example.org/a%20b"


async def test_hostile_source_reaches_telegram_and_email_as_text(engine, settings, api):  # noqa: F811
    _ingest(engine)
    ann = _reader(engine)
    linked = settings.model_copy(
        update={
            "public_base_url": "https://news.example.org",
            "telegram_bot_token": api.token,
            "telegram_api_base_url": api.base_url,
            "telegram_api_file_url": api.base_file_url,
        }
    )
    report = queue.queue_due(engine, linked, now=NOW, force=True)
    assert report.messages == 2
    async with SMTPSink() as sink:
        sent = await deliver_once_async(engine, linked.model_copy(update=sink.settings()), worker_id="t")
        mails = sink.to("ann@example.org")
    with session_scope(engine) as s:
        states = {r.channel: (r.state, r.last_error) for r in s.exec(select(Outbox))}
    assert states == {"telegram": ("sent", None), "email": ("sent", None)}, states
    assert sent.sent == 2

    # Telegram: accepted by the fake Bot API (Telegram's HTML subset), the payloads shown as text.
    (message,) = api.messages_for(CHAT)
    assert "<script>alert(123)</script> The Mute starts filming" in message.plain
    assert "29 Sep 2017 · Evil &, Production · Belgium, Poland" in message.plain
    assert "&lt;img src=x onerror=alert(123) /&gt; starts" in message.text
    assert not live_markup(message.text), live_markup(message.text)
    # The javascript: link is no link: the item links to its permalink guid instead.
    assert "Feed shoot" in message.plain and 'href="https://example.org/feed-shoot"' in message.text

    # Email: the HTML part escapes everything, the text part shows it as it was written.
    (mail,) = mails
    page = mail.message.get_body(("html",)).get_content()
    text = mail.message.get_body(("plain",)).get_content()
    assert not live_markup(page), live_markup(page)
    assert "&lt;script&gt;alert(123)&lt;/script&gt; The Mute starts filming" in page
    assert "Evil &amp;" in page and "Evil &amp;amp;" not in page
    assert 'Quoted "&gt;</a>' in page
    assert "<script>alert(123)</script> The Mute starts filming" in text
    assert "29 Sep 2017 · Evil &, Production · Belgium, Poland" in text
    assert not re.search(r"^\s*javascript:", text, re.IGNORECASE | re.MULTILINE)  # never as a link line

    # The web pages of that reader: nothing from the source, nothing live.
    async with (
        running(web.create_app(linked, engine)) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        for purpose in ("preferences", "unsubscribe"):
            token = tokens.make_token(linked, tokens.Recipient(ann, "ann@example.org"), purpose)
            r = await http.get(f"/{purpose}", params={"token": token})
            assert r.status_code == 200 and not live_markup(r.text), live_markup(r.text)


async def test_latest_shows_a_hostile_source_as_text(app, api, engine):  # noqa: F811
    _ingest(engine)
    reply = await Talk(api, CHAT).say("/latest Belgium")
    assert "went wrong" not in reply.plain.lower()
    assert "<script>alert(123)</script> The Mute starts filming" in reply.plain
    assert "29 Sep 2017 · Evil &, Production · Belgium, Poland" in reply.plain
    assert not live_markup(reply.text), live_markup(reply.text)
    assert "Feed shoot" in reply.plain and 'href="https://example.org/feed-shoot"' in reply.text


def test_html_templates_escape_and_text_templates_do_not():
    env = compose.make_environment()
    article = compose.ArticleView(
        1, "https://e.org/1", "A & B", NOW.date(), "", ("Belgium",), ("<b>R&D</b>",)
    )
    rd = ("section", "<b>R&D</b>")
    ctx = compose.DigestContext(followed=(rd,), frequency="daily", local_date=NOW.date())
    tg = compose.render(env, compose.TG_DIGEST, groups=[compose.Group("<b>R&D</b>", (article,))],
                        grouped_by="section", ctx=ctx, part=1, parts=1, article_count=1)
    assert "<b>&lt;B&gt;R&amp;D&lt;/B&gt;</b>" in tg  # the heading, upper-cased before escaping
    assert "· &lt;b&gt;R&amp;D&lt;/b&gt; ·" in tg
    subject = compose.render(env, compose.EMAIL_SUBJECT, article_count=1, group_names=["<b>R&D</b>"], ctx=ctx,
                             all_production=True)
    assert "1 new production article: <b>R&D</b>" in subject
    assert emails.render("email/digest.txt.j2", groups=[EmailGroup("<b>R&D</b>", (article,))], more=[],
                         grouped_by="section", ctx=ctx, article_count=1, group_names=[], links=None,
                         subject="s", all_production=True).count("<b>R&D</b>") == 2


def test_an_announcement_cannot_link_to_script():
    # The admin's Telegram HTML becomes every reader's email HTML as it is.
    for href in ("javascript:alert(123)", "JaVaSCript:alert(123)", "data:text/html,x", " javascript:x",
                 "&#106;avascript:alert(1)"):
        problems = telegram_html.check(f'<a href="{href}">x</a>')
        assert problems == ["<a> at character 1 must link to an http(s), tg: or mailto: address"], href
    for href in ("https://example.org", "tg://user?id=1", "mailto:news@example.org"):
        assert telegram_html.check(f'<a href="{href}">x</a>') == []


def test_the_cli_prints_rich_markup_from_a_source_as_text(db_url, tmp_path, monkeypatch):
    # The CLI's tables are Rich: "[/b]" from a source would raise MarkupError mid-listing.
    from typer.testing import CliRunner

    from digests.cli import app as cli_app
    from digests.config import get_settings

    page = tmp_path / "rich.txt"
    page.write_text(LISTING.replace("<b>Evil</b> & <img src=x onerror=alert(123) />", "[/b]")
                    .replace("<script>alert(123)</script>", "[/red]"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    try:
        run = CliRunner().invoke
        ingested = run(cli_app, ["ingest", "--file", str(page)])
        assert ingested.exit_code == 0, ingested.output
        listed = run(cli_app, ["articles"])
        assert listed.exit_code == 0, listed.output
        assert "[/red] The Mute" in listed.stdout and "[/b]" in listed.stdout
        removed = run(cli_app, ["subscribers", "remove", "--", "[/red]x@example.org"])
        assert removed.exit_code == 1 and "Traceback" not in removed.output
        assert "[/red]x@example.org" in removed.stderr
    finally:
        get_settings.cache_clear()
