"""The small web app behind email links: confirm, unsubscribe (RFC 8058 one-click), preferences.

Every page takes a signed token in its URL (digests.tokens): it names one subscriber and one
purpose. A forged or altered token gets a 400 page and changes nothing. GETs never change
anything (link scanners fetch them); the change is the POST behind the page's one button, or
the mail client's one-click POST.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from digests import catalog, emails, follows, tokens
from digests.config import Settings
from digests.db import session_scope
from digests.models import Subscriber

log = logging.getLogger(__name__)

# Tokens travel in URLs: no Referer may carry them elsewhere, and no cache may keep the pages.
_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}


def page(name: str, status: int = 200, **context: object) -> HTMLResponse:
    return HTMLResponse(emails.render(f"web/{name}.html.j2", **context), status_code=status, headers=_HEADERS)


def _invalid(reason: str) -> HTMLResponse:
    return page("invalid", 400, reason=reason)


def create_app(settings: Settings, engine: Engine) -> Starlette:
    """The ASGI app `clapper web` serves (and `clapper run` when PUBLIC_BASE_URL is set)."""

    def subscriber_for(request: Request, purpose: str) -> int:
        token = request.query_params.get("token", "")
        if not token:
            raise tokens.InvalidToken("this link has no token")
        return tokens.read_token(settings, token, purpose)

    def load(subscriber_id: int) -> Subscriber | None:
        with session_scope(engine) as session:
            return session.get(Subscriber, subscriber_id)

    def action(request: Request) -> str:
        return f"{request.url.path}?token={request.query_params.get('token', '')}"

    def signed(purpose: str, handler: Callable[[Request, int], Awaitable[Response]]):
        """The endpoint for `handler`, which runs only with a valid `purpose` token in the URL."""

        async def endpoint(request: Request) -> Response:
            try:
                subscriber_id = subscriber_for(request, purpose)
            except tokens.InvalidToken as exc:
                return _invalid(str(exc))
            return await handler(request, subscriber_id)

        return endpoint

    async def one_button(request: Request, name: str, subscriber_id: int) -> Response:
        """The GET of a page whose POST makes the change: it shows the button and changes nothing."""
        subscriber = await run_in_threadpool(load, subscriber_id)
        if subscriber is None or subscriber.email is None:
            return page("gone")
        return page(name, subscriber=subscriber, action=action(request), done=False)

    async def healthz(_request: Request) -> Response:
        return PlainTextResponse("ok")

    async def confirm(request: Request, subscriber_id: int) -> Response:
        if request.method == "GET":
            return await one_button(request, "confirm", subscriber_id)

        def do() -> tuple[Subscriber | None, str | None]:
            with session_scope(engine) as session:
                try:
                    return emails.confirm_by_link(session, subscriber_id), None
                except emails.EmailError as exc:
                    return None, exc.reason

        subscriber, problem = await run_in_threadpool(do)
        if problem == "gone":
            return page("gone")
        if problem:
            return page("confirm_refused", 409)
        log.info("email confirmed by link", extra={"subscriber_id": subscriber_id})
        return page(
            "confirm",
            subscriber=subscriber,
            done=True,
            preferences_url=tokens.link(settings, subscriber_id, "preferences"),
        )

    async def unsubscribe(request: Request, subscriber_id: int) -> Response:
        if request.method == "GET":
            return await one_button(request, "unsubscribe", subscriber_id)

        # RFC 8058: the body ("List-Unsubscribe=One-Click") carries nothing we need, the token is
        # in the URL, there are no cookies, and the answer is a 200, never a redirect.
        def do() -> Subscriber | None:
            with session_scope(engine) as session:
                return emails.unsubscribe(session, subscriber_id)

        subscriber = await run_in_threadpool(do)
        if subscriber is None:
            return page("gone")
        log.info("email unsubscribed", extra={"subscriber_id": subscriber_id})
        return page("unsubscribe", subscriber=subscriber, done=True)

    async def preferences(request: Request, subscriber_id: int) -> Response:
        saved = False
        problem = None
        if request.method == "POST":
            form = await request.form()
            countries = [str(v) for v in form.getlist("country")]
            sections = [str(v) for v in form.getlist("section")]
            frequency = str(form.get("frequency", ""))
            typed = form.get("phrases")
            phrases = None if typed is None else follows.parse_list(str(typed))

            def save() -> str | None:
                with session_scope(engine) as session:
                    try:
                        emails.set_preferences(
                            session,
                            subscriber_id,
                            countries=countries,
                            sections=sections,
                            frequency=frequency,
                            limit=settings.max_subscriptions,
                            phrases=phrases,
                            follow_limit=settings.max_follows,
                        )
                    except emails.EmailError as exc:
                        session.rollback()
                        return exc.reason
                return None

            problem = await run_in_threadpool(save)
            if problem == "gone":
                return page("gone")
            if problem in ("too_many_terms", "too_many_follows", "bad_follow"):
                pass  # shown on the page below, with what is stored unchanged
            elif problem:
                # Only a hand-made form can send an unknown term or frequency.
                return _invalid("the form held something we do not offer")
            else:
                saved = True

        def read() -> tuple[Subscriber | None, list[str], list[str], list[str]]:
            with session_scope(engine) as session:
                subscriber = session.get(Subscriber, subscriber_id)
                if subscriber is None:
                    return None, [], [], []
                countries, sections = emails.terms_of(session, subscriber_id)
                mine = [p for _, p in follows.load(session, [subscriber_id]).get(subscriber_id, [])]
                return subscriber, countries, sections, mine

        subscriber, countries, sections, mine = await run_in_threadpool(read)
        if subscriber is None:
            return page("gone")
        chosen = set(countries)
        return page(
            "preferences",
            subscriber=subscriber,
            action=action(request),
            saved=saved,
            too_many=settings.max_subscriptions if problem == "too_many_terms" else None,
            phrase_problem=problem if problem in ("too_many_follows", "bad_follow") else None,
            phrases=mine,
            follow_limit=settings.max_follows,
            chosen_countries=countries,
            other_countries=[c for c in catalog.countries() if c not in chosen],
            all_sections=list(catalog.sections()),
            chosen_sections=set(sections),
            frequencies=emails.FREQUENCIES,
            unsubscribe_url=tokens.link(settings, subscriber_id, "unsubscribe"),
        )

    async def not_found(_request: Request, _exc: Exception) -> Response:
        return page("not_found", 404)

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET", "HEAD"]),
            Route("/confirm", signed("confirm", confirm), methods=["GET", "POST"]),
            Route("/unsubscribe", signed("unsubscribe", unsubscribe), methods=["GET", "POST"]),
            Route("/preferences", signed("preferences", preferences), methods=["GET", "POST"]),
        ],
        exception_handlers={404: not_found},
    )


async def serve(
    settings: Settings, engine: Engine, *, host: str | None = None, port: int | None = None
) -> None:
    """Run the app with uvicorn inside the current event loop (for `clapper web` and `clapper run`)."""
    import uvicorn

    config = uvicorn.Config(
        create_app(settings, engine),
        host=host or settings.web_host,
        port=port or settings.web_port,
        log_level=settings.log_level.lower(),
        proxy_headers=True,
        server_header=False,
        # Access logs would record every token (the URLs are bearer links); our own log lines
        # name the subscriber id instead.
        access_log=False,
    )
    await uvicorn.Server(config).serve()
