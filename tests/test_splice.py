"""A fan-out's parts built once and spliced: the same bytes as building each reader's part in full.

Digests are composed from the real listing pages in tests/corpus/listings (English, French,
Spanish: ASCII and UTF-8 bodies). For each, and for links of several kinds, the spliced message
must equal the one built from the personalised text, byte for byte but for the random
Message-ID; where splicing cannot be exact (written out by hand below), the builder falls back.
"""

from __future__ import annotations

import email
import email.policy
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from digests import renderings
from digests.channels import splice
from digests.channels.email import RenderedMail
from digests.compose import ArticleView, Composer, DigestContext
from digests.config import Settings
from digests.ingest import parse_document

LISTINGS = sorted((Path(__file__).parent / "corpus" / "listings").glob("*.txt"))
BASE = "https://clapper.example"
# One send time for both builds: their Date headers must not straddle a second.
NOW = datetime(2026, 12, 2, 9, 0, 0, tzinfo=UTC)


@dataclass
class Rendering:
    id: int
    subject: str
    html: str
    text: str
    template: str = "digest"
    article_count: int = 0


@dataclass
class Row:
    """A claimed fan-out row: no body of its own, a rendering and links."""

    id: int
    subscriber_id: int
    recipient: str
    subject: str
    links: str
    rendering: Rendering | None

    @property
    def body(self) -> str:
        return renderings.personal(self.rendering, self.links)[0]

    @property
    def body_text(self) -> str:
        return renderings.personal(self.rendering, self.links)[1]


@dataclass
class Plain:
    """The same reader's row with its body written out (how rows without a rendering come)."""

    id: int
    subscriber_id: int
    recipient: str
    subject: str
    links: str
    body: str
    body_text: str


def _settings() -> Settings:
    return Settings(_env_file=None, secret_key="s" * 40, public_base_url=BASE, mail_from="News <n@c.example>")


def _digest(path: Path):
    page = parse_document(path.read_text(encoding="utf-8"), fmt="listing", base_url="https://news.example")
    views = [
        ArticleView(
            id=i,
            url=a.url,
            title=a.title,
            published=a.published,
            summary=a.summary,
            countries=a.countries,
            sections=a.sections,
            kind=a.kind,
        )
        for i, a in enumerate(page.articles[:12], 1)
    ]
    ctx = DigestContext(
        followed=(("country", "Belgium"),), frequency="weekly", local_date=date(2026, 12, 1), has_links=True
    )
    return Composer(email_max_articles=20).email(views, ctx)


def _links(token: str, view: str | None = "default") -> str:
    return renderings.links(
        f"{BASE}/unsubscribe?token={token}",
        f"{BASE}/preferences?token={token}&from=mail",
        f"{BASE}/view/{token}" if view == "default" else view,
    )


def _pair(rendered: RenderedMail, digest, links: str, *, eightbit: bool):
    rendering = Rendering(1, digest.subject, digest.html, digest.text)
    row = Row(7, 3, "reader@example.org", digest.subject, links, rendering)
    before = rendered.spliced
    fast, fast8 = rendered.build(row, eightbit=eightbit, now=NOW)
    spliced = rendered.spliced > before
    html, text = renderings.personal(rendering, links)
    slow, slow8 = rendered.build(
        Plain(7, 3, "reader@example.org", digest.subject, links, html, text), eightbit=eightbit, now=NOW
    )
    return (fast, fast8), (slow, slow8), spliced


def _content(raw: bytes):
    message = email.message_from_bytes(raw, policy=email.policy.default)
    parts = [(p.get_content_type(), p.get_content()) for p in message.walk() if not p.is_multipart()]
    # Headers by name: a fallback through the full builder picks its own boundary and may sign
    # its own unsubscribe token.
    return sorted(message.keys()), parts


def _without_message_id(raw: bytes) -> bytes:
    return b"\r\n".join(line for line in raw.split(b"\r\n") if not line.startswith(b"Message-ID:"))


@pytest.mark.parametrize("path", LISTINGS, ids=[p.stem for p in LISTINGS])
@pytest.mark.parametrize("eightbit", [True, False], ids=["8bitmime", "7bit-only"])
def test_spliced_messages_are_the_full_build_byte_for_byte(path, eightbit):
    digest = _digest(path)
    assert splice.UNSUBSCRIBE_PLACEHOLDER in digest.text  # composed for links, as a fan-out is
    rendered = RenderedMail(_settings())
    for token in ("abc.DEF_123-xyz", "t" * 120, "a&b<c>\"d'"):
        (fast, fast8), (slow, slow8), spliced = _pair(rendered, digest, _links(token), eightbit=eightbit)
        assert _without_message_id(fast) == _without_message_id(slow)
        assert fast8 == slow8
        # Spliced unless the body is UTF-8 and the server takes only 7bit (quoted-printable, per reader).
        assert spliced == (eightbit or (digest.html + digest.text).isascii())


def test_an_ascii_digest_is_spliced_as_7bit_for_a_server_without_8bitmime():
    # The templates write a few non-ASCII marks (so every real digest above is UTF-8): by hand.
    rendered = RenderedMail(_settings())
    digest = Rendering(
        1,
        "Weekly",
        '<p>News</p><a href="CLAPPER-PERSONAL-UNSUBSCRIBE-URL">Unsubscribe</a>'
        '<a href="CLAPPER-PERSONAL-PREFERENCES-URL">Preferences</a>'
        '<!--view--><a href="CLAPPER-PERSONAL-VIEW-URL">View</a><!--/view-->',
        "News\nUnsubscribe: CLAPPER-PERSONAL-UNSUBSCRIBE-URL\nPreferences: CLAPPER-PERSONAL-PREFERENCES-URL\n"
        "View: CLAPPER-PERSONAL-VIEW-URL\n",
    )
    (fast, fast8), (slow, _), spliced = _pair(rendered, digest, _links("abc"), eightbit=False)
    assert spliced and not fast8
    assert _without_message_id(fast) == _without_message_id(slow)
    assert fast.count(b"Content-Transfer-Encoding: 7bit") == 2
    # A link that is not ASCII (an IDN base URL) needs 8bit: without 8BITMIME, built in full.
    idn = renderings.links(
        "https://clapper.éxample/u?token=1", "https://clapper.éxample/p", "https://clapper.éxample/v"
    )
    (fast, _), (slow, _), spliced = _pair(rendered, digest, idn, eightbit=False)
    assert not spliced
    assert _without_message_id(fast) == _without_message_id(slow)
    assert b"Content-Transfer-Encoding: quoted-printable" in fast


def test_the_reader_sees_their_own_links_html_escaped_in_html_and_raw_in_text():
    rendered = RenderedMail(_settings())
    digest = _digest(LISTINGS[0])
    (fast, _), _, spliced = _pair(rendered, digest, _links("x&y"), eightbit=True)
    assert spliced
    message = email.message_from_bytes(fast, policy=email.policy.default)
    text = message.get_body(("plain",)).get_content()
    page = message.get_body(("html",)).get_content()
    assert f"{BASE}/preferences?token=x&y&from=mail" in text
    assert f"{BASE}/preferences?token=x&amp;y&amp;from=mail" in page
    assert "CLAPPER-PERSONAL" not in text + page


@pytest.mark.parametrize(
    "links, why",
    [
        (_links("abc", view=None), "no view page: the view line is dropped from the text"),
        (_links("abc\nBcc: someone@example.org"), "a newline in a link"),
        (_links("a" * 1000), "a line the link pushes past 998 octets"),
        (_links("CLAPPER-PERSONAL-VIEW-URL"), "a link holding a placeholder"),
        (json.dumps({"unsubscribe": f"{BASE}/u?token=1"}), "links missing"),
    ],
    ids=["no-view", "newline", "long-line", "placeholder", "missing"],
)
def test_what_splicing_cannot_make_exact_is_built_in_full(links, why):
    rendered = RenderedMail(_settings())
    digest = _digest(LISTINGS[0])
    try:
        (fast, fast8), (slow, slow8), spliced = _pair(rendered, digest, links, eightbit=True)
    except ValueError:
        # personalise itself refuses (links missing for a digest that has them): so must we.
        with pytest.raises(ValueError):
            rendered.build(
                Row(7, 3, "r@example.org", "S", links, Rendering(1, "S", digest.html, digest.text))
            )
        return
    assert not spliced, why
    # The same message (the full builder may pick its own boundary when a header is odd).
    assert _content(fast) == _content(slow)


def test_a_long_line_of_text_stays_quoted_printable_for_everyone():
    rendered = RenderedMail(_settings())
    html = "<p>" + "x" * 1200 + '</p><a href="CLAPPER-PERSONAL-UNSUBSCRIBE-URL">u</a>'
    text = (
        "x" * 1200
        + "\nCLAPPER-PERSONAL-UNSUBSCRIBE-URL CLAPPER-PERSONAL-PREFERENCES-URL CLAPPER-PERSONAL-VIEW-URL"
    )
    assert splice.prepare(html, "html", rendered.boundary.encode()) is None
    digest = Rendering(1, "S", html, text)
    (fast, _), (slow, _), spliced = _pair(rendered, digest, _links("abc"), eightbit=True)
    assert not spliced
    assert _without_message_id(fast) == _without_message_id(slow)
    assert b"Content-Transfer-Encoding: quoted-printable" in fast


def test_a_template_holding_the_boundary_is_not_spliced():
    rendered = RenderedMail(_settings())
    text = f"--{rendered.boundary}\nCLAPPER-PERSONAL-UNSUBSCRIBE-URL"
    assert splice.prepare(text, "plain", rendered.boundary.encode()) is None


def test_the_line_check_counts_octets_of_each_link_on_the_line():
    boundary = b"==============0123456789abcdef=="
    line = "é" * 400 + " CLAPPER-PERSONAL-UNSUBSCRIBE-URL CLAPPER-PERSONAL-VIEW-URL"
    template = splice.prepare(line, "plain", boundary)
    assert template is not None
    # 400 two-octet letters and two spaces: 802 octets before the links.
    assert template.lines == ((802, ("unsubscribe", "view")),)
    fits = {"unsubscribe": b"u" * 100, "view": b"v" * 96, "preferences": b""}
    assert splice.render(template, fits, eightbit=True, boundary=boundary) is not None
    over = dict(fits, view=b"v" * 97)
    assert splice.render(template, over, eightbit=True, boundary=boundary) is None
