"""The Telegram emulator, driven by the real python-telegram-bot client over loopback.

Each test plays a user through the control API and checks what python-telegram-bot sees, the way
Frontdesk's Telegram channel will see it in production.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from aiohttp import web
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, Conflict, Forbidden, InvalidToken, NetworkError, RetryAfter
from telegram.ext import ApplicationBuilder, CallbackQueryHandler, ContextTypes, MessageHandler, filters

from bot.channels.telegram.client import retry_after_seconds
from tests.fixtures.telegram_sandbox import TelegramSandbox

ALICE = 4201
BOB = 4202


@pytest_asyncio.fixture(autouse=True)
async def _no_flood_limits(telegram_sandbox: TelegramSandbox) -> None:
    # These tests send back to back to one chat to check other things; the flood limits have their own
    # tests below (test_flood_limits_*), which switch them back on.
    await telegram_sandbox.control.limits(enabled=False)


@pytest_asyncio.fixture
async def bot(telegram_sandbox: TelegramSandbox) -> AsyncIterator[Bot]:
    async with Bot(telegram_sandbox.token, base_url=telegram_sandbox.base_url,
                   base_file_url=telegram_sandbox.base_file_url) as b:
        yield b


def _keyboard(*pairs: tuple[str, str]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(label, callback_data=data) for label, data in pairs]])


# ------------------------------------------------------------------------------------------ identity
async def test_get_me_describes_the_sandbox_bot(bot: Bot) -> None:
    me = await bot.get_me()
    assert me.is_bot
    assert me.username == "frontdesk_bot"
    assert me.id == 123456  # the numeric part of SANDBOX_TELEGRAM_TOKEN, as on Telegram


async def test_wrong_token_is_invalid_token(telegram_sandbox: TelegramSandbox) -> None:
    async with httpx.AsyncClient() as client:
        resp = await client.post(f"{telegram_sandbox.base_url}999:wrong/getMe")
    assert resp.status_code == 401
    assert resp.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    wrong = Bot("999:wrong", base_url=telegram_sandbox.base_url, base_file_url=telegram_sandbox.base_file_url)
    try:
        with pytest.raises(InvalidToken):
            await wrong.initialize()  # getMe
    finally:
        await wrong.shutdown()


# ------------------------------------------------------------------------------------------ updates
async def test_offset_confirms_updates_for_good(telegram_sandbox: TelegramSandbox, bot: Bot) -> None:
    control = telegram_sandbox.control
    for text in ("one", "two", "three"):
        await control.message(ALICE, text)

    first = await bot.get_updates()
    assert [u.message.text for u in first] == ["one", "two", "three"]
    assert await bot.get_updates() == first  # nothing confirmed yet: delivered again

    # offset = id of "three" confirms "one" and "two" only
    assert [u.message.text for u in await bot.get_updates(offset=first[2].update_id)] == ["three"]
    await control.message(ALICE, "four")
    # an offset below the confirmed ones cannot bring them back
    again = await bot.get_updates(offset=first[0].update_id)
    assert [u.message.text for u in again] == ["three", "four"]
    assert await bot.get_updates(offset=again[-1].update_id + 1) == ()
    assert [u.message.text for u in await bot.get_updates(limit=1)] == []


async def test_limit_and_negative_offset(telegram_sandbox: TelegramSandbox, bot: Bot) -> None:
    for text in ("a", "b", "c", "d"):
        await telegram_sandbox.control.message(ALICE, text)
    assert [u.message.text for u in await bot.get_updates(limit=2)] == ["a", "b"]
    # a negative offset keeps only the newest -offset updates and forgets the others
    assert [u.message.text for u in await bot.get_updates(offset=-1)] == ["d"]
    assert [u.message.text for u in await bot.get_updates()] == ["d"]


async def test_restart_with_persisted_offset_repeats_nothing(telegram_sandbox: TelegramSandbox) -> None:
    """Two runs of a real PTB Application, the second after a restart: nothing is delivered twice."""

    async def run_once(expected: int) -> list[str]:
        seen: list[str] = []
        got_all = asyncio.Event()

        async def record(update: Update, _: object) -> None:
            seen.append(update.message.text)
            if len(seen) >= expected:
                got_all.set()

        app = (ApplicationBuilder().token(telegram_sandbox.token).base_url(telegram_sandbox.base_url)
               .base_file_url(telegram_sandbox.base_file_url).build())
        app.add_handler(MessageHandler(filters.TEXT, record))
        async with app:
            await app.start()
            await app.updater.start_polling(poll_interval=0, timeout=1)
            await asyncio.wait_for(got_all.wait(), 10)
            await app.updater.stop()  # confirms what it processed with a last getUpdates(offset)
            await app.stop()
        return seen

    await telegram_sandbox.control.message(ALICE, "before the restart")
    assert await run_once(1) == ["before the restart"]
    await telegram_sandbox.control.message(BOB, "after the restart")
    assert await run_once(1) == ["after the restart"]
    assert (await telegram_sandbox.control.state())["pending_updates"] == []


async def test_application_conversation_with_buttons(telegram_sandbox: TelegramSandbox) -> None:
    """The flow Frontdesk's channel uses: a polling Application answers, offers buttons, handles the press."""
    done = asyncio.Event()

    async def on_text(update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
        await update.message.reply_text("Open a ticket?", do_quote=True,
                                        reply_markup=_keyboard(("Yes", "open"), ("No", "skip")))

    async def on_press(update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
        await update.callback_query.answer("Done")
        await update.callback_query.edit_message_text(f"You chose {update.callback_query.data}")
        done.set()

    app = (ApplicationBuilder().token(telegram_sandbox.token).base_url(telegram_sandbox.base_url)
           .base_file_url(telegram_sandbox.base_file_url).build())
    app.add_handler(MessageHandler(filters.TEXT, on_text))
    app.add_handler(CallbackQueryHandler(on_press))
    control = telegram_sandbox.control
    async with app:
        await app.start()
        await app.updater.start_polling(poll_interval=0, timeout=1)
        asked = await control.message(ALICE, "my parcel is late")
        for _ in range(100):  # wait for the bot's question to appear
            if (await control.sent())["messages"]:
                break
            await asyncio.sleep(0.05)
        question = (await control.sent())["messages"][0]
        await control.press(ALICE, ALICE, question["message_id"], "open")
        await asyncio.wait_for(done.wait(), 10)
        await app.updater.stop()
        await app.stop()

    sent = await control.sent()
    assert question["reply_to_message_id"] == asked["message_id"]  # do_quote: a reply to the user
    assert [(m["text"], m["edited"]) for m in sent["messages"]] == [("Open a ticket?", False),
                                                                     ("You chose open", True)]
    assert [a["text"] for a in sent["callback_answers"]] == ["Done"]


async def test_long_poll_returns_when_a_message_arrives(telegram_sandbox: TelegramSandbox, bot: Bot) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=40, read_timeout=50))
    await asyncio.sleep(0.2)
    assert not poll.done(), "with nothing queued, getUpdates(timeout=40) must wait"
    await telegram_sandbox.control.message(ALICE, "are you there?")
    updates = await asyncio.wait_for(poll, 10)  # far less than the 40 s poll: it returned on arrival
    assert [u.message.text for u in updates] == ["are you there?"]


async def test_a_second_poller_ends_the_first_with_conflict(telegram_sandbox: TelegramSandbox, bot: Bot) -> None:
    """Two bot processes polling the same token: Telegram ends the older long poll with 409."""
    first = asyncio.create_task(bot.get_updates(timeout=40, read_timeout=50))
    await asyncio.sleep(0.2)
    async with Bot(telegram_sandbox.token, base_url=telegram_sandbox.base_url) as other_process:
        second = asyncio.create_task(other_process.get_updates(timeout=40, read_timeout=50))
        with pytest.raises(Conflict, match="terminated by other getUpdates"):
            await asyncio.wait_for(first, 10)
        await telegram_sandbox.control.message(ALICE, "hello")
        assert len(await asyncio.wait_for(second, 10)) == 1


async def test_allowed_updates_filters_new_updates(telegram_sandbox: TelegramSandbox, bot: Bot) -> None:
    sent = await _bot_message_with_buttons(telegram_sandbox, bot)
    assert await bot.get_updates(offset=-1, allowed_updates=["callback_query"]) is not None
    await telegram_sandbox.control.message(ALICE, "not wanted")
    await telegram_sandbox.control.press(ALICE, ALICE, sent.message_id, "yes")
    updates = await bot.get_updates(offset=-1)
    assert [u.callback_query.data for u in updates if u.callback_query] == ["yes"]
    assert not any(u.message and u.message.text == "not wanted" for u in updates)


async def test_group_messages_carry_the_group_chat(telegram_sandbox: TelegramSandbox, bot: Bot) -> None:
    await telegram_sandbox.control.message(ALICE, "hi team", chat_id=-1001234, chat_type="supergroup")
    (update,) = await bot.get_updates()
    assert update.message.chat.type == "supergroup"
    assert update.message.chat.id == -1001234
    assert update.message.from_user.id == ALICE
    reply = await bot.send_message(-1001234, "hello group")
    assert reply.chat.id == -1001234
    assert (await bot.get_chat(-1001234)).type == "supergroup"


async def test_bot_can_post_to_a_registered_agents_chat(telegram_sandbox: TelegramSandbox, bot: Bot) -> None:
    with pytest.raises(BadRequest, match="(?i)chat not found"):
        await bot.send_message(-100777, "new ticket")
    await telegram_sandbox.control.add_chat(-100777, title="Agents")
    assert (await bot.send_message(-100777, "new ticket")).chat.title == "Agents"
    assert await bot.send_chat_action(-100777, "typing") is True


# ------------------------------------------------------------------------------------------ sending
async def _bot_message_with_buttons(telegram_sandbox: TelegramSandbox, bot: Bot):  # type: ignore[no-untyped-def]
    await telegram_sandbox.control.message(ALICE, "I want a refund")
    return await bot.send_message(ALICE, "Shall I open a ticket?", reply_markup=_keyboard(("Yes", "yes"), ("No", "no")))


async def test_inline_keyboard_press_arrives_as_callback_query(telegram_sandbox: TelegramSandbox, bot: Bot) -> None:
    sent = await _bot_message_with_buttons(telegram_sandbox, bot)
    assert sent.reply_markup.inline_keyboard[0][0].callback_data == "yes"
    pressed = await telegram_sandbox.control.press(ALICE, ALICE, sent.message_id, "yes")

    updates = await bot.get_updates()
    query = updates[-1].callback_query
    assert query is not None and query.id == pressed["callback_query_id"]
    assert query.data == "yes"
    assert query.from_user.id == ALICE
    assert query.message.message_id == sent.message_id
    assert query.message.text == "Shall I open a ticket?"

    assert await query.answer("Ticket opened") is True
    answers = (await telegram_sandbox.control.sent())["callback_answers"]
    assert answers == [{"callback_query_id": query.id, "text": "Ticket opened", "show_alert": False, "url": None,
                        "cache_time": 0}]
    with pytest.raises(BadRequest, match="(?i)query is too old"):
        await query.answer("twice")


async def test_a_press_must_match_a_button(telegram_sandbox: TelegramSandbox, bot: Bot) -> None:
    sent = await _bot_message_with_buttons(telegram_sandbox, bot)
    async with httpx.AsyncClient() as client:
        resp = await client.post(f"{telegram_sandbox.url}/_sandbox/telegram/callback",
                                 json={"chat_id": ALICE, "message_id": sent.message_id,
                                       "from": {"id": ALICE}, "data": "maybe"})
    assert resp.status_code == 400
    assert "'yes', 'no'" in resp.json()["error"]


async def test_sent_lists_messages_and_edits_in_order(telegram_sandbox: TelegramSandbox, bot: Bot) -> None:
    sent = await _bot_message_with_buttons(telegram_sandbox, bot)
    edited = await bot.edit_message_text("Ticket #7 opened", chat_id=ALICE, message_id=sent.message_id)
    assert edited.text == "Ticket #7 opened"
    assert edited.reply_markup is None  # an edit without reply_markup removes the keyboard
    assert edited.edit_date is not None

    log = (await telegram_sandbox.control.sent())["messages"]
    assert [(m["message_id"], m["text"], m["edited"]) for m in log] == [
        (sent.message_id, "Shall I open a ticket?", False),
        (sent.message_id, "Ticket #7 opened", True),
    ]
    assert log[0]["reply_markup"]["inline_keyboard"][0][1] == {"text": "No", "callback_data": "no"}
    with pytest.raises(BadRequest, match="not modified"):
        await bot.edit_message_text("Ticket #7 opened", chat_id=ALICE, message_id=sent.message_id)


async def test_edit_reply_markup(telegram_sandbox: TelegramSandbox, bot: Bot) -> None:
    sent = await _bot_message_with_buttons(telegram_sandbox, bot)
    edited = await bot.edit_message_reply_markup(chat_id=ALICE, message_id=sent.message_id,
                                                 reply_markup=_keyboard(("Done", "done")))
    assert edited.text == "Shall I open a ticket?"
    assert edited.reply_markup.inline_keyboard[0][0].callback_data == "done"


async def test_user_reply_carries_the_original_bot_message(telegram_sandbox: TelegramSandbox, bot: Bot) -> None:
    sent = await _bot_message_with_buttons(telegram_sandbox, bot)
    await telegram_sandbox.control.message(ALICE, "yes please", reply_to_message_id=sent.message_id)
    update = (await bot.get_updates())[-1]
    original = update.message.reply_to_message
    assert original.message_id == sent.message_id
    assert original.from_user.id == (await bot.get_me()).id
    assert original.text == "Shall I open a ticket?"
    assert original.reply_markup.inline_keyboard[0][0].text == "Yes"


async def test_bot_reply_to_a_user_message(telegram_sandbox: TelegramSandbox, bot: Bot) -> None:
    asked = await telegram_sandbox.control.message(ALICE, "where is my order?")
    reply = await bot.send_message(ALICE, "Looking into it", reply_to_message_id=asked["message_id"])
    assert reply.reply_to_message.text == "where is my order?"
    assert (await telegram_sandbox.control.sent())["messages"][0]["reply_to_message_id"] == asked["message_id"]
    with pytest.raises(BadRequest, match="replied not found"):
        await bot.send_message(ALICE, "to nothing", reply_to_message_id=999)


async def test_send_message_refusals(telegram_sandbox: TelegramSandbox, bot: Bot) -> None:
    with pytest.raises(BadRequest, match="(?i)chat not found"):
        await bot.send_message(987654, "hello stranger")
    await telegram_sandbox.control.message(ALICE, "hi")
    with pytest.raises(BadRequest, match="(?i)message is too long"):
        await bot.send_message(ALICE, "x" * 4097)
    assert (await bot.send_message(ALICE, "x" * 4096)).text == "x" * 4096
    await telegram_sandbox.control.block(ALICE)
    with pytest.raises(Forbidden, match="blocked"):
        await bot.send_message(ALICE, "still there?")


async def test_parse_modes_render_and_reject_like_telegram(telegram_sandbox: TelegramSandbox, bot: Bot) -> None:
    await telegram_sandbox.control.message(ALICE, "hi")
    with pytest.raises(BadRequest, match="(?i)can't parse entities: Character '.' is reserved"):
        await bot.send_message(ALICE, "Your ticket is open.", parse_mode="MarkdownV2")
    assert (await bot.send_message(ALICE, "Your *ticket* is open\\.", parse_mode="MarkdownV2")).text == \
        "Your ticket is open."
    assert (await bot.send_message(ALICE, "<b>Ticket</b> &lt;7&gt; &amp;amp;", parse_mode="HTML")).text == \
        "Ticket <7> &amp;"
    with pytest.raises(BadRequest, match="(?i)can't parse entities"):
        await bot.send_message(ALICE, "<b>unclosed", parse_mode="HTML")
    assert [m["parse_mode"] for m in (await telegram_sandbox.control.sent())["messages"]] == ["MarkdownV2", "HTML"]


async def test_control_api_explains_impossible_messages(telegram_sandbox: TelegramSandbox) -> None:
    async with httpx.AsyncClient() as client:
        resp = await client.post(f"{telegram_sandbox.url}/_sandbox/telegram/messages",
                                 json={"chat_id": 99, "from": {"id": ALICE}, "text": "hi"})
    assert resp.status_code == 400
    assert f"use chat_id={ALICE}" in resp.json()["error"]


async def test_json_body_and_query_string_are_accepted(telegram_sandbox: TelegramSandbox) -> None:
    await telegram_sandbox.control.message(ALICE, "hi")
    api = f"{telegram_sandbox.base_url}{telegram_sandbox.token}"
    markup = {"inline_keyboard": [[{"text": "Yes", "callback_data": "yes"}]]}
    async with httpx.AsyncClient() as client:
        by_json = await client.post(f"{api}/sendMessage", json={"chat_id": ALICE, "text": "json", "reply_markup": markup})
        by_query = await client.get(f"{api}/sendmessage", params={"chat_id": ALICE, "text": "query",
                                                                  "reply_markup": json.dumps(markup)})
        unknown = await client.post(f"{api}/sendTelepathy")
    assert by_json.json()["result"]["reply_markup"] == markup
    assert by_query.json()["result"]["text"] == "query"
    assert unknown.status_code == 404


# ------------------------------------------------------------------------------------------ faults
@pytest.mark.filterwarnings("ignore:.*retry_after.*:DeprecationWarning")
async def test_injected_429_raises_retry_after(telegram_sandbox: TelegramSandbox, bot: Bot) -> None:
    await telegram_sandbox.control.message(ALICE, "hi")
    await telegram_sandbox.control.fault(429, count=2, method="sendMessage", retry_after=7)
    assert (await bot.get_me()).is_bot  # other methods are unaffected
    for _ in range(2):
        with pytest.raises(RetryAfter) as caught:
            await bot.send_message(ALICE, "hello")
        assert caught.value.retry_after == 7
    assert (await bot.send_message(ALICE, "hello")).text == "hello"
    assert [m["text"] for m in (await telegram_sandbox.control.sent())["messages"]] == ["hello"]


async def test_injected_5xx_raises_network_error(telegram_sandbox: TelegramSandbox, bot: Bot) -> None:
    await telegram_sandbox.control.fault(502, count=1)
    with pytest.raises(NetworkError, match="Bad Gateway"):
        await bot.get_me()
    assert (await bot.get_me()).is_bot


# ------------------------------------------------------------------------------------------ webhooks
@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[tuple[str, asyncio.Queue[tuple[str | None, dict]], list[int]]]:
    """A small webhook receiver: fails the first request with 500, then accepts and queues the rest."""
    received: asyncio.Queue[tuple[str | None, dict]] = asyncio.Queue()
    statuses: list[int] = []

    async def hook(request: web.Request) -> web.Response:
        status = 500 if not statuses else 200
        statuses.append(status)
        if status == 200:
            assert request.content_type == "application/json"
            await received.put((request.headers.get("X-Telegram-Bot-Api-Secret-Token"), await request.json()))
        return web.Response(status=status)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}/hook", received, statuses
    await runner.cleanup()


async def test_webhook_delivers_with_secret_and_blocks_polling(
    telegram_sandbox: TelegramSandbox, bot: Bot, receiver: tuple[str, asyncio.Queue, list[int]]
) -> None:
    local, received, statuses = receiver
    # Telegram takes only https on 443/80/88/8443: the receiver sits behind the sandbox's stand-in proxy.
    url = "https://bot.example/hook"
    await telegram_sandbox.control.webhook_proxy(local.rsplit("/hook", 1)[0])
    assert await bot.set_webhook(url, secret_token="s3cret-Token_1") is True
    info = await bot.get_webhook_info()
    assert info.url == url

    with pytest.raises(Conflict, match="webhook is active"):
        await bot.get_updates()

    sent = await telegram_sandbox.control.message(ALICE, "via webhook")
    secret, payload = await asyncio.wait_for(received.get(), 10)
    assert statuses[:2] == [500, 200]  # the failed delivery was retried
    assert secret == "s3cret-Token_1"
    update = Update.de_json(payload, bot)
    assert update.update_id == sent["update_id"]
    assert update.message.text == "via webhook"
    info = await bot.get_webhook_info()
    assert info.last_error_message.startswith("Wrong response from the webhook: 500")

    assert await bot.delete_webhook() is True
    await telegram_sandbox.control.message(ALICE, "back to polling")
    assert [u.message.text for u in await bot.get_updates()] == ["back to polling"]


async def test_unreachable_webhook_loses_nothing(telegram_sandbox: TelegramSandbox, bot: Bot) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        await telegram_sandbox.control.webhook_proxy(f"http://127.0.0.1:{probe.getsockname()[1]}")
    assert await bot.set_webhook("https://bot.example:8443/hook")
    await telegram_sandbox.control.message(ALICE, "anyone?")
    for _ in range(100):
        info = await bot.get_webhook_info()
        if info.last_error_message:
            break
        await asyncio.sleep(0.05)
    assert "Connection refused" in info.last_error_message
    assert info.pending_update_count == 1

    await bot.delete_webhook()
    assert [u.message.text for u in await bot.get_updates()] == ["anyone?"]


@pytest.mark.parametrize(("url", "description"), [
    ("http://bot.example/hook", "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"),
    ("https://bot.example:8080/hook", "Bad Request: bad webhook: Webhook can be set up only on ports 80, 88, "
                                      "443 or 8443"),
    ("https://127.0.0.1:9000/hook", "Bad Request: bad webhook: Webhook can be set up only on ports 80, 88, "
                                    "443 or 8443"),
])
async def test_set_webhook_refuses_what_telegram_refuses(
    telegram_sandbox: TelegramSandbox, bot: Bot, url: str, description: str
) -> None:
    # Bot API setWebhook: an HTTPS URL, "Ports currently supported for webhooks: 443, 80, 88, 8443".
    with pytest.raises(BadRequest, match="(?i)bad webhook"):
        await bot.set_webhook(url)
    async with httpx.AsyncClient() as http:  # the exact envelope (python-telegram-bot rewords the description)
        raw = await http.post(f"{telegram_sandbox.base_url}{telegram_sandbox.token}/setWebhook", data={"url": url})
    assert raw.status_code == 400
    assert raw.json() == {"ok": False, "error_code": 400, "description": description}
    assert (await bot.get_webhook_info()).url == ""
    for ok in ("https://bot.example/hook", "https://bot.example:88/hook", "https://bot.example:8443/h",
               "https://bot.example:80/h"):
        assert await bot.set_webhook(ok)
    await bot.delete_webhook()


async def test_a_restarted_update_id_below_the_offset_is_confirmed_away(
    telegram_sandbox: TelegramSandbox, bot: Bot
) -> None:
    # getUpdates' offset: "An update is considered confirmed as soon as getUpdates is called with an offset
    # higher than its update_id" -- also one whose id restarted low (Update.update_id, after a quiet week).
    first = await telegram_sandbox.control.message(ALICE, "one")
    assert [u.update_id for u in await bot.get_updates()] == [first["update_id"]]
    low = await telegram_sandbox.control.message(ALICE, "restarted", update_id=77)
    assert low["update_id"] == 77
    assert await bot.get_updates(offset=first["update_id"] + 1) == ()
    again = await telegram_sandbox.control.message(ALICE, "restarted again", update_id=500)
    assert [u.message.text for u in await bot.get_updates()] == ["restarted again"]
    nxt = await telegram_sandbox.control.message(ALICE, "next")
    assert nxt["update_id"] == again["update_id"] + 1
    async with httpx.AsyncClient() as http:
        bad = await http.post(f"{telegram_sandbox.url}/_sandbox/telegram/messages",
                              json={"from": {"id": ALICE}, "text": "x", "update_id": 0})
    assert bad.status_code == 400 and "update_id" in bad.json()["error"]



# ------------------------------------------------------------------------------------------ flood limits
async def test_flood_limits_one_message_a_second_per_chat_with_telegrams_429(
    telegram_sandbox: TelegramSandbox, bot: Bot
) -> None:
    # Bots FAQ: in one chat "avoid sending more than one message per second"; the sandbox allows no burst.
    await telegram_sandbox.control.limits(enabled=True)
    await telegram_sandbox.control.message(ALICE, "hi")
    await telegram_sandbox.control.message(BOB, "hi")
    await bot.send_message(ALICE, "one")
    async with httpx.AsyncClient() as http:
        raw = await http.post(f"{telegram_sandbox.base_url}{telegram_sandbox.token}/sendMessage",
                              data={"chat_id": ALICE, "text": "two"})
    assert raw.status_code == 429
    assert raw.json() == {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 1",
                          "parameters": {"retry_after": 1}}
    with pytest.raises(RetryAfter):
        await bot.send_message(ALICE, "two again")
    await bot.send_message(BOB, "another chat is not held up")
    await asyncio.sleep(1.05)
    await bot.send_message(ALICE, "two, a second later")
    texts = [m["text"] for m in (await telegram_sandbox.control.sent())["messages"]]
    assert texts == ["one", "another chat is not held up", "two, a second later"]


async def test_flood_limits_twenty_a_minute_per_group_and_thirty_a_second_overall(
    telegram_sandbox: TelegramSandbox, bot: Bot
) -> None:
    # Bots FAQ: "no more than 20 messages per minute to the same group"; "not more than 30 messages per
    # second or so" in bulk.  The per-chat interval is shortened so the test does not take 20 seconds.
    await telegram_sandbox.control.limits(enabled=True, per_chat_interval_s=0.01)
    group = -1009876543210
    await telegram_sandbox.control.add_chat(group, title="agents")
    for i in range(20):
        await bot.send_message(group, f"card {i}")
        await asyncio.sleep(0.011)
    with pytest.raises(RetryAfter) as refused:
        await bot.send_message(group, "card 21")
    assert 50 <= retry_after_seconds(refused.value) <= 60  # the oldest of the 20 leaves the minute window then

    users = list(range(5000, 5031))
    for user in users:
        await telegram_sandbox.control.message(user, "hi")
    await asyncio.sleep(1.05)  # the group's sends leave the one-second window
    for user in users[:30]:
        await bot.send_message(user, "broadcast")
    with pytest.raises(RetryAfter):
        await bot.send_message(users[30], "the 31st within a second")
    assert (await telegram_sandbox.control.state())["flood_refusals"] == 2
