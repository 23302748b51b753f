"""Render the web pages and emails readers see, with headless Chromium, to PNGs for a human to look at.

    .venv/bin/python scripts/screenshots.py [--out out/screenshots] [--chromium /usr/bin/chromium]

Offline: a scratch SQLite database, the bundled sample listing, the real web app served by
uvicorn on 127.0.0.1, and Debian's `chromium` (apt-get install chromium). Pages are shot at phone
width (390 px) and some at desktop width, light and dark. tests/test_screenshots.py runs this
when Chromium is installed.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
import uvicorn
from sqlmodel import select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digests import broadcast, compose, db, demo, emails, queue, tokens, web  # noqa: E402
from digests.config import Settings  # noqa: E402
from digests.db import session_scope  # noqa: E402
from digests.models import Article, ArticleTag  # noqa: E402

# Headless Chromium will not make a window narrower than 500 px, so a phone-width page would be
# laid out at 500: every page is shown inside an iframe of the wanted width instead (media
# queries inside it see the iframe's width).
PHONE = (375, 1100)
TABLET = (800, 1100)
DESKTOP = (1280, 1100)
MIN_WINDOW = 500


@dataclass(frozen=True)
class Shot:
    name: str
    url: str
    size: tuple[int, int] = PHONE
    dark: bool = False


def find_chromium(explicit: str | None = None) -> str | None:
    for candidate in (explicit, "chromium", "chromium-browser", "google-chrome"):
        if candidate and (path := shutil.which(candidate)):
            return path
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _chromium_args(chromium: str, profile: Path, size: tuple[int, int], dark: bool) -> list[str]:
    args = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--window-size={max(size[0], MIN_WINDOW)},{size[1]}",
        # Lets the frame's scripts finish before Chromium dumps or shoots.
        "--virtual-time-budget=3000",
    ]
    if dark:
        # 0 is Blink's "dark": prefers-color-scheme matches dark, without auto-darkening the page.
        args.append("--blink-settings=preferredColorScheme=0")
    return args


# Measured inside each framed page: anything wider than the frame (the page scrolls sideways) and
# any box that hides part of its text (overflow hidden/clip or an ellipsis). Preheaders and
# aria-hidden boxes (the sign-up honeypot) are skipped: being invisible is their job.
MEASURE_JS = """
function clapperMeasure(frame) {
  const win = frame.contentWindow, doc = frame.contentDocument, width = win.innerWidth;
  const problems = [];
  const name = (el) => el.tagName.toLowerCase()
    + (el.className ? "." + String(el.className).split(" ")[0] : "")
    + " \u201c" + (el.textContent || "").trim().slice(0, 40) + "\u201d";
  const page = doc.documentElement.scrollWidth;
  if (page > width + 1) problems.push("page is wider than the screen: " + page + " > " + width);
  for (const el of doc.body.querySelectorAll("*")) {
    if (el.closest('.preheader, [aria-hidden="true"]') || el.tagName === "STYLE" || el.tagName === "SCRIPT")
      continue;
    const cs = win.getComputedStyle(el);
    if (cs.display === "none" || cs.visibility === "hidden") continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (r.right > width + 1) problems.push("sticks out (right " + Math.round(r.right) + "): " + name(el));
    const clipsX = cs.overflowX !== "visible" || cs.textOverflow === "ellipsis";
    const clipsY = cs.overflowY === "hidden" || cs.overflowY === "clip";
    if (clipsX && el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1)
      problems.push("clips text sideways: " + name(el));
    if (clipsY && el.clientHeight > 0 && el.scrollHeight > el.clientHeight + 1)
      problems.push("clips text below: " + name(el));
  }
  const out = document.getElementById("out-" + frame.id);
  out.textContent = JSON.stringify({width: width, scrollWidth: page, problems: problems});
}
"""


def framed(frames: list[tuple[Path, int, int]], *, measure: bool) -> str:
    """A page showing each (page, width, height) inline (srcdoc) in an iframe of exactly that size."""
    parts = [
        "<!DOCTYPE html><html><head><meta charset=utf-8>",
        "<style>html,body{margin:0;background:#777}iframe{border:0;display:block}</style>",
        f"<script>{MEASURE_JS}</script>" if measure else "",
        "</head><body>",
    ]
    for number, (page, width, height) in enumerate(frames):
        body = html.escape(page.read_text(encoding="utf-8"), quote=True)
        onload = ' onload="clapperMeasure(this)"' if measure else ""
        size = f'width="{width}" height="{height}"'
        parts.append(f'<iframe id="f{number}" {size} srcdoc="{body}"{onload}></iframe>')
        if measure:
            parts.append(f'<pre id="out-f{number}"></pre>')
    return "".join(parts) + "</body></html>"


def screenshot(chromium: str, shot: Shot, out: Path, profile: Path) -> Path:
    png = out / f"{shot.name}.png"
    frame = profile.with_suffix(".frame.html")
    frame.write_text(framed([(Path(shot.url), *shot.size)], measure=False), encoding="utf-8")
    args = [*_chromium_args(chromium, profile, shot.size, shot.dark), f"--screenshot={png}"]
    subprocess.run([*args, frame.as_uri()], check=True, capture_output=True, timeout=60)
    if not png.exists() or png.stat().st_size < 1000:
        raise RuntimeError(f"chromium wrote no usable screenshot for {shot.name}")
    return png


def measure(chromium: str, frames: list[tuple[Path, int]], dark: bool, profile: Path) -> list[dict]:
    """{'width', 'scrollWidth', 'problems'} of each (page, width), laid out by one Chromium run."""
    frame = profile.with_suffix(".measure.html")
    frame.write_text(framed([(p, w, 900) for p, w in frames], measure=True), encoding="utf-8")
    widest = max(w for _, w in frames)
    args = [*_chromium_args(chromium, profile, (widest, 900), dark), "--dump-dom"]
    done = subprocess.run([*args, frame.as_uri()], check=True, capture_output=True, timeout=120, text=True)
    results = []
    for number, (page, _) in enumerate(frames):
        found = re.search(rf'<pre id="out-f{number}">(.*?)</pre>', done.stdout, re.S)
        if not found or not found.group(1).strip():
            raise RuntimeError(f"chromium measured nothing for {page.name}: {done.stderr[-500:]}")
        results.append(json.loads(html.unescape(found.group(1))))
    return results


def _digest_html(engine, settings: Settings, subscriber_id: int, address: str) -> str:
    """A real digest email from C1's composer, over the articles ingested from the bundled sample."""
    with session_scope(engine) as session:
        articles = session.exec(select(Article).order_by(Article.published.desc())).all()
        tags = session.exec(select(ArticleTag)).all()
    by_article: dict[int, list[ArticleTag]] = {}
    for tag in tags:
        by_article.setdefault(tag.article_id, []).append(tag)
    views = [
        compose.ArticleView(
            a.id,
            a.url,
            a.title,
            a.published,
            a.summary,
            tuple(t.value for t in by_article.get(a.id, []) if t.kind == "country"),
            tuple(t.value for t in by_article.get(a.id, []) if t.kind == "section"),
            a.kind,
        )
        for a in articles
    ]
    ctx = compose.DigestContext(
        followed=(("country", "Belgium"), ("section", "Production")),
        frequency="weekly",
        local_date=date.today(),
        period_start=None,
        has_links=True,
        archive_url=f"{settings.public_base_url}/archive",
    )
    digest = compose.Composer().email(views, ctx)
    reader = tokens.Recipient(subscriber_id, address)
    return digest.personalise(
        tokens.link(settings, reader, "unsubscribe"),
        tokens.link(settings, reader, "preferences"),
        queue.view_link(settings, reader, "digest:screenshot"),
    ).html


def render_all(tmp: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """(pages, emails): every web page and every email a reader sees, saved as HTML files in `tmp`.

    The pages come from the real app over HTTP (the POST outcomes too); shown from files they
    look the same, since all their CSS is inline.
    """
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    settings = Settings(
        _env_file=None,
        database_url=f"sqlite:///{tmp / 'shots.db'}",
        secret_key="screenshots-secret-key-0123456789abcdef",
        public_base_url=base,
    )
    engine = db.init(settings.database_url)
    demo.ingest_sample(engine, settings)
    with session_scope(engine) as session:
        reader = emails.add_reader(
            session,
            settings,
            emails.new_reader("reader@example.org", ["Belgium", "France"], ["Production"], "weekly"),
            confirmed=True,
        )
        pending = emails.add_reader(
            session,
            settings,
            emails.new_reader("new.reader@example.org", ["Belgium"], [], "daily"),
            confirmed=False,
        )
        # A second reader for the "saved" page, so the first one's preferences page shows its choices.
        other = emails.add_reader(
            session,
            settings,
            emails.new_reader("other@example.org", ["Belgium"], ["Production"], "weekly"),
            confirmed=True,
        )
        reader_id, pending_id, other_id = reader.id, pending.id, other.id
        addresses = {r.id: r.email for r in (reader, pending, other)}

    server = uvicorn.Server(
        uvicorn.Config(web.create_app(settings, engine), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    files = tmp / "files"
    files.mkdir(exist_ok=True)

    def url(purpose: str, subscriber_id: int) -> str:
        reader = tokens.Recipient(subscriber_id, addresses[subscriber_id])
        return tokens.link(settings, reader, purpose)

    def save(name: str, text: str) -> Path:
        path = files / f"{name}.html"
        path.write_text(text, encoding="utf-8")
        return path

    try:
        with httpx.Client() as http:
            pages = {
                "confirm": save("confirm", http.get(url("confirm", pending_id)).text),
                "unsubscribe": save("unsubscribe", http.get(url("unsubscribe", reader_id)).text),
                "preferences": save("preferences", http.get(url("preferences", reader_id)).text),
                "invalid-token": save("invalid-token", http.get(f"{base}/unsubscribe?token=forged").text),
                "unsubscribed": save("unsubscribed", http.post(url("unsubscribe", pending_id)).text),
                "preferences-saved": save(
                    "preferences-saved",
                    http.post(
                        url("preferences", other_id),
                        data={
                            "country": ["Belgium", "Czech Republic"],
                            "section": ["Production", "Funding"],
                            "frequency": "daily",
                        },
                    ).text,
                ),
            }
            pages.update(
                extra_pages(http, base, settings, tokens.Recipient(reader_id, addresses[reader_id]), save)
            )
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    body = broadcast.prepare(
        "Clapper now covers <b>Czech</b> and <b>Slovak</b> productions.\n"
        "Follow them with /subscribe czech republic, slovakia."
    )
    announcement = broadcast.render_email(
        body,
        unsubscribe_url=url("unsubscribe", reader_id),
        preferences_url=url("preferences", reader_id),
    )
    confirm_mail = emails.render_email(
        "confirm",
        code="482913",
        confirm_url=url("confirm", pending_id),
        address="new.reader@example.org",
        minutes=30,
        from_bot=True,
    )
    mails = {
        "digest-email": save("digest-email", _digest_html(engine, settings, reader_id, addresses[reader_id])),
        "announcement-email": save("announcement-email", announcement.html),
        "confirm-email": save("confirm-email", confirm_mail.html),
    }
    engine.dispose()
    return pages, mails


def extra_pages(
    http: httpx.Client, base: str, settings: Settings, reader: tokens.Recipient, save
) -> dict[str, Path]:
    """The public pages (archive, sign-up) and the pages around them."""
    token = tokens.make_token(settings, reader, "confirm")
    gets = {
        "archive": "/archive",
        "archive-belgium": "/archive?country=Belgium&section=Production",
        "subscribe": "/subscribe",
        "confirm-expired": f"/confirm/renew?token={token}",
    }
    found = {name: save(name, http.get(base + path).text) for name, path in gets.items()}
    found["subscribe-problem"] = save(
        "subscribe-problem",
        http.post(base + "/subscribe", data={"email": "not-an-address", "country": ["Belgium"]}).text,
    )
    return found


def run(out: Path, chromium: str, *, only: set[str] | None = None) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        pages, mails = render_all(tmp)
        shots = [Shot(name, str(path), size=(PHONE[0], 1800)) for name, path in pages.items()]
        shots += [
            Shot("unsubscribe-dark", str(pages["unsubscribe"]), dark=True),
            Shot("preferences-desktop", str(pages["preferences"]), size=DESKTOP),
        ]
        for name, path in mails.items():
            shots += [
                Shot(name, str(path), size=(PHONE[0], 1800)),
                Shot(f"{name}-dark", str(path), size=(PHONE[0], 1800), dark=True),
                Shot(f"{name}-800", str(path), size=(TABLET[0], 1400)),
            ]
        shots = [shot for shot in shots if only is None or shot.name in only]
        return [screenshot(chromium, shot, out, tmp / f"profile-{shot.name}") for shot in shots]


def check_layout(chromium: str) -> dict[str, list[str]]:
    """{"<name> <width>px <light|dark>": problems} over every email and page; empty lists are good.

    Emails at 375 and 800 px, light and dark; pages at 375 px light and 800 px dark. One Chromium
    run per colour scheme lays out every frame.
    """
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        pages, mails = render_all(tmp)
        found: dict[str, list[str]] = {}
        for dark in (False, True):
            cases = [(n, p, w) for n, p in mails.items() for w in (PHONE[0], TABLET[0])]
            cases += [(n, p, TABLET[0] if dark else PHONE[0]) for n, p in pages.items()]
            results = measure(chromium, [(p, w) for _, p, w in cases], dark, tmp / f"m-{dark}")
            for (name, _, width), result in zip(cases, results, strict=True):
                label = f"{name} {width}px {'dark' if dark else 'light'}"
                if result["width"] != width:
                    found[label] = [f"laid out {result['width']} px wide, not {width}"]
                else:
                    found[label] = result["problems"]
        return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "screenshots")
    parser.add_argument("--chromium", default=None, help="path to chromium (default: found on PATH)")
    args = parser.parse_args(argv)
    chromium = find_chromium(args.chromium)
    if chromium is None:
        print("chromium not found: apt-get install chromium (Debian) or pass --chromium", file=sys.stderr)
        return 2
    for png in run(args.out, chromium):
        print(png)
    bad = {label: problems for label, problems in check_layout(chromium).items() if problems}
    for label, problems in bad.items():
        print(f"{label}: " + "; ".join(problems), file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
