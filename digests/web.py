"""The small web app behind email links: confirm, unsubscribe (RFC 8058 one-click), preferences.

Every page takes a signed token in its URL (digests.tokens): it names one subscriber, the address
it was mailed to and one purpose. A forged or altered token gets a 400 page, a token for an
address the reader no longer holds a 410 page; neither changes anything. Only POST changes
anything (the page's one button, or the mail client's one-click POST): link scanners fetch with
GET, HEAD and others.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from digests import catalog, emails, follows, readers, tokens
from digests.config import Settings
from digests.db import session_scope
from digests.models import Subscriber
from digests.subscriptions import WEEKDAYS

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


class _Gone(Exception):
    """The token's reader has no address any more: nothing to show or change."""


def create_app(settings: Settings, engine: Engine) -> Starlette:
    """The ASGI app `clapper web` serves (and `clapper run` when PUBLIC_BASE_URL is set)."""

    def claim_for(request: Request, purpose: str) -> tokens.Claim:
        token = request.query_params.get("token", "")
        if not token:
            raise tokens.InvalidToken("this link has no token")
        return tokens.read_token(settings, token, purpose)

    def bound(session: Session, claim: tokens.Claim) -> Subscriber:
        """The checked row for `claim`, inside the caller's transaction (so the change applies to
        the row that was checked); _Gone or tokens.StaleToken otherwise."""
        subscriber = tokens.load(session, settings, claim)
        if subscriber is None:
            raise _Gone
        return subscriber

    def action(request: Request) -> str:
        return f"{request.url.path}?token={request.query_params.get('token', '')}"

    Handler = Callable[[Request, tokens.Claim], Awaitable[Response]]

    def signed(purpose: str, show: Handler, change: Handler):
        """The endpoint of a page: `show` for every method but POST, `change` for POST only.

        Link scanners and previews fetch with GET and HEAD (Starlette hands HEAD to the GET
        endpoint) and sometimes others; none of those may change anything.
        """

        async def endpoint(request: Request) -> Response:
            try:
                claim = claim_for(request, purpose)
                handler = change if request.method == "POST" else show
                return await handler(request, claim)
            except tokens.StaleToken:
                return page("stale", 410)
            except tokens.ExpiredToken:
                if purpose == "confirm":
                    renew = f"/confirm/renew?token={request.query_params.get('token', '')}"
                    return page("confirm_expired", 410, action=renew)
                return _invalid("this link has expired")
            except tokens.InvalidToken as exc:
                return _invalid(str(exc))
            except _Gone:
                return page("gone")

        return endpoint

    def one_button(name: str) -> Handler:
        """The page whose POST makes the change: it shows the button and changes nothing."""

        async def show(request: Request, claim: tokens.Claim) -> Response:
            def read() -> Subscriber:
                with session_scope(engine) as session:
                    return bound(session, claim)

            subscriber = await run_in_threadpool(read)
            return page(name, subscriber=subscriber, action=action(request), done=False)

        return show

    async def healthz(_request: Request) -> Response:
        return PlainTextResponse("ok")

    async def confirm(_request: Request, claim: tokens.Claim) -> Response:
        def do() -> tuple[Subscriber | None, str | None]:
            with session_scope(engine) as session:
                subscriber = bound(session, claim)
                try:
                    return emails.confirm_by_link(session, subscriber.id), None
                except emails.EmailError as exc:
                    return None, exc.reason

        subscriber, problem = await run_in_threadpool(do)
        if problem == "gone":
            return page("gone")
        if problem:
            return page("confirm_refused", 409)
        log.info("email confirmed by link", extra={"subscriber_id": claim.subscriber_id})
        return page(
            "confirm",
            subscriber=subscriber,
            done=True,
            preferences_url=tokens.link(settings, subscriber, "preferences"),
        )

    async def unsubscribe(request: Request, claim: tokens.Claim) -> Response:
        # RFC 8058: the body ("List-Unsubscribe=One-Click") carries nothing we need, the token is
        # in the URL, there are no cookies, and the answer is a 200, never a redirect.
        def do() -> Subscriber | None:
            with session_scope(engine) as session:
                return emails.unsubscribe(session, bound(session, claim).id)

        subscriber = await run_in_threadpool(do)
        if subscriber is None:
            return page("gone")
        log.info("email unsubscribed", extra={"subscriber_id": claim.subscriber_id})
        undo = f"/unsubscribe/undo?token={request.query_params.get('token', '')}"
        return page("unsubscribe", subscriber=subscriber, done=True, undo_action=undo)

    async def preferences_page(
        request: Request,
        claim: tokens.Claim,
        *,
        saved: bool = False,
        problem: str | None = None,
        bad_fields: tuple[str, ...] = (),
    ) -> Response:
        def read() -> tuple[Subscriber, list[str], list[str], list[str], list[str]]:
            with session_scope(engine) as session:
                subscriber = bound(session, claim)
                countries, sections = emails.terms_of(session, subscriber.id)
                mine = [p for _, p in follows.load(session, [subscriber.id]).get(subscriber.id, [])]
                return subscriber, countries, sections, emails.festivals_of(session, subscriber.id), mine

        subscriber, countries, sections, festivals, mine = await run_in_threadpool(read)
        chosen = set(countries)
        return page(
            "preferences",
            422 if problem else 200,
            subscriber=subscriber,
            action=action(request),
            saved=saved,
            too_many=settings.max_subscriptions if problem == "too_many_terms" else None,
            phrase_problem=problem if problem in ("too_many_follows", "bad_follow") else None,
            phrases=mine,
            follow_limit=settings.max_follows,
            problem=problem,
            bad_fields=bad_fields,
            chosen_countries=countries,
            other_countries=[c for c in catalog.countries() if c not in chosen],
            weekdays=[d.title() for d in WEEKDAYS],
            feed_url=tokens.link(settings, subscriber, "feed"),
            all_sections=list(catalog.sections()),
            chosen_sections=set(sections),
            all_festivals=list(catalog.festivals()),
            chosen_festivals=set(festivals),
            frequencies=emails.FREQUENCIES,
            unsubscribe_url=tokens.link(settings, subscriber, "unsubscribe"),
        )

    async def show_preferences(request: Request, claim: tokens.Claim) -> Response:
        return await preferences_page(request, claim)

    async def save_preferences(request: Request, claim: tokens.Claim) -> Response:
        form = await request.form()
        countries = [str(v).strip() for v in form.getlist("country") if str(v).strip()]
        sections = [str(v) for v in form.getlist("section")]
        # Only a form that showed the festivals may change them (no ticks there means none).
        festivals = [str(v) for v in form.getlist("festival")] if "festivals_shown" in form else None
        frequency = str(form.get("frequency", ""))
        typed = form.get("phrases")
        phrases = None if typed is None else follows.parse_list(str(typed))
        # Older copies of the page have no schedule fields: then the schedule stays as it is.
        schedule = (
            readers.parse_schedule(
                str(form.get("delivery_time", "")),
                str(form.get("weekly_day", "")),
                str(form.get("timezone", "")),
                form.get("paused") == "on",
            )
            if "delivery_time" in form
            else None
        )

        def save() -> str | None:
            if frequency not in emails.FREQUENCIES:
                return "bad_frequency"
            if not countries and not sections:
                return "nothing_chosen"  # the rule: following nothing sends nothing
            if schedule is not None and schedule.problems:
                return "bad_schedule"
            with session_scope(engine) as session:
                subscriber = bound(session, claim)
                try:
                    emails.set_preferences(
                        session,
                        subscriber.id,
                        countries=countries,
                        sections=sections,
                        frequency=frequency,
                        limit=settings.max_subscriptions,
                        festivals=festivals,
                        phrases=phrases,
                        follow_limit=settings.max_follows,
                    )
                except emails.EmailError as exc:
                    session.rollback()
                    return exc.reason
                if schedule is not None:
                    readers.set_schedule(session, subscriber.id, schedule)
            return None

        problem = await run_in_threadpool(save)
        if problem == "gone":
            return page("gone")
        if problem and problem not in ("too_many_terms", "nothing_chosen", "bad_schedule", "unknown_term",
                                       "too_many_follows", "bad_follow"):
            # Only a hand-made form can send an unknown frequency.
            return _invalid("the form held something we do not offer")
        # The others are shown on the page, with what is stored unchanged.
        bad = schedule.problems if schedule is not None and problem == "bad_schedule" else ()
        return await preferences_page(request, claim, saved=problem is None, problem=problem, bad_fields=bad)

    # Imported here: the page modules use this module's page() and headers.
    from digests.pages import archive, signup

    async def not_found(_request: Request, _exc: Exception) -> Response:
        return page("not_found", 404)

    async def not_allowed(_request: Request, exc: Exception) -> Response:
        response = page("not_allowed", 405)
        response.headers.update(getattr(exc, "headers", None) or {})
        return response

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET", "HEAD"]),
            # methods=["GET", "POST"]: Starlette adds HEAD; OPTIONS, PUT and the rest get a 405.
            Route(
                "/confirm",
                signed("confirm", one_button("confirm"), confirm),
                methods=["GET", "POST"],
            ),
            Route(
                "/unsubscribe",
                signed("unsubscribe", one_button("unsubscribe"), unsubscribe),
                methods=["GET", "POST"],
            ),
            Route(
                "/preferences",
                signed("preferences", show_preferences, save_preferences),
                methods=["GET", "POST"],
            ),
            *archive.routes(settings, engine),
            *signup.routes(settings, engine),
        ],
        exception_handlers={404: not_found, 405: not_allowed},
    )


async def serve(
    settings: Settings, engine: Engine, *, host: str | None = None, port: int | None = None
) -> None:
    """Run the app with uvicorn inside the current event loop (for `clapper web` and `clapper run`)."""
    import uvicorn

    config = server_config(create_app(settings, engine), settings, host=host, port=port)
    await uvicorn.Server(config).serve()


def server_config(app: Starlette, settings: Settings, *, host: str | None = None, port: int | None = None):
    """The one uvicorn configuration of `clapper web` and `clapper run`."""
    import uvicorn

    return uvicorn.Config(
        app,
        host=host or settings.web_host,
        port=port or settings.web_port,
        # Logging is configured by logs.configure; uvicorn's own config would replace it.
        log_config=None,
        log_level=settings.log_level.lower(),
        lifespan="auto",
        proxy_headers=True,
        # No Server header: a scanner learns nothing about what answers.
        server_header=False,
        # Access logs would record every token (the URLs are bearer links); our own log lines
        # name the subscriber id instead.
        access_log=False,
    )
