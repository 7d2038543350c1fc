"""Logs: JSON lines that carry the conversation they are about, and never a secret or (at INFO) a body."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from frontdesk.logging import configure_logging, log_context

TOKEN = "123456789:AAEhBOweik9ai2o4Sx-fake-token-for-tests"
DB_PASSWORD = "s3cret-db-passw0rd"


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = configure_logging("INFO", json=True, stream=stream, extra_secrets=["consumer-secret-value-xyz"])
    try:
        yield stream
    finally:
        logging.getLogger().removeHandler(handler)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_line_is_json_with_the_bound_conversation_and_ticket(output: io.StringIO) -> None:
    log = logging.getLogger("bot.router")
    with log_context(conversation_id=42, channel="x"):
        log.info("routed to %s", "support")
        with log_context(ticket_id=7):
            logging.getLogger("storage").warning("queued")
    log.info("outside")
    first, second, third = _lines(output)
    assert first["msg"] == "routed to support" and first["level"] == "info" and first["logger"] == "bot.router"
    assert first["conversation_id"] == 42 and first["channel"] == "x" and "ticket_id" not in first
    assert second["conversation_id"] == 42 and second["ticket_id"] == 7
    assert "conversation_id" not in third


async def test_context_stays_with_its_own_task(output: io.StringIO) -> None:
    async def handle(conversation_id: int) -> None:
        with log_context(conversation_id=conversation_id):
            await asyncio.sleep(0)
            logging.getLogger("worker").info("handled")

    await asyncio.gather(handle(1), handle(2))
    assert sorted(line["conversation_id"] for line in _lines(output)) == [1, 2]  # type: ignore[type-var]


def test_secrets_are_redacted_everywhere(output: io.StringIO) -> None:
    log = logging.getLogger("httpx")
    log.warning("HTTP Request: POST https://api.telegram.org/bot%s/sendMessage", TOKEN)
    logging.getLogger("storage").error(
        "cannot connect to postgresql://frontdesk:%s@db:5432/frontdesk", DB_PASSWORD,
        extra={"headers": {"Authorization": "Bearer abcdefghijklmnop"}, "api_key": "k-123456789"},
    )
    logging.getLogger("x").info("signing with consumer-secret-value-xyz")
    try:
        raise RuntimeError(f"token {TOKEN} rejected")
    except RuntimeError:
        logging.getLogger("telegram").exception("poll failed")
    raw = output.getvalue()
    for secret in (TOKEN, DB_PASSWORD, "abcdefghijklmnop", "k-123456789", "consumer-secret-value-xyz"):
        assert secret not in raw, secret
    lines = _lines(output)
    assert "/bot***/sendMessage" in str(lines[0]["msg"])
    assert "postgresql://frontdesk:***@db" in str(lines[1]["msg"])
    assert "***" in str(lines[3]["exc"]) and "RuntimeError" in str(lines[3]["exc"])


def test_settings_secrets_are_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    from frontdesk.settings import get_settings

    monkeypatch.setenv("FRONTDESK_X_CONSUMER_SECRET", "from-the-environment-42")
    get_settings.cache_clear()
    stream = io.StringIO()
    handler = configure_logging("INFO", json=True, stream=stream)
    try:
        logging.getLogger("x").info("using from-the-environment-42")
    finally:
        logging.getLogger().removeHandler(handler)
        get_settings.cache_clear()
    assert "from-the-environment-42" not in stream.getvalue()


def test_message_bodies_only_at_debug() -> None:
    for level, shown in (("INFO", False), ("DEBUG", True)):
        stream = io.StringIO()
        handler = configure_logging(level, json=True, stream=stream)
        try:
            log = logging.getLogger("bot.router")
            log.info("inbound message", extra={"text": "my card number is 4111"})
            log.debug("inbound message", extra={"text": "my card number is 4111"})
        finally:
            logging.getLogger().removeHandler(handler)
        assert ("4111" in stream.getvalue()) is shown, level


def test_text_format_for_terminals() -> None:
    stream = io.StringIO()
    handler = configure_logging("INFO", json=False, stream=stream)
    try:
        with log_context(ticket_id=9):
            logging.getLogger("desk").info("claimed")
    finally:
        logging.getLogger().removeHandler(handler)
    assert "claimed" in stream.getvalue() and "ticket_id=9" in stream.getvalue()
    with pytest.raises(json.JSONDecodeError):
        json.loads(stream.getvalue())


def test_unknown_level_names_the_fix() -> None:
    with pytest.raises(ValueError, match="DEBUG, INFO"):
        configure_logging("LOUD")


def test_a_broken_log_call_does_not_raise(output: io.StringIO) -> None:
    logging.getLogger("bot").info("two placeholders %s %s", "only one")
    assert "could not be prepared" in _lines(output)[0]["msg"]  # type: ignore[operator]


def test_field_names_that_merely_contain_secret_words_are_kept(output: io.StringIO) -> None:
    logging.getLogger("bot").info("x", extra={"passed_checks": 3, "tokenizer": "whitespace", "x_access_token": "abc"})
    line = _lines(output)[0]
    assert line["passed_checks"] == 3 and line["tokenizer"] == "whitespace" and line["x_access_token"] == "***"
