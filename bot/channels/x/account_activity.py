"""Registering the desk's webhook with X's v2 Account Activity API, and reading back how it stands.

X pushes the brand's mentions and DMs to a webhook once (1) the app has a webhook config
(``POST /2/webhooks``; X runs its CRC against the URL first and refuses it if the answer is wrong) and
(2) the brand's account is subscribed to it (``POST /2/account_activity/webhooks/:id/subscriptions/all``
with the brand's user token).  X re-runs the CRC every hour; a webhook that fails it is marked
``valid: false`` and gets nothing until it passes again (``PUT /2/webhooks/:id``).

Auth follows the OpenAPI spec: listing webhooks and subscriptions, and deleting a subscription, take the
app's bearer token; subscribing and checking a subscription take the brand's user token.  All calls go
through the channel's tweepy client (``make_x_client``), so the sandbox seam and the usage meter apply.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import tweepy
from tweepy.asynchronous import AsyncClient

from bot.channels.x.api import CREDENTIALS_HINT, TRANSIENT_ERRORS, api_message

URL_MAX_CHARS = 200  # the spec's WebhookConfigCreateRequest.url maxLength
DESK_WEBHOOK_PATH = "/webhooks/x"
_CRC_HINT = (
    "X could not verify the URL with its CRC check. The desk answers it at "
    f"{DESK_WEBHOOK_PATH} only with FRONTDESK_X_WEBHOOK_ENABLED=true and the same "
    "FRONTDESK_X_CONSUMER_SECRET as this command; check that the URL reaches the desk from the internet "
    "(a GET of the URL with a crc_token query parameter should answer JSON with a response_token)"
)


class WebhookUrlError(ValueError):
    """The URL cannot be an X webhook; the message says what to change."""


class AccountActivityError(RuntimeError):
    """X refused a webhook or subscription request; the message names X's reason and the fix."""


@dataclass(frozen=True)
class WebhookStatus:
    id: str
    url: str
    valid: bool  # passed X's last CRC check
    created_at: str
    subscribed: bool | None  # the brand's account is subscribed (None: could not be checked)

    def describe(self, brand: str | None = None) -> str:
        crc = "valid (passed X's last CRC check)" if self.valid else "INVALID (failed X's last CRC check: no events)"
        who = f"@{brand}" if brand else "the brand's account"
        sub = {True: "subscribed", False: "NOT subscribed", None: "subscription unknown"}[self.subscribed]
        return f"webhook {self.id}  {self.url}\n  CRC: {crc}\n  {who}: {sub}\n  created: {self.created_at}"


def check_webhook_url(url: str, *, sandbox: bool = False) -> str:
    """`url` if X can deliver to it, else WebhookUrlError naming the fix.

    X's requirements (docs.x.com, x-api/webhooks/quickstart): HTTPS, reachable from the internet, no port
    in the URL; the spec caps it at 200 characters.  With the sandbox (`sandbox=True`) local http URLs
    are allowed, since the emulator runs on this machine.
    """
    url = url.strip()
    if len(url) > URL_MAX_CHARS:
        raise WebhookUrlError(f"the URL has {len(url)} characters; X takes at most {URL_MAX_CHARS}")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise WebhookUrlError(
            f"{url!r} is not an absolute URL; give the desk's public address, e.g. https://desk.example.com{DESK_WEBHOOK_PATH}"
        )
    if parts.username or parts.password:
        raise WebhookUrlError("remove the user:password@ part; X sends no credentials (it signs each delivery)")
    if parts.fragment:
        raise WebhookUrlError("remove the #fragment; X calls the URL with a query string only")
    if sandbox:
        return url
    fixes = []  # every change X needs, in one message (not one per attempt)
    if parts.scheme != "https":
        fixes.append("use https:// (X delivers webhooks over HTTPS only: terminate TLS in front of the desk, "
                     "see docs/deploy.md)")
    if parts.port is not None:
        fixes.append(f"remove the port :{parts.port} (X refuses webhook URLs that name a port: serve HTTPS on 443)")
    host = parts.hostname
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    local_name = host == "localhost" or host.endswith((".localhost", ".local", ".internal", ".lan")) or (
        address is None and "." not in host
    )
    if (address is not None and not address.is_global) or local_name:
        fixes.append(f"use the desk's public host name ({host} is not reachable from the internet, and X must "
                     "call it; for local trials point FRONTDESK_X_API_BASE at the sandbox)")
    if fixes:
        raise WebhookUrlError(f"X would refuse {url}: " + "; ".join(fixes))
    return url


def _refusal(error: tweepy.HTTPException, doing: str) -> AccountActivityError:
    status = error.response.status
    reason = api_message(error)
    if status == 401:
        return AccountActivityError(f"X refused the credentials while {doing} ({reason}): {CREDENTIALS_HINT}")
    if status == 403 and "Unsupported Authentication" in str(error):
        return AccountActivityError(f"X refused the token type while {doing} ({reason})")
    if status == 403:
        return AccountActivityError(
            f"X refused {doing} ({reason}): the app needs Account Activity access and the brand's token "
            "read, write and Direct Messages permission (developer console, User authentication settings)"
        )
    if status == 429:
        return AccountActivityError(f"X's rate limit for {doing} is used up ({reason}); try again in 15 minutes")
    return AccountActivityError(f"X refused {doing} ({reason})")


class AccountActivity:
    """The webhook commands' calls to X, on one tweepy client."""

    def __init__(self, client: AsyncClient) -> None:
        if not client.bearer_token:
            raise AccountActivityError(
                "set FRONTDESK_X_BEARER_TOKEN (the app's bearer token): X lists webhooks and their "
                "subscriptions only to the app itself"
            )
        self.client = client

    async def _call(self, method: str, route: str, doing: str, *, user: bool, json: Any = None) -> dict[str, Any]:
        try:
            # tweepy's user-auth signing reads `params`; it must be a dict, not None.
            response = await self.client.request(method, route, params={} if user else None, json=json,
                                                 user_auth=user)
        except tweepy.HTTPException as error:
            raise _refusal(error, doing) from None
        except TRANSIENT_ERRORS as error:
            raise AccountActivityError(f"X did not answer while {doing}: {error or type(error).__name__}") from None
        body = await response.json(content_type=None)
        return body if isinstance(body, dict) else {}

    async def brand(self) -> tuple[str, str]:
        body = await self._call("GET", "/2/users/me", "reading the brand's account", user=True)
        return str(body["data"]["id"]), str(body["data"].get("username") or "")

    async def webhooks(self) -> list[dict[str, Any]]:
        body = await self._call("GET", "/2/webhooks", "listing the app's webhooks", user=False)
        return [w for w in body.get("data") or [] if isinstance(w, dict)]

    async def _subscribed(self, webhook_id: str) -> bool | None:
        try:
            body = await self._call("GET", f"/2/account_activity/webhooks/{webhook_id}/subscriptions/all",
                                    "checking the subscription", user=True)
        except AccountActivityError:
            return None
        return bool((body.get("data") or {}).get("subscribed"))

    async def status(self, *, check: bool = False) -> list[WebhookStatus]:
        """The app's webhooks, each with its CRC validity and whether the brand is subscribed.

        `check`: ask X to run the CRC again first (``PUT /2/webhooks/:id``), so `valid` is current.
        """
        configs = await self.webhooks()
        if check:
            for config in configs:
                await self._call("PUT", f"/2/webhooks/{config['id']}", "re-running the CRC check", user=False)
            configs = await self.webhooks()
        return [
            WebhookStatus(
                id=str(c["id"]),
                url=str(c.get("url", "")),
                valid=bool(c.get("valid")),
                created_at=str(c.get("created_at", "")),
                subscribed=await self._subscribed(str(c["id"])),
            )
            for c in configs
        ]

    async def register(self, url: str) -> WebhookStatus:
        """Register `url` (or reuse the app's webhook with that URL) and subscribe the brand's account."""
        existing = next((c for c in await self.webhooks() if c.get("url") == url), None)
        if existing is None:
            try:
                created = await self._call("POST", "/2/webhooks", "registering the webhook", user=False,
                                           json={"url": url})
            except AccountActivityError as exc:
                crc = "CRC" in str(exc)
                raise AccountActivityError(f"{exc}. {_CRC_HINT}" if crc else str(exc)) from None
            config = created.get("data", created)  # the spec returns the config itself; tolerate `data`
        else:
            config = existing
            if not existing.get("valid"):
                await self._call("PUT", f"/2/webhooks/{existing['id']}", "re-running the CRC check", user=False)
                config = next((c for c in await self.webhooks() if c.get("id") == existing["id"]), existing)
                if not config.get("valid"):
                    raise AccountActivityError(f"webhook {existing['id']} ({url}) still fails X's CRC check. {_CRC_HINT}")
        webhook_id = str(config["id"])
        if not await self._subscribed(webhook_id):
            try:
                await self._call("POST", f"/2/account_activity/webhooks/{webhook_id}/subscriptions/all",
                                 "subscribing the brand's account", user=True, json={})
            except AccountActivityError as exc:
                if "already subscribed" not in str(exc):
                    raise
        (status,) = [s for s in await self.status() if s.id == webhook_id]
        return status

    async def remove(self, webhook_id: str | None = None) -> list[str]:
        """Unsubscribe the brand and delete the app's webhook `webhook_id` (all of them if None)."""
        configs = await self.webhooks()
        if webhook_id is not None:
            configs = [c for c in configs if str(c.get("id")) == webhook_id]
            if not configs:
                raise AccountActivityError(
                    f"the app has no webhook {webhook_id}; `frontdesk x webhook status` lists its webhooks"
                )
        brand_id, _ = await self.brand()
        removed = []
        for config in configs:
            wid = str(config["id"])
            if await self._subscribed(wid):
                await self._call("DELETE", f"/2/account_activity/webhooks/{wid}/subscriptions/{brand_id}/all",
                                 "unsubscribing the brand's account", user=False)
            await self._call("DELETE", f"/2/webhooks/{wid}", "deleting the webhook", user=False)
            removed.append(wid)
        return removed
