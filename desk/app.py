"""The desk's FastAPI application: pages, JSON API and live feed over one store.

`create_desk_app(db, settings)` builds it around a `Database` the caller owns (the app never disposes
it), so `frontdesk run` can serve it beside the webhooks, and tests can point it at any store.
`standalone_app()` is the uvicorn factory for running the desk on its own:

    uvicorn --factory desk.app:standalone_app --port 8000
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from starlette.middleware.sessions import SessionMiddleware

from bot.content import Event, ListeningRules, csat_policy, load_sla
from bot.taxonomy import Taxonomy, TaxonomyError, load_taxonomy
from desk import queries
from desk.auth import TokenSigner
from desk.live import LiveFeed
from desk.saved_replies import load_event_catalogue
from desk.web_security import install_web_security
from frontdesk.core.business_hours import parse_business_hours
from frontdesk.core.logging import configure_logging
from frontdesk.core.settings import Settings, get_settings
from frontdesk.core.sla import SlaPolicy
from storage.actions.csat import CsatPolicy
from storage.db import Database
from storage.errors import AlreadyClaimed, InvalidText, InvalidTransition, NotAllowed, NotFound

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "frontdesk_desk"


@dataclass
class DeskState:
    """What every route needs, kept on `app.state.desk`."""

    db: Database
    settings: Settings
    tokens: TokenSigner
    taxonomy: Taxonomy | None
    templates: Jinja2Templates
    live: LiveFeed
    events: dict[str, Event] = field(default_factory=dict)  # for saved replies' {event_*} placeholders
    sla: SlaPolicy = field(default_factory=SlaPolicy)  # content/sla.yml and FRONTDESK_BUSINESS_HOURS
    listening: ListeningRules = field(default_factory=ListeningRules)  # the Listening page's rule filter
    csat: CsatPolicy | None = None  # asked when an agent resolves a ticket (FRONTDESK_CSAT_*)

    async def intent_choices(self) -> list[str]:
        """The intents an agent may pick when correcting the NLU: the taxonomy's, else those seen so far."""
        if self.taxonomy is not None and self.taxonomy.intents:
            return sorted(self.taxonomy.intents)
        return sorted(set(await queries.seen_intents(self.db)) | {"nlu_fallback"})


def _load_taxonomy(settings: Settings) -> Taxonomy | None:
    try:
        return load_taxonomy(settings.effective_taxonomy_path)
    except TaxonomyError as exc:
        log.warning("desk: no intent taxonomy (%s); corrections offer the intents seen so far", exc)
        return None


def create_desk_app(db: Database, settings: Settings, *, taxonomy: Taxonomy | None = None) -> FastAPI:
    """The agents' desk over `db`.  The caller owns `db` (opens, migrates and disposes it).

    Raises InsecureSettings when real accounts are configured with a secret key anyone could know.
    `/docs`, `/redoc` and `/openapi.json` exist only when `settings.effective_public_docs`.
    """
    from desk import (
        announcements_api,
        announcements_pages,
        api,
        assignment_api,
        customers_api,
        docs,
        figures_api,
        incident_pages,
        incidents_api,
        event_registrations,
        listening_api,
        listening_pages,
        live,
        pages,
        public_posts_api,
        saved_replies_api,
        tags_api,
    )
    from desk.listening import load_rules

    settings.check_secrets()

    live_feed = LiveFeed(db, poll_s=settings.desk_live_poll_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await live_feed.close()  # ends open event streams; the database stays the caller's

    app = FastAPI(
        title="Frontdesk desk",
        description="The agents' desk: queues, tickets and the actions on them. "
        "Get a token with POST /api/token, then send it as `Authorization: Bearer <token>`.",
        version="1",
        lifespan=lifespan,
        docs_url=None,  # desk/docs.py serves /docs and /redoc without a CDN
        redoc_url=None,
        openapi_url="/openapi.json" if settings.effective_public_docs else None,
    )
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    pages.install_template_helpers(templates)
    templates.env.globals["url_for"] = _template_path_for
    app.state.desk = DeskState(
        db=db,
        settings=settings,
        tokens=TokenSigner(settings.secret_key.get_secret_value(), settings.desk_token_ttl_s),
        taxonomy=taxonomy if taxonomy is not None else _load_taxonomy(settings),
        templates=templates,
        live=live_feed,
        events=load_event_catalogue(settings.content_dir / "events.yml"),
        sla=SlaPolicy(
            targets=load_sla(settings.content_dir / "sla.yml"),
            hours=parse_business_hours(settings.business_hours, settings.business_timezone),
        ),
        listening=load_rules(settings),
        csat=csat_policy(settings),
    )
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.secret_key.get_secret_value(),
        session_cookie=SESSION_COOKIE,
        max_age=settings.desk_session_max_age_s,
        same_site="lax",
        https_only=settings.effective_desk_cookie_secure,
    )
    if app.openapi_url:
        docs.install_api_docs(app)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.include_router(api.router)
    app.include_router(saved_replies_api.router)
    app.include_router(customers_api.router)
    app.include_router(tags_api.router)
    app.include_router(listening_api.router)
    app.include_router(listening_pages.router)
    app.include_router(figures_api.router)
    app.include_router(incidents_api.router)
    app.include_router(announcements_api.router)
    app.include_router(announcements_pages.router)
    app.include_router(assignment_api.router)
    app.include_router(event_registrations.router)
    app.include_router(public_posts_api.router)
    app.include_router(live.router)
    app.include_router(pages.router)
    app.include_router(incident_pages.router)
    _install_error_handlers(app)
    install_web_security(app, settings)  # last, so that it runs first
    return app


@pass_context
def _template_path_for(context: dict[str, Any], name: str, /, **path_params: Any) -> str:
    """`url_for` in templates: path-only links, never built from the Host header a client sent."""
    from desk.pages import path_for

    return path_for(context["request"], name, **path_params)


def _install_error_handlers(app: FastAPI) -> None:
    """Store errors become HTTP answers that say what to do; pages get their own in `pages.py`.

    Validation errors answer the shape /openapi.json documents, without echoing the input
    (`desk.validation`); on an HTML page, a path that names no row (`/tickets/abc`, an id past
    `desk.inputs.MAX_ROW_ID`) is the not-found page.
    """
    from fastapi.exceptions import RequestValidationError

    from desk.pages import SignInRequired, sign_in_redirect
    from desk.validation import document_validation_errors, unprocessable, validation_error_response

    document_validation_errors(app)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> Response:
        route = request.scope.get("route")
        is_page = getattr(route, "include_in_schema", True) is False  # the HTML desk; the API is documented
        if is_page and any(tuple(error.get("loc", ()))[:1] == ("path",) for error in exc.errors()):
            return request.app.state.desk.templates.TemplateResponse(
                request,
                "not_found.html",
                {"what": "This page", "agent": None, "csrf": "", "flash": None, "counts": {}},
                status_code=404,
            )
        return validation_error_response(exc)

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        return sign_in_redirect(request)

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(AlreadyClaimed)
    async def _claimed(request: Request, exc: AlreadyClaimed) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc), "status": "assigned", "holder": exc.holder, "holder_id": exc.holder_id},
            status_code=409,
        )

    @app.exception_handler(InvalidTransition)
    async def _invalid(request: Request, exc: InvalidTransition) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc), "status": exc.current_state, "holder": exc.holder}, status_code=409
        )

    @app.exception_handler(NotAllowed)
    async def _not_allowed(request: Request, exc: NotAllowed) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=403)

    @app.exception_handler(InvalidText)
    async def _invalid_text(request: Request, exc: InvalidText) -> JSONResponse:
        # The store checks agents' text only, and the API sends it as `text` (reply, note).
        return validation_error_response(unprocessable(("body", "text"), str(exc), "text_invalid"))


def standalone_app() -> FastAPI:
    """The desk on its own (uvicorn factory): opens the configured store and closes it on shutdown."""
    from storage.migrate import open_database

    settings = get_settings()
    settings.check_secrets()  # refuse at start, before the store is opened
    configure_logging(settings.log_level, json=settings.log_json)  # uvicorn's lines go through the redactor too

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Opened here, on the server's event loop, because database connections belong to one loop.
        db = await open_database(settings.effective_database_url)
        inner = create_desk_app(db, settings)
        app.state.inner = inner
        app.mount("/", inner)
        async with inner.router.lifespan_context(inner):
            try:
                yield
            finally:
                await db.dispose()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    install_web_security(app, settings)
    return app
