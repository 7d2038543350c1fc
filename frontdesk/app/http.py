"""The one HTTP app `frontdesk run` and `frontdesk desk` serve: the desk, `/healthz`, the channels' webhooks;
and `serve_http`, which runs it under uvicorn on the supervisor's event loop.

`/healthz` answers 200 only when everything a customer depends on is ready (the store answers, the NLU
server has a model loaded, the channels are running) and 503 otherwise, naming what is not ready, so an
orchestrator neither routes traffic to nor restarts a process that is still training its model.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text

from desk.validation import install_validation_errors
from desk.web_security import install_web_security
from frontdesk.app.errors import RunError
from frontdesk.core.settings import Settings, get_settings
from storage.db import Database

log = logging.getLogger(__name__)

# A readiness check returns None when ready, else a short description of what is missing.
Check = Callable[[], Awaitable[str | None]]
CHECK_TIMEOUT_S = 3.0


@dataclass
class Readiness:
    """Named readiness checks; components register theirs as they start."""

    checks: dict[str, Check] = field(default_factory=dict)

    def add(self, name: str, check: Check) -> None:
        self.checks[name] = check

    def pending(self, name: str, why: str) -> None:
        """A component that is still starting (e.g. Rasa training): not ready, with the reason."""

        async def _not_yet() -> str:
            return why

        self.checks[name] = _not_yet

    async def report(self) -> tuple[bool, dict[str, str]]:
        names = list(self.checks)
        results = await asyncio.gather(*(self._run(n, self.checks[n]) for n in names))
        status = {n: (r or "ok") for n, r in zip(names, results, strict=True)}
        return all(r is None for r in results), status

    @staticmethod
    async def _run(name: str, check: Check) -> str | None:
        try:
            return await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
        except asyncio.TimeoutError:
            return f"no answer within {CHECK_TIMEOUT_S:g}s"
        except Exception as exc:  # noqa: BLE001 - a failing check means "not ready"
            # /healthz is unauthenticated: an exception's text (a host name, a database URL, a driver's
            # message) goes to the log only, and the answer says where to look.
            log.warning("healthz: the %s check failed: %s: %s", name, type(exc).__name__, exc)
            return "unreachable (the reason is in the server's log)"


def store_check(db: Database) -> Check:
    async def _check() -> str | None:
        async with db.session() as session:
            await session.execute(text("SELECT 1"))
        return None

    return _check


def nlu_check(client: Any) -> Check:
    async def _check() -> str | None:
        status = await client.status()
        return None if status.get("model_file") else "the NLU server has no model loaded"

    return _check


def flag_check(is_ready: Callable[[], bool], what: str) -> Check:
    async def _check() -> str | None:
        return None if is_ready() else what

    return _check


def create_http_app(
    readiness: Readiness,
    *,
    desk_app: Any | None = None,
    routers: list[APIRouter] | None = None,
    extra: dict[str, Any] | None = None,
    settings: Settings | None = None,
) -> FastAPI:
    """The process's HTTP app: `/healthz` first, then webhook routers, then the desk at `/`.

    Bodies are bounded and responses carry the security headers (desk/web_security.py); `/metrics`
    answers 404 here unless `settings.effective_public_metrics` (sandbox mode, or FRONTDESK_PUBLIC_METRICS).
    """
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # A mounted app's own lifespan does not run under Starlette: run the desk's inside ours.
        if desk_app is not None and hasattr(desk_app, "router"):
            async with desk_app.router.lifespan_context(desk_app):
                yield
        else:
            yield

    app = FastAPI(title="Frontdesk", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.readiness = readiness
    app.state.extra = extra or {}
    install_validation_errors(app)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        ready, status = await readiness.report()
        body: dict[str, Any] = {"status": "ok" if ready else "unavailable", "checks": status}
        if not ready:
            body["not_ready"] = {name: why for name, why in status.items() if why != "ok"}
        return JSONResponse(body, status_code=200 if ready else 503)

    for router in routers or []:
        app.include_router(router)
    if desk_app is not None:
        app.mount("/", desk_app)
    install_web_security(app, settings, hidden_paths=() if settings.effective_public_metrics else ("/metrics",))
    return app


def add_routes(app: FastAPI, router: APIRouter) -> None:
    """Add a router to a running app, ahead of the desk mounted at `/` (which would otherwise shadow it).

    Channels start after the HTTP server (so `/healthz` answers during NLU training), hence their
    webhook routes arrive late.
    """
    before = len(app.router.routes)
    app.include_router(router)
    added = app.router.routes[before:]
    del app.router.routes[before:]
    app.router.routes[0:0] = added


@dataclass
class HttpServer:
    """A listening uvicorn server: `url` is where it answers, `task` ends when it stops."""

    url: str
    task: asyncio.Task[Any]
    _server: Any

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Finish the requests in flight (up to `timeout_s`), then stop."""
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self.task), timeout_s)
        except (asyncio.TimeoutError, Exception):  # noqa: BLE001
            self.task.cancel()


async def serve_http(app: FastAPI, host: str, port: int) -> HttpServer:
    """Listen on `host:port` (0: a free port) and serve `app`; returns once it listens.

    Raises RunError naming FRONTDESK_HTTP_PORT when the port cannot be bound.
    """
    server = _uvicorn_server(app, host, port)
    task = asyncio.ensure_future(server.serve())
    for _ in range(200):
        if server.started or task.done():
            break
        await asyncio.sleep(0.05)
    if task.done() or not server.started:
        task.cancel()
        raise RunError(
            f"the HTTP server could not listen on {host}:{port} (port in use?); "
            "set FRONTDESK_HTTP_PORT to a free port"
        )
    bound = port
    with contextlib.suppress(Exception):
        bound = server.servers[0].sockets[0].getsockname()[1]
    return HttpServer(url=f"http://{host}:{bound}", task=task, _server=server)


def _uvicorn_server(app: Any, host: str, port: int) -> Any:
    """uvicorn without its own signal handling: the supervisor owns SIGINT/SIGTERM for every part."""
    import uvicorn

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):  # type: ignore[no-untyped-def,override]
            yield

        def install_signal_handlers(self) -> None:  # older uvicorn
            return None

    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on",
                            log_config=None)  # its lines go through configure_logging's handler
    return _Server(config)
