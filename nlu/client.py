"""The app's client for the Rasa NLU server: ``POST /model/parse`` turned into a ``ParseResult``.

A ``ParseResult`` is what the model said (intent, confidence, entities, the ranking) and nothing more:
what an intent means for routing (category, queue, priority) is the brand's taxonomy, read by the
router (``bot/taxonomy.py``, ``bot/router.py``).

Failures are typed so that the bot can escalate a message to a human instead of crashing:
``NLUUnavailable`` when the server is down, slow or failing (after bounded retries), ``NLUBadResponse``
when it answers something that is not a Rasa parse.  Low confidence is not an error: the router
compares ``ParseResult.confidence`` with ``settings.nlu_confidence_threshold``.

The transport is aiohttp rather than httpx: every message makes one parse request, and in the bot's
profile httpx's request machinery (anyio streams, pool bookkeeping) cost more CPU than all the
store's statements for that message; aiohttp's client does the same request for about a fifth of it.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp

from frontdesk.core.settings import Settings
from nlu.auth import nlu_auth_token


class NLUError(Exception):
    """The NLU service could not classify a message; the message names the URL and the fix."""

    def __init__(self, message: str, *, url: str, attempts: int = 1) -> None:
        super().__init__(message)
        self.url = url
        self.attempts = attempts


class NLUUnavailable(NLUError):
    """Connection refused, timeout or 5xx, still failing after the retries."""


class NLUBadResponse(NLUError):
    """The server answered, but not with a Rasa parse (wrong URL, API not enabled, garbage)."""


class NLUUnauthorized(NLUBadResponse):
    """Rasa refused the auth token (HTTP 401/403): the client's and the server's tokens differ."""


@dataclass(frozen=True)
class Entity:
    entity: str
    value: Any
    start: int | None
    end: int | None


@dataclass(frozen=True)
class IntentScore:
    name: str
    confidence: float


@dataclass(frozen=True)
class ParseResult:
    text: str
    intent: str | None
    confidence: float
    entities: list[Entity] = field(default_factory=list)
    intent_ranking: list[IntentScore] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_RETRY_BACKOFF_S = (0.1, 0.3, 0.8, 1.5)


class NLUClient:
    """Async client for one Rasa server; share one instance (it keeps a connection pool)."""

    def __init__(
        self,
        base_url: str,
        timeout_s: float = 5.0,
        retries: int = 2,
        *,
        auth_token: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.retries = max(0, retries)
        # Rasa's token auth reads the `token` query parameter; it is kept out of every URL this class prints.
        self._auth_params = {"token": auth_token} if auth_token else None
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._http: aiohttp.ClientSession | None = None  # opened on first use, inside the running loop
        self._http_loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_settings(cls, settings: Settings, base_url: str | None = None) -> NLUClient:
        """A client for ``base_url`` (default ``settings.nlu_url``).

        It sends ``nlu_auth_token(settings)``, the token ``start_nlu_server`` gives Rasa.
        """
        url = base_url or settings.nlu_url
        if not url:
            raise ValueError("no NLU URL: set FRONTDESK_NLU_URL or start one with running_nlu_server()")
        return cls(
            url,
            timeout_s=settings.nlu_timeout_s,
            retries=settings.nlu_retries,
            auth_token=nlu_auth_token(settings),
        )

    async def __aenter__(self) -> NLUClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _session(self) -> aiohttp.ClientSession:
        # A session belongs to the loop it was opened in; tests and CLIs may run several loops in turn.
        loop = asyncio.get_running_loop()
        if self._http is None or self._http.closed or self._http_loop is not loop:
            self._http = aiohttp.ClientSession(timeout=self._timeout, raise_for_status=False)
            self._http_loop = loop
        return self._http

    async def parse(self, text: str) -> ParseResult:
        body = await self._request("POST", "/model/parse", json={"text": text})
        return self._to_result(text, body)

    async def status(self) -> dict[str, Any]:
        """Rasa's ``/status``: which model is loaded (``model_file``, ``model_id``)."""
        body = await self._request("GET", "/status")
        if "model_file" not in body:
            raise NLUBadResponse(
                f"{self.base_url}/status answered without 'model_file': {_excerpt(body)}; "
                "is FRONTDESK_NLU_URL a Rasa server?",
                url=self.base_url,
            )
        return body

    async def load_model(self, model_file: str, *, timeout_s: float = 180.0) -> None:
        """Rasa's ``PUT /model``: swap in another model file (a path as Rasa's machine sees it).

        Rasa loads the new model, then replaces the old one: parses sent meanwhile wait, none fail.
        Not retried: a model that failed to load once fails again.
        """
        url = f"{self.base_url}/model"
        request = self._session().put(
            url,
            params=self._auth_params,
            json={"model_file": model_file},
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        )
        try:
            async with request as response:
                status, raw = response.status, await response.read()
        except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
            raise NLUUnavailable(
                f"{url}: loading {model_file} did not finish ({type(exc).__name__}); "
                "the server keeps its old model: restart it to load the new one",
                url=url,
            ) from None
        if status in (401, 403):
            raise NLUUnauthorized(
                f"{url} refused the NLU auth token (HTTP {status}): set FRONTDESK_NLU_AUTH_TOKEN to the "
                "token Rasa was started with",
                url=url,
            )
        if status >= 300:
            raise NLUBadResponse(
                f"{url} could not load {model_file} (HTTP {status}: "
                f"{_excerpt(raw.decode('utf-8', errors='replace'))}); is the path visible to the Rasa server?",
                url=url,
            )

    async def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        attempts = self.retries + 1
        last_problem = ""
        for attempt in range(1, attempts + 1):
            try:
                request = self._session().request(method, url, params=self._auth_params, **kwargs)
                async with request as response:
                    status, content_type, raw = response.status, response.content_type, await response.read()
            except asyncio.TimeoutError:
                last_problem = f"no answer within {self.timeout_s:g}s"
            except aiohttp.ClientError as exc:
                last_problem = f"cannot connect ({type(exc).__name__}: {exc or 'no details'})"
            else:
                text = raw.decode("utf-8", errors="replace")
                if status >= 500:
                    last_problem = f"HTTP {status}: {_excerpt(text)}"
                elif status == 409:
                    # Rasa's "no model loaded yet": transient while it starts.
                    last_problem = "the server has no model loaded yet"
                elif status in (401, 403):
                    raise NLUUnauthorized(
                        f"{url} refused the NLU auth token (HTTP {status}): set FRONTDESK_NLU_AUTH_TOKEN to "
                        "the token Rasa was started with (`rasa run --auth-token`): one value on both sides",
                        url=url,
                        attempts=attempt,
                    )
                elif status >= 400:
                    raise NLUBadResponse(
                        f"{url} answered HTTP {status}: {_excerpt(text)}; "
                        "check that FRONTDESK_NLU_URL points at `rasa run --enable-api`",
                        url=url,
                        attempts=attempt,
                    )
                else:
                    return _json_object(text, content_type, url, attempt)
            if attempt < attempts:
                await asyncio.sleep(_RETRY_BACKOFF_S[min(attempt - 1, len(_RETRY_BACKOFF_S) - 1)])
        raise NLUUnavailable(
            f"NLU server {url} unavailable after {attempts} attempt(s): {last_problem}. "
            "Start it with `frontdesk nlu serve` or set FRONTDESK_NLU_URL to a running one",
            url=url,
            attempts=attempts,
        )

    def _to_result(self, text: str, body: dict[str, Any]) -> ParseResult:
        url = f"{self.base_url}/model/parse"
        intent = body.get("intent")
        if not isinstance(intent, dict) or "confidence" not in intent:
            raise NLUBadResponse(
                f"{url} answered without an intent: {_excerpt(body)}; is this a Rasa NLU server?",
                url=url,
            )
        try:
            name = intent.get("name")
            confidence = float(intent["confidence"])
            entities: list[Entity] = []
            for e in body.get("entities") or []:
                entity = Entity(
                    entity=str(e["entity"]), value=e.get("value"), start=e.get("start"), end=e.get("end")
                )
                if entity not in entities:  # a regex and a CRF extractor often report the same span
                    entities.append(entity)
            ranking = [
                IntentScore(name=str(r["name"]), confidence=float(r["confidence"]))
                for r in body.get("intent_ranking") or []
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise NLUBadResponse(
                f"{url} answered a malformed parse ({exc!r}): {_excerpt(body)}", url=url
            ) from None
        return ParseResult(
            text=text,
            intent=name,
            confidence=confidence,
            entities=entities,
            intent_ranking=ranking,
        )


def _json_object(text: str, content_type: str, url: str, attempt: int) -> dict[str, Any]:
    try:
        body = json.loads(text)
    except ValueError:
        raise NLUBadResponse(
            f"{url} answered non-JSON ({content_type or 'no content-type'}): "
            f"{_excerpt(text)}; check that FRONTDESK_NLU_URL points at a Rasa server",
            url=url,
            attempts=attempt,
        ) from None
    if not isinstance(body, dict):
        raise NLUBadResponse(f"{url} answered JSON that is not an object: {_excerpt(body)}", url=url)
    return body


def _excerpt(value: object, limit: int = 160) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
