"""What every HTTP app Frontdesk serves does before and after its routes: bounded request bodies, security
headers, trusted Host names, and paths hidden outside sandbox mode.

All of it is plain ASGI middleware, so it runs before FastAPI reads a body or solves a dependency (an
unauthenticated client must not be able to make the process buffer 200 MB), and it composes: the desk
installs it on its own app, and `frontdesk run` installs it again on the process app the desk is mounted
in.  Headers are only added when a response does not set them (so /docs can send its own CSP), and
limits and host checks are idempotent.

`install_web_security(app, settings)` is the one entry point.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Iterable
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from frontdesk.core.settings import Settings

log = logging.getLogger(__name__)

WEBHOOK_PREFIX = "/webhooks/"

# The desk's pages load their scripts, styles and fonts from /static only; nothing may frame them.  Inline
# script is never allowed (htmx's own eval is off: `allowEval` in base.html's htmx-config).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
)


def install_web_security(app: Any, settings: Settings, *, hidden_paths: Iterable[str] = ()) -> None:
    """Add the middleware to a Starlette/FastAPI `app` (call it last: the last added runs first).

    `hidden_paths` answer 404 whatever the app routes there (e.g. /metrics when it is not public).
    """
    hidden = frozenset(hidden_paths)
    if hidden:
        app.add_middleware(HiddenPaths, paths=hidden)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(
        BodyLimit,
        max_body_bytes=settings.http_max_body_bytes,
        webhook_max_body_bytes=settings.webhook_max_body_bytes,
    )
    hosts = settings.trusted_host_names
    if hosts != ["*"]:
        app.add_middleware(TrustedHosts, allowed=hosts)
    elif not settings.sandbox_mode:
        _warn_any_host()


@lru_cache(maxsize=1)
def _warn_any_host() -> None:
    log.warning(
        "http: FRONTDESK_TRUSTED_HOSTS is not set, so any Host header is answered; set it to the desk's "
        "public name(s), e.g. desk.example.com"
    )


# --- request bodies ---------------------------------------------------------------------------------------


class RequestBodyTooLarge(HTTPException):
    """Raised from `receive` once a streamed body passes the limit.

    An HTTPException, so FastAPI re-raises it unchanged from its body parsing (it turns other errors into
    400) and Starlette's handler answers it; `BodyLimit` answers it itself if it gets that far.
    """

    def __init__(self, limit: int, setting: str) -> None:
        super().__init__(413, detail=_too_large_detail(limit, setting))


def _too_large_detail(limit: int, setting: str) -> str:
    return f"request body larger than {limit} bytes (the server's limit, {setting})"


class BodyLimit:
    """413 for a request body over the limit, before the app reads it.

    A declared Content-Length over the limit is refused without calling the app.  Without one (chunked),
    or when the client sends more than it declared, the bytes are counted as the app reads them and
    reading stops at the limit: the app never holds more than `limit` bytes of one body.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, webhook_max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.webhook_max_body_bytes = webhook_max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith(WEBHOOK_PREFIX):
            limit, setting = self.webhook_max_body_bytes, "FRONTDESK_WEBHOOK_MAX_BODY_BYTES"
        else:
            limit, setting = self.max_body_bytes, "FRONTDESK_HTTP_MAX_BODY_BYTES"

        declared = Headers(scope=scope).getlist("content-length")
        try:
            lengths = {int(value) for value in declared}
        except ValueError:
            await _answer(send, 400, "Content-Length is not a number")
            return
        if len(lengths) > 1 or any(n < 0 for n in lengths):
            await _answer(send, 400, "conflicting or negative Content-Length")
            return
        if lengths and lengths.pop() > limit:
            log.info("http: refused a %s-byte body for %s (limit %d)", declared[0], scope["path"], limit)
            await _answer(send, 413, _too_large_detail(limit, setting))
            return

        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    log.info("http: stopped reading a body past %d bytes for %s", limit, scope["path"])
                    raise RequestBodyTooLarge(limit, setting)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except RequestBodyTooLarge as exc:
            if started:
                raise
            await _answer(send, 413, str(exc.detail))


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    # No `Connection: close`: closing with the rest of the body unread makes the kernel reset the connection,
    # and the client may lose this answer with it.  uvicorn reads and discards the rest instead.
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(name.encode(), value.encode()) for name, value in SECURITY_HEADERS]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# --- response headers -------------------------------------------------------------------------------------


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every response that does not set them itself, and makes a redirect to this
    same host path-only, so that no Location (Starlette's trailing-slash redirects included) echoes the
    Host header a client sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = Headers(scope=scope).get("host", "")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS:
                    if name not in headers:
                        headers[name] = value
                location = headers.get("location")
                if location:
                    headers["location"] = path_only(location, host)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def path_only(url: str, host: str) -> str:
    """`url` without scheme and host when it points at `host` (the request's own), else unchanged."""
    parts = urlsplit(url)
    if not parts.netloc or parts.netloc.lower() != host.lower():
        return url
    return urlunsplit(("", "", parts.path or "/", parts.query, parts.fragment))


# --- Host names -------------------------------------------------------------------------------------------


class TrustedHosts:
    """400 for a Host header that is not one of `allowed` (`*.example.com` matches any subdomain).

    Like Starlette's TrustedHostMiddleware, but an IP address always passes: Kubernetes probes and
    Prometheus address a pod by IP, and an IP literal is not what DNS rebinding or a forged name can use.
    It never redirects (Starlette's www-redirect builds its target from the request).
    """

    def __init__(self, app: ASGIApp, *, allowed: list[str]) -> None:
        self.app = app
        self.exact = {h for h in allowed if not h.startswith("*.")}
        self.suffixes = tuple(h[1:] for h in allowed if h.startswith("*."))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self._trusted(Headers(scope=scope).get("host", "")):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await _answer(send, 400, "unknown Host")

    def _trusted(self, host_header: str) -> bool:
        host = _host_name(host_header)
        if not host:
            return False
        if host in self.exact or host.endswith(self.suffixes):
            return True
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return False
        return True


def _host_name(host_header: str) -> str:
    """The name in a Host header: lower-case, without the port; IPv6 literals without their brackets."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else ""
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


# --- hidden paths -----------------------------------------------------------------------------------------


class HiddenPaths:
    """404 for `paths` (exact, or with a trailing slash), whatever is routed there."""

    def __init__(self, app: ASGIApp, *, paths: frozenset[str]) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].rstrip("/") in self.paths:
            await _answer(send, 404, "Not Found")
            return
        await self.app(scope, receive, send)
