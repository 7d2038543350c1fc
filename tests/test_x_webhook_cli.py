"""`frontdesk x webhook register URL | status | remove` against the X emulator's v2 Account Activity API.

The CLI runs in a worker thread (its own event loop, as from a shell) while the emulator and the desk's
real ``/webhooks/x`` endpoint serve on the test's loop: X's CRC on registration is answered by Frontdesk's
own code, and a mention posted afterwards arrives through the webhook.  The emulator's answers are checked
against X's OpenAPI spec (the webhook and Account Activity paths, tests/fixtures/specs), and every 4xx it
models is exercised.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import tweepy
from aiohttp import web
from fastapi import FastAPI
from tweepy.asynchronous import AsyncClient
from typer.testing import CliRunner, Result

from bot.channels.x.account_activity import WebhookUrlError, check_webhook_url
from bot.channels.x.webhook import make_x_webhook_router
from frontdesk.app.cli import app as frontdesk_app
from frontdesk.core.settings import get_settings
from sandbox.server import RunningSandbox
from sandbox.x.control_client import XSandboxControl
from storage.db import Database
from tests.fixtures.x_channel import eventually, inbound_ids, serving, x_settings
from tests.test_x_emulator_openapi import _allof_members, _closed, _validate

SPEC_PATH = Path(__file__).parent / "fixtures" / "specs" / "x-api-v2-account-activity-subset.json"


def _cli_env(sb: RunningSandbox, **extra: str) -> dict[str, str]:
    env = {"FRONTDESK_X_API_BASE": sb.base_url, "FRONTDESK_X_WEBHOOK_ENABLED": "true"}
    env.update(extra)
    return env


async def _cli(env: dict[str, str], *args: str) -> Result:
    """Run `frontdesk ARGS` as a shell would (its own asyncio.run), off this loop so X keeps answering."""
    runner = CliRunner()

    def invoke() -> Result:
        get_settings.cache_clear()  # the settings of this invocation's environment, as a new process reads
        try:
            return runner.invoke(frontdesk_app, list(args), env=env)
        finally:
            get_settings.cache_clear()

    return await asyncio.to_thread(invoke)


def _desk_app(db: Database, sb: RunningSandbox) -> FastAPI:
    app = FastAPI()
    app.include_router(make_x_webhook_router(db, x_settings(sb), sb.x.brand.id, None))
    return app


@dataclass
class Receiver:
    url: str = ""
    answer: str = "right"  # "right", "wrong" (a bad response_token), "404", "slow"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A webhook endpoint whose CRC answer the test controls (the desk's is always right)."""
    from frontdesk.core.settings import SANDBOX_X_CONSUMER_SECRET
    from sandbox.x.webhook import sign

    box = Receiver()

    async def crc(request: web.Request) -> web.Response:
        if box.answer == "404":
            return web.Response(status=404)
        if box.answer == "slow":
            await asyncio.sleep(4)
        token = request.query["crc_token"]
        right = sign(SANDBOX_X_CONSUMER_SECRET, token.encode())
        return web.json_response({"response_token": right if box.answer != "wrong" else "sha256=wrong"})

    app = web.Application()
    app.router.add_get("/hook", crc)
    async def events(_request: web.Request) -> web.Response:
        return web.Response()

    app.router.add_post("/hook", events)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    box.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        yield box
    finally:
        await runner.cleanup()


async def test_register_status_remove_through_the_desk_endpoint(
    db: Database, x_sandbox: RunningSandbox, x_control: XSandboxControl
) -> None:
    env = _cli_env(x_sandbox)
    async with serving(_desk_app(db, x_sandbox)) as base:
        url = f"{base}/webhooks/x"
        registered = await _cli(env, "x", "webhook", "register", url)
        assert registered.exit_code == 0, registered.output
        assert url in registered.output and "valid (passed X's last CRC check)" in registered.output
        assert "subscribed" in registered.output and "NOT subscribed" not in registered.output

        mention = await x_control.mention("erin", "@frontdesk my parcel is lost")
        await x_sandbox.drain_webhooks()
        await eventually(lambda: _has(db, mention["id"]))  # pushed by X, stored by the desk

        again = await _cli(env, "x", "webhook", "register", url)  # idempotent: same webhook, still subscribed
        assert again.exit_code == 0, again.output
        assert len(x_sandbox.x.webhook_configs) == 1

        status = await _cli(env, "x", "webhook", "status", "--check")
        assert status.exit_code == 0, status.output
        assert url in status.output and "valid" in status.output

        removed = await _cli(env, "x", "webhook", "remove")
        assert removed.exit_code == 0, removed.output
        assert "Removed webhook" in removed.output
        assert x_sandbox.x.webhook_url is None and not x_sandbox.x.webhook_configs
        after = await _cli(env, "x", "webhook", "status")
        assert after.exit_code == 0 and "No webhook is registered" in after.output


async def _has(db: Database, platform_id: str) -> bool:
    return platform_id in await inbound_ids(db)


@pytest.mark.parametrize(
    ("answer", "says"),
    [("wrong", "response_token must be"), ("404", "answered HTTP 404"), ("slow", "did not answer within 3")],
)
async def test_register_is_refused_when_the_crc_check_fails(
    receiver: Receiver, x_sandbox: RunningSandbox, answer: str, says: str
) -> None:
    receiver.answer = answer
    result = await _cli(_cli_env(x_sandbox), "x", "webhook", "register", receiver.url)
    assert result.exit_code == 1
    assert says in result.output and "FRONTDESK_X_WEBHOOK_ENABLED=true" in result.output
    assert not x_sandbox.x.webhook_configs and x_sandbox.x.webhook_url is None


async def test_status_shows_a_webhook_that_failed_its_crc_and_it_gets_nothing(
    receiver: Receiver, x_sandbox: RunningSandbox
) -> None:
    env = _cli_env(x_sandbox)
    assert (await _cli(env, "x", "webhook", "register", receiver.url)).exit_code == 0
    assert x_sandbox.x.webhook_url == receiver.url
    receiver.answer = "wrong"  # e.g. the consumer secret was rotated on one side only
    status = await _cli(env, "x", "webhook", "status", "--check")
    assert status.exit_code == 1 and "INVALID" in status.output
    assert x_sandbox.x.webhook_url is None  # X stops delivering to an invalid webhook
    receiver.answer = "right"
    fixed = await _cli(env, "x", "webhook", "register", receiver.url)  # re-validates the same webhook
    assert fixed.exit_code == 0, fixed.output
    assert x_sandbox.x.webhook_url == receiver.url


@pytest.mark.parametrize(
    ("url", "fix"),
    [
        ("http://desk.example.com/webhooks/x", "use https://"),
        ("https://desk.example.com:8443/webhooks/x", "remove the port :8443"),
        ("https://localhost/webhooks/x", "public host name"),
        ("https://10.1.2.3/webhooks/x", "public host name"),
        ("https://192.168.0.7/webhooks/x", "public host name"),
        ("https://desk/webhooks/x", "public host name"),
        ("https://desk.example.com/webhooks/x#top", "remove the #fragment"),
        ("https://u:p@desk.example.com/webhooks/x", "user:password"),
        ("https://desk.example.com/" + "x" * 200, "at most 200"),
        ("desk.example.com/webhooks/x", "not an absolute URL"),
    ],
)
async def test_urls_x_would_refuse_are_refused_before_asking_x(url: str, fix: str) -> None:
    result = await _cli({"FRONTDESK_X_API_BASE": "", "COLUMNS": "2000"}, "x", "webhook", "register", url)
    assert result.exit_code == 2
    assert fix in result.output
    with pytest.raises(WebhookUrlError, match="X would refuse|at most|absolute|remove"):
        check_webhook_url(url)


def test_a_public_https_url_is_accepted_and_the_sandbox_takes_local_ones() -> None:
    assert check_webhook_url("https://desk.example.com/webhooks/x") == "https://desk.example.com/webhooks/x"
    assert check_webhook_url("http://127.0.0.1:8000/webhooks/x", sandbox=True)


async def test_the_emulator_applies_x_url_rules_when_asked(
    receiver: Receiver, x_sandbox: RunningSandbox, x_control: XSandboxControl
) -> None:
    await x_control.config(webhook_url_rules="x")
    result = await _cli(_cli_env(x_sandbox), "x", "webhook", "register", receiver.url)
    assert result.exit_code == 1
    assert "HTTP 400" in result.output and "must use HTTPS" in result.output


@pytest.mark.parametrize(
    ("env", "fault", "says"),
    [
        ({"FRONTDESK_X_BEARER_TOKEN": "not-the-apps"}, None, "FRONTDESK_X_CONSUMER_KEY"),  # 401
        ({}, {"status": 403, "path_prefix": "/2/webhooks"}, "Account Activity access"),
        ({}, {"status": 429, "path_prefix": "/2/webhooks"}, "rate limit"),
        ({}, {"status": 400, "path_prefix": "/2/webhooks"}, "HTTP 400"),
        ({}, {"status": 404, "path_prefix": "/2/webhooks"}, "HTTP 404"),
    ],
)
async def test_every_refusal_from_x_exits_1_with_the_reason(
    x_sandbox: RunningSandbox, x_control: XSandboxControl, receiver: Receiver,
    env: dict[str, str], fault: dict[str, Any] | None, says: str,
) -> None:
    if fault:
        await x_control.fault(**fault)
    for command in (["status"], ["register", receiver.url], ["remove"]):
        if fault:
            await x_control.fault(**fault)
        result = await _cli(_cli_env(x_sandbox, **env), "x", "webhook", *command)
        assert result.exit_code == 1, (command, result.output)
        assert says in result.output, (command, result.output)
        assert "Traceback" not in result.output


async def test_remove_names_an_unknown_webhook(x_sandbox: RunningSandbox) -> None:
    result = await _cli(_cli_env(x_sandbox), "x", "webhook", "remove", "--id", "123")
    assert result.exit_code == 1 and "no webhook 123" in result.output


# --- the emulator's endpoints, by the spec ------------------------------------------------------------


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    spec = copy.deepcopy(json.loads(SPEC_PATH.read_text()))
    schemas = spec["components"]["schemas"]
    open_ones = _allof_members(schemas)
    for name, schema in schemas.items():
        if name not in open_ones:
            schemas[name] = _closed(schema)
    spec["paths"] = _closed(spec["paths"])
    return spec


async def _raw(client: AsyncClient, method: str, route: str, *, user: bool, json_body: Any = None
               ) -> tuple[int, str, Any]:
    try:
        response = await client.request(method, route, params={} if user else None, json=json_body, user_auth=user)
    except tweepy.HTTPException as exc:
        response = exc.response
    return response.status, response.headers["Content-Type"], await response.json(content_type=None)


async def test_every_answer_matches_the_spec_and_every_refusal_is_xs(
    spec: dict[str, Any], x_client: AsyncClient, x_sandbox: RunningSandbox, receiver: Receiver
) -> None:
    brand = x_sandbox.x.brand.id
    hooks, one = "/2/webhooks", "/2/webhooks/{webhook_id}"
    sub = "/2/account_activity/webhooks/{webhook_id}/subscriptions/all"
    listing = sub + "/list"
    unsub = "/2/account_activity/webhooks/{webhook_id}/subscriptions/{user_id}/all"

    async def check(route: str, method: str, path: str, status: int, *, user: bool, body: Any = None) -> Any:
        got, content_type, answer = await _raw(x_client, method.upper(), path, user=user, json_body=body)
        assert got == status, (method, path, answer)
        _validate(spec, route, method, got, content_type, answer)
        return answer

    assert (await check(hooks, "get", hooks, 200, user=False)) == {"meta": {"result_count": 0}}
    created = await check(hooks, "post", hooks, 200, user=False, body={"url": receiver.url})
    wid = created["id"]
    assert created["valid"] is True and created["url"] == receiver.url
    listed = await check(hooks, "get", hooks, 200, user=False)
    assert [w["id"] for w in listed["data"]] == [wid]
    assert (await check(sub, "get", f"/2/account_activity/webhooks/{wid}/subscriptions/all", 200, user=True)
            )["data"] == {"subscribed": False}
    await check(sub, "post", f"/2/account_activity/webhooks/{wid}/subscriptions/all", 200, user=True, body={})
    subs = await check(listing, "get", f"/2/account_activity/webhooks/{wid}/subscriptions/all/list", 200,
                       user=False)
    assert subs["data"]["subscriptions"] == [{"user_id": brand}] and subs["data"]["webhook_url"] == receiver.url
    assert (await check(one, "put", f"/2/webhooks/{wid}", 200, user=False))["data"] == {"attempted": True}

    # The 4xx X answers here, each as X's JSON problem.
    await check(hooks, "get", hooks, 403, user=True)  # listing webhooks is app-only
    await check(sub, "post", f"/2/account_activity/webhooks/{wid}/subscriptions/all", 403, user=False, body={})
    await check(sub, "post", f"/2/account_activity/webhooks/{wid}/subscriptions/all", 409, user=True, body={})
    await check(listing, "get", f"/2/account_activity/webhooks/{wid}/subscriptions/all/list", 403, user=True)
    await check(unsub, "delete", f"/2/account_activity/webhooks/{wid}/subscriptions/{brand}/all", 403, user=True)
    await check(hooks, "post", hooks, 400, user=False, body={"url": receiver.url})  # already registered
    await check(hooks, "post", hooks, 400, user=False, body={})
    await check(hooks, "post", hooks, 400, user=False, body={"url": "https://x.example/" + "a" * 200})
    await check(hooks, "post", hooks, 400, user=False, body={"url": "ftp://x.example/hook"})
    await check(one, "put", "/2/webhooks/999", 404, user=False)
    await check(one, "delete", "/2/webhooks/999", 404, user=False)
    await check(one, "delete", "/2/webhooks/not-an-id", 400, user=False)
    await check(sub, "get", "/2/account_activity/webhooks/999/subscriptions/all", 404, user=True)
    await check(unsub, "delete", f"/2/account_activity/webhooks/{wid}/subscriptions/42/all", 404, user=False)

    receiver.answer = "wrong"
    await check(one, "put", f"/2/webhooks/{wid}", 200, user=False)  # attempted; the webhook is now invalid
    assert (await check(hooks, "get", hooks, 200, user=False))["data"][0]["valid"] is False
    await check(unsub, "delete", f"/2/account_activity/webhooks/{wid}/subscriptions/{brand}/all", 200, user=False)
    # An invalid webhook takes no subscription until it passes the CRC again.
    await check(sub, "post", f"/2/account_activity/webhooks/{wid}/subscriptions/all", 400, user=True, body={})
    assert (await check(one, "delete", f"/2/webhooks/{wid}", 200, user=False))["data"] == {"deleted": True}

    async with aiohttp.ClientSession() as http:  # no credentials at all: X's 401
        async with http.get(f"{x_sandbox.base_url}/2/webhooks") as response:
            assert response.status == 401
