"""NLUClient against real HTTP servers that misbehave the ways production ones do.

Each fake is a real aiohttp server on 127.0.0.1; the client is the real one.  What the bot relies
on: every failure surfaces as NLUUnavailable or NLUBadResponse (never a raw httpx error), retries
are bounded, and the messages name the URL and the fix.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from nlu.client import NLUBadResponse, NLUClient, NLUError, NLUUnavailable

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

RASA_PARSE = {
    "text": "my order AB-12345 is late",
    "intent": {"name": "order_problem", "confidence": 0.91},
    "entities": [{"entity": "order_id", "value": "AB-12345", "start": 9, "end": 17, "extractor": "x"}],
    "intent_ranking": [{"name": "order_problem", "confidence": 0.91}, {"name": "greet", "confidence": 0.05}],
}


class Hits:
    def __init__(self) -> None:
        self.count = 0


@asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[tuple[str, Hits]]:
    hits = Hits()

    async def counting(request: web.Request) -> web.StreamResponse:
        hits.count += 1
        return await handler(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", counting)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", hits
    finally:
        await runner.cleanup()


def client_for(url: str, *, timeout_s: float = 2.0, retries: int = 2) -> NLUClient:
    return NLUClient(url, timeout_s=timeout_s, retries=retries)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there any more: connection refused


async def test_parse_returns_what_the_model_said_and_no_routing() -> None:
    async def ok(request: web.Request) -> web.Response:
        assert request.path == "/model/parse"
        assert (await request.json())["text"] == "my order AB-12345 is late"
        return web.json_response(RASA_PARSE)

    async with serve(ok) as (url, _), client_for(url) as client:
        result = await client.parse("my order AB-12345 is late")
    assert result.intent == "order_problem"
    # Category, queue and priority are the brand's routing policy (bot/taxonomy.py), not the model's answer.
    assert set(result.as_dict()) == {"text", "intent", "confidence", "entities", "intent_ranking"}
    assert result.confidence == pytest.approx(0.91)
    assert [(e.entity, e.value, e.start, e.end) for e in result.entities] == [("order_id", "AB-12345", 9, 17)]
    assert [r.name for r in result.intent_ranking] == ["order_problem", "greet"]
    assert result.text == "my order AB-12345 is late"


async def test_the_same_entity_from_two_extractors_is_reported_once() -> None:
    email = {"entity": "email", "value": "jo@example.com", "start": 3, "end": 17}

    async def twice(_: web.Request) -> web.Response:
        entities = [
            {**email, "extractor": "RegexEntityExtractor"},
            {**email, "extractor": "CRFEntityExtractor"},
        ]
        return web.json_response({**RASA_PARSE, "entities": entities})

    async with serve(twice) as (url, _), client_for(url) as client:
        result = await client.parse("at jo@example.com")
    assert [(e.entity, e.value) for e in result.entities] == [("email", "jo@example.com")]


async def test_unknown_intent_is_returned_as_is_not_an_error() -> None:
    async def unknown(_: web.Request) -> web.Response:
        return web.json_response({**RASA_PARSE, "intent": {"name": "nlu_fallback", "confidence": 0.2}})

    async with serve(unknown) as (url, _), client_for(url) as client:
        result = await client.parse("???")
    assert (result.intent, result.confidence) == ("nlu_fallback", 0.2)


async def test_stopped_server_raises_unavailable_after_bounded_retries() -> None:
    async def ok(_: web.Request) -> web.Response:
        return web.json_response(RASA_PARSE)

    async with serve(ok) as (url, _), client_for(url) as client:
        assert (await client.parse("my order AB-12345 is late")).intent == "order_problem"
    # the server is stopped now: connection refused
    async with client_for(url, retries=2) as client:
        with pytest.raises(NLUUnavailable) as caught:
            await client.parse("hello")
    assert caught.value.attempts == 3
    message = str(caught.value)
    assert url in message and "frontdesk nlu serve" in message and "FRONTDESK_NLU_URL" in message


async def test_slow_server_times_out_as_unavailable() -> None:
    release = asyncio.Event()

    async def slow(_: web.Request) -> web.Response:
        await asyncio.wait_for(release.wait(), 30)
        return web.json_response(RASA_PARSE)

    async with serve(slow) as (url, hits):
        try:
            async with client_for(url, timeout_s=0.2, retries=1) as client:
                with pytest.raises(NLUUnavailable) as caught:
                    await client.parse("hello")
        finally:
            release.set()
    assert hits.count == 2
    assert "no answer within 0.2s" in str(caught.value)


async def test_http_500_is_retried_then_unavailable() -> None:
    async def boom(_: web.Request) -> web.Response:
        return web.Response(status=500, text="Internal Server Error")

    async with serve(boom) as (url, hits), client_for(url, retries=2) as client:
        with pytest.raises(NLUUnavailable) as caught:
            await client.parse("hello")
    assert hits.count == 3
    assert "HTTP 500" in str(caught.value)


async def test_recovers_when_a_retry_succeeds() -> None:
    async def flaky(_: web.Request) -> web.Response:
        flaky.calls += 1  # type: ignore[attr-defined]
        if flaky.calls == 1:  # type: ignore[attr-defined]
            return web.Response(status=503, text="starting")
        return web.json_response(RASA_PARSE)

    flaky.calls = 0  # type: ignore[attr-defined]
    async with serve(flaky) as (url, hits), client_for(url, retries=2) as client:
        result = await client.parse("my order AB-12345 is late")
    assert result.intent == "order_problem" and hits.count == 2


async def test_html_error_page_behind_a_proxy_is_retried_then_unavailable() -> None:
    async def gateway(_: web.Request) -> web.Response:
        return web.Response(
            status=502, text="<html><body><h1>502 Bad Gateway</h1></body></html>", content_type="text/html"
        )

    async with serve(gateway) as (url, hits), client_for(url, retries=1) as client:
        with pytest.raises(NLUUnavailable) as caught:
            await client.parse("hello")
    assert hits.count == 2 and "502" in str(caught.value)


async def test_html_garbage_with_200_is_a_bad_response() -> None:
    async def page(_: web.Request) -> web.Response:
        return web.Response(text="<html><body>Welcome to nginx!</body></html>", content_type="text/html")

    async with serve(page) as (url, hits), client_for(url, retries=2) as client:
        with pytest.raises(NLUBadResponse) as caught:
            await client.parse("hello")
    assert hits.count == 1, "a deterministic wrong answer is not retried"
    assert "non-JSON" in str(caught.value) and url in str(caught.value)


@pytest.mark.parametrize(
    "body",
    [
        {"text": "hello"},  # no intent at all
        {"intent": {"name": "greet"}},  # no confidence
        {"intent": {"name": "greet", "confidence": "very"}},
        {
            "intent": {"name": "greet", "confidence": 0.9},
            "entities": [{"value": "x"}],
        },  # entity without a name
        ["not", "an", "object"],
    ],
)
async def test_json_that_is_not_a_rasa_parse_is_a_bad_response(body: object) -> None:
    async def odd(_: web.Request) -> web.Response:
        return web.json_response(body)

    async with serve(odd) as (url, _), client_for(url) as client:
        with pytest.raises(NLUBadResponse):
            await client.parse("hello")


async def test_404_means_wrong_url_or_api_not_enabled() -> None:
    async def missing(_: web.Request) -> web.Response:
        return web.Response(status=404, text="not found")

    async with serve(missing) as (url, hits), client_for(url) as client:
        with pytest.raises(NLUBadResponse) as caught:
            await client.parse("hello")
    assert hits.count == 1 and "--enable-api" in str(caught.value)


async def test_all_failures_share_one_base_class_for_the_bot_to_catch() -> None:
    async with client_for(closed_port_url(), retries=0) as client:
        with pytest.raises(NLUError):
            await client.status()
