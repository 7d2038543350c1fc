"""A small async client for the X emulator's control API, for tests, benches and scripted demos.

It speaks HTTP like any outside tool would (curl works just as well), so it also works against a
sandbox running in another process (`frontdesk sandbox`).
"""

from __future__ import annotations

from typing import Any, Self

import aiohttp


class SandboxControlError(RuntimeError):
    pass


class XSandboxControl:
    """``async with XSandboxControl(base_url) as ctl: await ctl.mention("alice", "help")``."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        if self._session is None:
            raise SandboxControlError("use `async with XSandboxControl(url) as ctl:` before calling it")
        async with self._session.request(method, f"{self.base_url}/_sandbox/{path}", json=body) as response:
            payload = await response.json()
            if response.status >= 400:
                raise SandboxControlError(f"{method} /_sandbox/{path}: HTTP {response.status}: {payload}")
            return payload

    async def mention(
        self,
        author: str,
        text: str,
        in_reply_to: str | None = None,
        *,
        edit_of: str | None = None,
        quote_of: str | None = None,
        mention_brand: bool = True,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"author": author, "text": text}
        for name, value in (("in_reply_to", in_reply_to), ("edit_of", edit_of), ("quote_of", quote_of)):
            if value is not None:
                body[name] = value
        if not mention_brand:
            body["mention_brand"] = False
        return await self._call("POST", "mentions", body)

    async def post(self, author: str, text: str) -> dict[str, Any]:
        """Someone posts in public without addressing the brand (only recent search finds it)."""
        return await self._call("POST", "posts", {"author": author, "text": text})

    async def delete_tweet(self, tweet_id: str) -> dict[str, Any]:
        """The customer deletes their post (and every version of it)."""
        return await self._call("DELETE", f"tweets/{tweet_id}")

    async def dm(self, sender: str, text: str, *, index_delay_s: float | None = None) -> dict[str, Any]:
        """A customer DMs the brand; with `index_delay_s`, X lists it only that many seconds later."""
        body: dict[str, Any] = {"sender": sender, "text": text}
        if index_delay_s is not None:
            body["index_delay_s"] = index_delay_s
        return await self._call("POST", "dms", body)

    async def sent(self) -> dict[str, Any]:
        return await self._call("GET", "sent")

    async def users(self) -> dict[str, Any]:
        return await self._call("GET", "users")

    async def customer(self, username: str, **fields: Any) -> dict[str, Any]:
        """Create or change a customer: ``name``, ``accepts_dms`` (False: the brand's DMs get 403)."""
        return await self._call("POST", "users", {"username": username, **fields})

    async def fault(
        self,
        status: int | None = None,
        count: int | None = None,
        path_prefix: str = "/2/",
        latency_ms: int = 0,
        method: str | None = None,
        after_commit: bool = False,
    ) -> dict[str, Any]:
        """Answer matching requests with `status`; `after_commit`: only after X did the work (a 5xx)."""
        body: dict[str, Any] = {"path_prefix": path_prefix, "latency_ms": latency_ms}
        if after_commit:
            body["after_commit"] = True
        if status is not None:
            body["status"] = status
        if count is not None:
            body["count"] = count
        if method is not None:
            body["method"] = method
        return await self._call("POST", "faults", body)

    async def clear_faults(self) -> dict[str, Any]:
        return await self._call("DELETE", "faults")

    async def config(self, **settings: Any) -> dict[str, Any]:
        return await self._call("POST", "config", settings)

    async def reset(self) -> dict[str, Any]:
        return await self._call("POST", "reset")

    async def webhook(self, url: str | None, *, crc: bool = True) -> dict[str, Any]:
        return await self._call("POST", "webhook", {"url": url, "crc": crc})

    async def webhook_status(self) -> dict[str, Any]:
        return await self._call("GET", "webhook")
