"""X's v2 webhook and Account Activity endpoints, as the OpenAPI spec (2.159) describes them.

- ``POST /2/webhooks`` {url} registers a webhook: X first runs its CRC (a GET with ``crc_token``) and
  refuses the URL if the answer is wrong, slow or not a 200; ``GET /2/webhooks`` lists them with
  ``valid``; ``PUT /2/webhooks/:id`` re-runs the CRC (X also does so every hour) and ``valid`` follows
  the result; ``DELETE /2/webhooks/:id`` removes one.
- ``POST/GET /2/account_activity/webhooks/:id/subscriptions/all`` subscribe / check the token's user
  (user context only, per the spec's security); ``GET .../subscriptions/all/list`` and
  ``DELETE .../subscriptions/:user_id/all`` are app-only (bearer).

Events reach a webhook only while it is valid and the brand is subscribed to it (the dispatcher in
``sandbox/x/webhook.py`` delivers to ``state.webhook_url``).  X's URL requirements (docs.x.com,
x-api/webhooks/quickstart: HTTPS, publicly reachable, no port in the URL; the spec: at most 200
characters) apply when ``XConfig.webhook_url_rules`` is ``"x"``; the sandbox default lets local
``http://127.0.0.1:PORT`` receivers register, since nothing local has a public HTTPS name.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from sandbox.x import errors, views
from sandbox.x.state import XState, stable_user_id
from sandbox.x.webhook import X_WEBHOOKS, crc_check

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
WEBHOOK_CONFIG_FIELDS = frozenset({"created_at", "id", "url", "valid"})
URL_MAX_CHARS = 200  # WebhookConfigCreateRequest.url maxLength
# How fast a CRC must be answered: the Account Activity docs of the v1.1 era refused registration with
# "High latency on CRC GET request. Your webhook should respond in less than 3 seconds."; today's webhook
# page asks for an answer within 10 seconds. The stricter one is modelled.
CRC_TIMEOUT_S = 3.0
_PROBLEMS = "https://api.twitter.com/2/problems/"


@dataclass
class WebhookConfig:
    id: str
    url: str
    created_at: datetime
    valid: bool = True

    def render(self) -> dict[str, Any]:
        return {
            "created_at": self.created_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "id": self.id,
            "url": self.url,
            "valid": self.valid,
        }


def _no_webhook(webhook_id: str) -> errors.XApiError:
    # A generic problem: the spec's ResourceNotFoundProblem names only users, posts, media, lists, spaces.
    return errors.problem(404, "Not Found Error", f"Could not find webhook with id: [{webhook_id}].")


def _json(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(body).encode(), status=status, content_type="application/json")


def _state(request: web.Request) -> XState:
    from sandbox.x.api import X_STATE  # api.py mounts these routes: imported when called, not at load

    return request.app[X_STATE]


def _configs(state: XState) -> dict[str, WebhookConfig]:
    return state.webhook_configs  # type: ignore[return-value]


def _refresh_delivery(state: XState) -> None:
    """X delivers the brand's events to a valid webhook the brand is subscribed to, and nowhere else."""
    for config in _configs(state).values():
        if config.valid and state.brand.id in state.webhook_subscriptions.get(config.id, set()):
            state.webhook_url = config.url
            return
    state.webhook_url = None


def url_problem(url: str, rules: str) -> str | None:
    """Why X would refuse `url` as a webhook (None: acceptable)."""
    if len(url) > URL_MAX_CHARS:
        return f"The webhook URL is longer than {URL_MAX_CHARS} characters"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "The webhook URL must be an absolute https:// URL"
    if rules != "x":
        return None
    if parts.scheme != "https":
        return "The webhook URL must use HTTPS"
    if parts.port is not None:
        return "The webhook URL cannot include a port"
    host = parts.hostname
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if host == "localhost" or host.endswith(".localhost") or (address is not None and not address.is_global):
        return "The webhook URL must be publicly reachable from the internet"
    return None


async def _crc(request: web.Request, state: XState, url: str) -> str | None:
    """Run X's CRC against `url`; None if it passed, else why it failed."""
    session = request.config_dict[X_WEBHOOKS].session
    try:
        await asyncio.wait_for(crc_check(session, url, state.config.consumer_secret), CRC_TIMEOUT_S)
    except TimeoutError:
        return f"CRC check: {url} did not answer within {CRC_TIMEOUT_S:.0f} seconds"
    except ValueError as exc:
        return str(exc)
    return None


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json() if request.can_read_body else {}
    except (ValueError, UnicodeDecodeError):
        raise errors.invalid_request("Request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise errors.invalid_request("Request body must be a JSON object.")
    return body


def _config_or_404(state: XState, raw_id: str) -> WebhookConfig:
    webhook_id = views.parse_path_id(raw_id, "webhook_id")
    config = _configs(state).get(webhook_id)
    if config is None:
        raise _no_webhook(webhook_id)
    return config


def _tag(name: str, *, auth: str) -> Callable[[Handler], Handler]:
    """Rate-limit bucket and the auth the spec allows: "user" (user context), "app" (bearer) or "any"."""

    def tag(handler: Handler) -> Handler:
        handler.x_endpoint = name  # type: ignore[attr-defined]
        handler.x_user_only = auth == "user"  # type: ignore[attr-defined]
        handler.x_app_only = auth == "app"  # type: ignore[attr-defined]
        return handler

    return tag


@_tag("webhooks", auth="any")
async def create_webhook(request: web.Request) -> web.Response:
    state = _state(request)
    body = await _body(request)
    url = body.get("url")
    if not isinstance(url, str) or not url:
        raise errors.invalid_request("The `url` field is required (a string of 1 to 200 characters).")
    problem = url_problem(url, state.config.webhook_url_rules)
    if problem is None and any(c.url == url for c in _configs(state).values()):
        problem = "A webhook with this URL is already registered for this app"
    if problem is None:
        problem = await _crc(request, state, url)
    if problem is not None:
        raise errors.invalid_request(problem, {"url": [url]})
    config = WebhookConfig(id=state.new_id(), url=url, created_at=state.now())
    _configs(state)[config.id] = config
    # The spec's WebhookConfigCreateResponse is the config itself (no `data` wrapper).
    return _json(config.render())


@_tag("webhooks", auth="app")
async def list_webhooks(request: web.Request) -> web.Response:
    state = _state(request)
    views.parse_list(request.query, "webhook_config.fields", WEBHOOK_CONFIG_FIELDS)
    configs = [c.render() for c in _configs(state).values()]
    if not configs:
        return _json({"meta": {"result_count": 0}})
    return _json({"data": configs, "meta": {"result_count": len(configs)}})


@_tag("webhooks", auth="any")
async def validate_webhook(request: web.Request) -> web.Response:
    state = _state(request)
    config = _config_or_404(state, request.match_info["webhook_id"])
    config.valid = await _crc(request, state, config.url) is None
    _refresh_delivery(state)
    return _json({"data": {"attempted": True}})


@_tag("webhooks", auth="any")
async def delete_webhook(request: web.Request) -> web.Response:
    state = _state(request)
    config = _config_or_404(state, request.match_info["webhook_id"])
    del _configs(state)[config.id]
    state.webhook_subscriptions.pop(config.id, None)
    _refresh_delivery(state)
    return _json({"data": {"deleted": True}})


@_tag("account_activity_subscriptions", auth="user")
async def create_subscription(request: web.Request) -> web.Response:
    state = _state(request)
    config = _config_or_404(state, request.match_info["webhook_id"])
    await _body(request)  # SubscriptionsCreateRequest: a JSON object
    if not config.valid:
        raise errors.invalid_request(
            f"Webhook {config.id} is not valid (it failed its last CRC check); fix the endpoint and "
            "re-validate it with PUT /2/webhooks/:webhook_id",
            {"webhook_id": [config.id]},
        )
    subscribed = state.webhook_subscriptions.setdefault(config.id, set())
    if state.brand.id in subscribed:
        raise errors.problem(
            409, "Conflict", "The user is already subscribed to this webhook.", _PROBLEMS + "conflict"
        )
    subscribed.add(state.brand.id)
    _refresh_delivery(state)
    return _json({"data": {"subscribed": True}})


@_tag("account_activity_subscriptions", auth="user")
async def check_subscription(request: web.Request) -> web.Response:
    state = _state(request)
    config = _config_or_404(state, request.match_info["webhook_id"])
    return _json({"data": {"subscribed": state.brand.id in state.webhook_subscriptions.get(config.id, set())}})


@_tag("account_activity_subscriptions", auth="app")
async def list_subscriptions(request: web.Request) -> web.Response:
    state = _state(request)
    config = _config_or_404(state, request.match_info["webhook_id"])
    users = sorted(state.webhook_subscriptions.get(config.id, set()))
    return _json(
        {
            "data": {
                "application_id": stable_user_id("app:" + state.config.consumer_key),
                "webhook_id": config.id,
                "webhook_url": config.url,
                "subscriptions": [{"user_id": u} for u in users],
            }
        }
    )


@_tag("account_activity_subscriptions", auth="app")
async def delete_subscription(request: web.Request) -> web.Response:
    state = _state(request)
    config = _config_or_404(state, request.match_info["webhook_id"])
    user_id = views.parse_path_id(request.match_info["user_id"], "user_id")
    subscribed = state.webhook_subscriptions.get(config.id, set())
    if user_id not in subscribed:
        raise errors.problem(
            404,
            "Not Found Error",
            f"User {user_id} is not subscribed to webhook {config.id}.",
        )
    subscribed.discard(user_id)
    _refresh_delivery(state)
    return _json({"data": {"subscribed": False}})


def add_account_activity_routes(api: web.Application) -> None:
    """Register the webhook and Account Activity routes on the ``/2`` sub-application."""
    api.router.add_get("/webhooks", list_webhooks)
    api.router.add_post("/webhooks", create_webhook)
    api.router.add_put("/webhooks/{webhook_id}", validate_webhook)
    api.router.add_delete("/webhooks/{webhook_id}", delete_webhook)
    base = "/account_activity/webhooks/{webhook_id}/subscriptions"
    api.router.add_get(base + "/all", check_subscription)
    api.router.add_post(base + "/all", create_subscription)
    api.router.add_get(base + "/all/list", list_subscriptions)
    api.router.add_delete(base + "/{user_id}/all", delete_subscription)
