"""Mount the X emulator on an aiohttp app: the emulated API at ``/2``, the control API at ``/_sandbox/``."""

from __future__ import annotations

from aiohttp import web

from sandbox.x.api import X_STATE, build_x_api_app
from sandbox.x.control import add_control_routes
from sandbox.x.state import XConfig, XState
from sandbox.x.webhook import X_WEBHOOKS, WebhookDispatcher

__all__ = ["X_STATE", "X_WEBHOOKS", "add_x_routes", "build_x_api_app"]


def add_x_routes(app: web.Application, state: XState | None = None, config: XConfig | None = None) -> XState:
    """Mount the X API at ``/2`` and its control API at ``/_sandbox/`` on ``app``; return the state."""
    state = state or XState(config)
    app[X_STATE] = state
    dispatcher = WebhookDispatcher(state)
    app[X_WEBHOOKS] = dispatcher

    async def _webhooks(_: web.Application):  # type: ignore[no-untyped-def]
        await dispatcher.start()
        yield
        await dispatcher.stop()

    app.cleanup_ctx.append(_webhooks)
    app.add_subapp("/2", build_x_api_app(state))
    add_control_routes(app)
    return state
