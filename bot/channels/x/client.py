"""The one place that builds tweepy's AsyncClient, and the one seam that points it at another host.

tweepy 4.17 hard-codes ``https://api.twitter.com`` in ``AsyncClient.request()``.  When
``FRONTDESK_X_API_BASE`` is set (the sandbox emulator, a recording proxy), the client is given a session
whose ``request()`` swaps that origin for the configured base; nothing else about the request changes, so
OAuth 1.0a signatures stay computed over the public URL exactly as X expects them.  Which host is used is
decided by configuration only.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from tweepy.asynchronous import AsyncClient
from yarl import URL

from bot.channels.x.usage import UsageMeter
from frontdesk.core.settings import (
    SANDBOX_X_ACCESS_TOKEN,
    SANDBOX_X_ACCESS_TOKEN_SECRET,
    SANDBOX_X_BEARER_TOKEN,
    SANDBOX_X_CONSUMER_KEY,
    SANDBOX_X_CONSUMER_SECRET,
    Settings,
)

log = logging.getLogger(__name__)

TWEEPY_ORIGIN = "https://api.twitter.com"
_KEY_FIELDS = ("x_consumer_key", "x_consumer_secret", "x_access_token", "x_access_token_secret")


class XClientConfigError(ValueError):
    """The X credentials or base URL in the settings cannot make a working client."""


class RedirectingSession:
    """Just enough of ``aiohttp.ClientSession`` for tweepy: ``request()`` as an async context manager.

    The real session is created lazily inside the event loop that first uses it and is closed by
    ``close()``.  With ``base_url`` None it is a plain persistent session to X.  Every answer is shown to
    ``meter`` (what X bills is counted here, once, for every caller of the client).
    """

    def __init__(self, base_url: str | None = None, *, timeout_s: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/") if base_url else None
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self.meter = UsageMeter()

    def _real(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    def rewrite(self, url: str | URL) -> str | URL:
        if self.base_url is None:
            return url
        encoded = isinstance(url, URL)
        text = str(url)
        if not text.startswith(TWEEPY_ORIGIN + "/"):
            return url
        rewritten = self.base_url + text[len(TWEEPY_ORIGIN) :]
        return URL(rewritten, encoded=True) if encoded else rewritten

    def request(self, method: str, url: str | URL, **kwargs: Any) -> Any:
        return self._metered(method, url, kwargs)

    @asynccontextmanager
    async def _metered(self, method: str, url: str | URL, kwargs: dict[str, Any]) -> AsyncIterator[Any]:
        path = URL(str(url), encoded=isinstance(url, URL)).path
        user_auth = str((kwargs.get("headers") or {}).get("Authorization", "")).startswith("OAuth ")
        status: int | None = None  # None: no answer (refused connection, timeout)
        body: bytes | None = None
        try:
            async with self._real().request(method, self.rewrite(url), **kwargs) as response:
                status = response.status
                try:
                    yield response
                finally:
                    # tweepy reads the whole body inside the `async with`; one not read counts no items.
                    body = getattr(response, "_body", None)
        finally:
            self._observe(method, path, status, body, kwargs, user_auth)

    def _observe(
        self, method: str, path: str, status: int | None, body: bytes | None, kwargs: dict[str, Any], user_auth: bool
    ) -> None:
        try:
            self.meter.observe(method, path, status, body, kwargs.get("json"), user_auth=user_auth)
        except Exception:  # counting must never break a request
            log.exception("X usage: could not count a %s %s answer", method, path)

    @property
    def closed(self) -> bool:
        return self._session is None or self._session.closed

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _secret(settings: Settings, name: str) -> str | None:
    value = getattr(settings, name)
    return value.get_secret_value() if value is not None else None


def _credentials(settings: Settings) -> dict[str, str | None]:
    configured = {name: _secret(settings, name) for name in _KEY_FIELDS}
    bearer = _secret(settings, "x_bearer_token")
    if all(configured.values()):
        return {
            "consumer_key": configured["x_consumer_key"],
            "consumer_secret": configured["x_consumer_secret"],
            "access_token": configured["x_access_token"],
            "access_token_secret": configured["x_access_token_secret"],
            "bearer_token": bearer,
        }
    missing = [name for name, value in configured.items() if not value]
    if len(missing) < len(_KEY_FIELDS):
        env = ", ".join("FRONTDESK_" + name.upper() for name in missing)
        raise XClientConfigError(
            f"Incomplete X credentials: also set {env} (or unset all four for the sandbox)."
        )
    if not settings.x_api_base:
        raise XClientConfigError(
            "No X credentials configured. Set FRONTDESK_X_CONSUMER_KEY, FRONTDESK_X_CONSUMER_SECRET, "
            "FRONTDESK_X_ACCESS_TOKEN and FRONTDESK_X_ACCESS_TOKEN_SECRET (plus FRONTDESK_X_BEARER_TOKEN), "
            "or point FRONTDESK_X_API_BASE at the sandbox (`frontdesk sandbox`, e.g. http://127.0.0.1:8081)."
        )
    # The sandbox: its documented credentials, which the emulator accepts by default.
    return {
        "consumer_key": SANDBOX_X_CONSUMER_KEY,
        "consumer_secret": SANDBOX_X_CONSUMER_SECRET,
        "access_token": SANDBOX_X_ACCESS_TOKEN,
        "access_token_secret": SANDBOX_X_ACCESS_TOKEN_SECRET,
        "bearer_token": bearer or SANDBOX_X_BEARER_TOKEN,
    }


def make_x_client(settings: Settings) -> AsyncClient:
    """A tweepy AsyncClient for the configured X account, talking to ``settings.x_api_base`` if set.

    The client owns a persistent session; release it with ``await close_x_client(client)`` (or use
    ``open_x_client``).  ``wait_on_rate_limit`` stays off: tweepy's own retry crashes with user auth,
    so callers handle ``tweepy.TooManyRequests`` (its ``reset_time``) themselves.
    """
    base = settings.x_api_base.strip()
    if base and not base.startswith(("http://", "https://")):
        raise XClientConfigError(f"FRONTDESK_X_API_BASE must be an http(s) URL, got {base!r}")
    client = AsyncClient(**_credentials(settings), wait_on_rate_limit=False)
    client.session = RedirectingSession(base or None)
    client.frontdesk_owned_reads = settings.x_owned_reads  # read by api.uses_user_auth_for_reads
    return client


def usage_meter(client: AsyncClient) -> UsageMeter | None:
    """The meter counting `client`'s traffic (None for a client not built by `make_x_client`)."""
    session = client.session
    return session.meter if isinstance(session, RedirectingSession) else None


async def close_x_client(client: AsyncClient) -> None:
    session = client.session
    if session is not None:
        await session.close()


@asynccontextmanager
async def open_x_client(settings: Settings) -> AsyncIterator[AsyncClient]:
    client = make_x_client(settings)
    try:
        yield client
    finally:
        await close_x_client(client)


__all__ = [
    "RedirectingSession",
    "XClientConfigError",
    "close_x_client",
    "make_x_client",
    "open_x_client",
    "usage_meter",
]
