"""A film-news site on 127.0.0.1 serving one Cineuropa-style listing page that tests can grow.

async with ListingSite() as site:          # in the test's loop
    site.add("Shoot starts in Ghent")      # newest first on the page
    url = site.url                          # register it as a source
with ListingSite.in_thread() as site: ...  # for subprocess tests and benches
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import itertools
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

from aiohttp import web


@dataclass
class Item:
    id: int
    title: str
    summary: str
    published: date
    section: str
    countries: str


class ListingSite:
    def __init__(self, *, heading: str = "Production / Belgium", page_size: int = 50) -> None:
        self.heading = heading
        self.page_size = page_size
        self.items: list[Item] = []
        self.requests = 0
        self.fail_next = 0  # answer the next N requests with 503
        self.delay = 0.0  # seconds before answering (a slow site)
        self.port = 0
        self._ids = itertools.count(1000)
        self._lock = threading.Lock()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/en/production/belgium/"

    def add(
        self,
        title: str,
        *,
        summary: str = "A new production.",
        published: date | None = None,
        section: str = "Production",
        countries: str = "Belgium",
    ) -> str:
        """Publish an article; returns its URL as the page links it."""
        with self._lock:
            item = Item(next(self._ids), title, summary, published or date.today(), section, countries)
            self.items.insert(0, item)
        return f"http://127.0.0.1:{self.port}/en/newsdetail/{item.id}/"

    def page(self) -> str:
        with self._lock:
            shown = self.items[: self.page_size]
            total = len(self.items)
        records = "\n".join(
            f"""<div class="news-item"><div class="text">
<h2 class="title"><a href="/en/newsdetail/{i.id}/">{html.escape(i.title)}</a></h2>
<p class="summary">{html.escape(i.summary)}</p>
<div class="meta"><span class="date">{i.published:%d/%m/%Y}</span>
 | <a href="/en/s/">{html.escape(i.section)}</a>
 | <span class="countries">{html.escape(i.countries)}</span></div></div></div>"""
            for i in shown
        )
        last = f" Last article published on {shown[0].published:%d/%m/%Y}." if shown else ""
        return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>{html.escape(self.heading)}</title></head><body>
<h1 class="page-title">{html.escape(self.heading)}</h1>
<p class="count">{total} articles available in total starting from 01/01/2020.{last}</p>
<div class="list-news">
{records}
</div></body></html>"""

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.Response(status=503, text="busy")
        if request.path.rstrip("/") != "/en/production/belgium":
            return web.Response(status=404, text="not found")
        return web.Response(text=self.page(), content_type="text/html", charset="utf-8")

    async def start(self) -> ListingSite:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> ListingSite:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    @classmethod
    @contextlib.contextmanager
    def in_thread(cls, **kwargs) -> Iterator[ListingSite]:
        site = cls(**kwargs)
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(site.start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(site.stop())
            loop.close()

        thread = threading.Thread(target=run, name="listing-site", daemon=True)
        thread.start()
        ready.wait(10)
        try:
            yield site
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
