"""/subscribe (public sign-up, double opt-in), /confirm/renew (a new link for an expired one) and
/unsubscribe/undo. Every state change is a POST, dispatched explicitly (a HEAD or GET of these
URLs only shows a page), and a POST from another site's page is refused.
"""

from __future__ import annotations

import logging

from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from digests import catalog, emails, follows, readers, tokens
from digests.config import Settings
from digests.db import session_scope
from digests.due import FREQUENCIES
from digests.web import page

log = logging.getLogger(__name__)
COUNTRY_FIELDS = 4  # a few searchable fields; more countries are added on the preferences page


def cross_site(request: Request) -> bool:
    """True when the browser says the form was posted from another site (CSRF)."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return True
    origin = request.headers.get("origin")
    if origin and origin != "null":
        host = request.headers.get("host", "")
        return origin.split("://", 1)[-1] != host
    return False


def routes(settings: Settings, engine: Engine) -> list[Route]:
    limits = readers.SignupLimits.for_settings(settings)

    def form_page(status: int = 200, **context: object) -> Response:
        values = {"email": "", "countries": [], "sections": [], "frequency": "weekly", "problem": None,
                  "phrases": ""}
        values.update(context)
        return page(
            "subscribe",
            status,
            all_countries=list(catalog.countries()),
            all_sections=list(catalog.sections()),
            frequencies=FREQUENCIES,
            country_fields=COUNTRY_FIELDS,
            follow_limit=settings.max_follows,
            **values,
        )

    async def subscribe(request: Request) -> Response:
        if request.method != "POST":
            return form_page()
        if cross_site(request):
            return page("invalid", 403, reason="this form was sent from another site")
        form = await request.form()
        address = str(form.get("email", "")).strip()
        countries = [str(v).strip() for v in form.getlist("country") if str(v).strip()]
        sections = [str(v) for v in form.getlist("section")]
        frequency = str(form.get("frequency", "weekly"))
        typed = str(form.get("phrases", ""))
        kept = {"email": address, "countries": countries, "sections": sections, "frequency": frequency,
                "phrases": typed}
        if str(form.get("website", "")):
            # The honeypot: people never see this field, form-filling robots fill it. Answer as if
            # it worked, so they learn nothing.
            log.info("sign-up honeypot filled")
            return page("subscribe_sent")
        ip = request.client.host if request.client else "unknown"
        if not limits.per_ip.allow(ip):
            return form_page(429, problem="too_often", **kept)
        try:
            reader = emails.new_reader(address, countries, sections, frequency, follows.parse_list(typed))
        except emails.EmailError as exc:
            return form_page(422, problem=exc.reason, detail=str(exc), **kept)
        if not limits.per_address.allow(reader.email):
            return form_page(429, problem="too_often", **kept)

        def do() -> str:
            with session_scope(engine) as session:
                return readers.sign_up(session, settings, reader)

        try:
            outcome = await run_in_threadpool(do)
        except emails.EmailError as exc:
            return form_page(422, problem=exc.reason, detail=str(exc), **kept)
        log.info("sign-up", extra={"outcome": outcome})
        return page("subscribe_sent")

    async def renew(request: Request) -> Response:
        token = request.query_params.get("token", "")
        try:
            claim = tokens.read_expired(settings, token, "confirm")
        except tokens.InvalidToken as exc:
            return page("invalid", 400, reason=str(exc))
        if request.method != "POST":
            return page("confirm_expired", action=f"/confirm/renew?token={token}")
        if cross_site(request):
            return page("invalid", 403, reason="this form was sent from another site")

        def do():
            with session_scope(engine) as session:
                subscriber = tokens.load(session, settings, claim)
                if subscriber is None:
                    return None
                if not limits.per_address.allow(subscriber.email):
                    return "too_often"
                return readers.renew_confirmation(session, settings, subscriber.id)

        try:
            subscriber = await run_in_threadpool(do)
        except tokens.StaleToken:
            return page("stale", 410)
        if subscriber is None:
            return page("gone")
        if subscriber == "too_often":
            return page("confirm_expired", 429, action=f"/confirm/renew?token={token}", too_often=True)
        return page("confirm_renewed", subscriber=subscriber)

    async def undo(request: Request) -> Response:
        token = request.query_params.get("token", "")
        try:
            claim = tokens.read_token(settings, token, "unsubscribe")
        except tokens.InvalidToken as exc:
            return page("invalid", 400, reason=str(exc))
        if cross_site(request):
            return page("invalid", 403, reason="this form was sent from another site")

        def do():
            with session_scope(engine) as session:
                subscriber = tokens.load(session, settings, claim)
                return None if subscriber is None else readers.undo_unsubscribe(session, subscriber.id)

        try:
            subscriber = await run_in_threadpool(do)
        except tokens.StaleToken:
            return page("stale", 410)
        if subscriber is None:
            return page("gone")
        log.info("email unsubscribe undone", extra={"subscriber_id": claim.subscriber_id})
        return page(
            "resubscribed",
            subscriber=subscriber,
            preferences_url=tokens.link(settings, subscriber, "preferences"),
        )

    return [
        Route("/subscribe", subscribe, methods=["GET", "HEAD", "POST"]),
        Route("/confirm/renew", renew, methods=["GET", "HEAD", "POST"]),
        # POST only: the undo button lives on the "you're unsubscribed" page; others get a 405.
        Route("/unsubscribe/undo", undo, methods=["POST"]),
    ]
