"""Render the web pages and emails readers see, with headless Chromium, to PNGs for a human to look at.

    .venv/bin/python scripts/screenshots.py [--out out/screenshots] [--chromium /usr/bin/chromium]

Offline: a scratch SQLite database, the bundled sample listing, the real web app served by
uvicorn on 127.0.0.1, and Debian's `chromium` (apt-get install chromium). Pages are shot at phone
width (390 px) and some at desktop width, light and dark. tests/test_screenshots.py runs this
when Chromium is installed.
"""

from __future__ import annotations

import argparse
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

from digests import broadcast, compose, db, demo, emails, tokens, web  # noqa: E402
from digests.config import Settings  # noqa: E402
from digests.db import session_scope  # noqa: E402
from digests.models import Article, ArticleTag  # noqa: E402

# Headless Chromium counts its (invisible) window frame in --window-size, so the last ~140 px of a
# shot stay blank: sizes leave room for that.
PHONE = (390, 1100)
DESKTOP = (1280, 1100)


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


def screenshot(chromium: str, shot: Shot, out: Path, profile: Path) -> Path:
    png = out / f"{shot.name}.png"
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
        f"--window-size={shot.size[0]},{shot.size[1]}",
        f"--screenshot={png}",
    ]
    if shot.dark:
        args += ["--force-dark-mode", "--blink-settings=preferredColorScheme=0"]
    subprocess.run([*args, shot.url], check=True, capture_output=True, timeout=60)
    if not png.exists() or png.stat().st_size < 1000:
        raise RuntimeError(f"chromium wrote no usable screenshot for {shot.name}")
    return png


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
    )
    digest = compose.Composer().email(views, ctx)
    reader = tokens.Recipient(subscriber_id, address)
    return digest.personalise(
        tokens.link(settings, reader, "unsubscribe"),
        tokens.link(settings, reader, "preferences"),
    ).html


def run(out: Path, chromium: str, *, only: set[str] | None = None) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        settings = Settings(
            _env_file=None,
            database_url=f"sqlite:///{tmp / 'shots.db'}",
            secret_key="screenshots",
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
        try:

            def url(purpose: str, subscriber_id: int) -> str:
                reader = tokens.Recipient(subscriber_id, addresses[subscriber_id])
                return tokens.link(settings, reader, purpose)

            files = tmp / "files"
            files.mkdir()
            # The pages behind a POST (what a reader sees after pressing the button), saved as files.
            with httpx.Client() as http:
                (files / "unsubscribed.html").write_text(http.post(url("unsubscribe", pending_id)).text)
                (files / "saved.html").write_text(
                    http.post(
                        url("preferences", other_id),
                        data={
                            "country": ["Belgium", "Czech Republic"],
                            "section": ["Production", "Funding"],
                            "frequency": "daily",
                        },
                    ).text
                )
            digest_html = _digest_html(engine, settings, reader_id, addresses[reader_id])
            (files / "digest-email.html").write_text(digest_html)
            body = broadcast.prepare(
                "Clapper now covers <b>Czech</b> and <b>Slovak</b> productions.\n"
                "Follow them with /subscribe czech republic, slovakia."
            )
            announcement = broadcast.render_email(
                body,
                unsubscribe_url=url("unsubscribe", reader_id),
                preferences_url=url("preferences", reader_id),
            )
            (files / "announcement-email.html").write_text(announcement.html)
            confirm_mail = emails.render_email(
                "confirm",
                code="482913",
                confirm_url=url("confirm", pending_id),
                address="new.reader@example.org",
                minutes=30,
                from_bot=True,
            )
            (files / "confirm-email.html").write_text(confirm_mail.html)

            shots = [
                Shot("confirm", url("confirm", pending_id)),
                Shot("unsubscribe", url("unsubscribe", reader_id)),
                Shot("unsubscribe-dark", url("unsubscribe", reader_id), dark=True),
                Shot("unsubscribed", (files / "unsubscribed.html").as_uri()),
                Shot("preferences", url("preferences", reader_id), size=(390, 1700)),
                Shot("preferences-desktop", url("preferences", reader_id), size=DESKTOP),
                Shot("preferences-saved", (files / "saved.html").as_uri(), size=(390, 1700)),
                Shot("invalid-token", f"{base}/unsubscribe?token=tampered.token"),
                Shot("digest-email", (files / "digest-email.html").as_uri(), size=(390, 1800)),
                Shot("digest-email-desktop", (files / "digest-email.html").as_uri(), size=DESKTOP),
                Shot(
                    "digest-email-dark", (files / "digest-email.html").as_uri(), size=(390, 1800), dark=True
                ),
                Shot("announcement-email", (files / "announcement-email.html").as_uri()),
                Shot("confirm-email", (files / "confirm-email.html").as_uri()),
            ]
            shots = [shot for shot in shots if only is None or shot.name in only]
            return [screenshot(chromium, shot, out, tmp / f"profile-{shot.name}") for shot in shots]
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            engine.dispose()


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
    return 0


if __name__ == "__main__":
    sys.exit(main())
