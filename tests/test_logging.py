"""Logs: JSON lines that carry the conversation they are about, and never a secret or (at INFO) a body."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from frontdesk.core.logging import (
    RedactingStream,
    configure_logging,
    default_redactor,
    log_context,
    register_secret,
)
from nlu.serving import free_port

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
    from frontdesk.core.settings import get_settings

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


# --- everything printed or logged goes through the redactor (issue 17) ---------------------------------------


def _frontdesk(args: list[str], tmp_path: Path, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    """The real `frontdesk` command (its main(), as installed), with a clean FRONTDESK_* environment."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("FRONTDESK_")}
    base.update(FRONTDESK_VAR_DIR=str(tmp_path / "var"), FRONTDESK_DATABASE_URL="", **env)
    return subprocess.run([sys.executable, "-m", "frontdesk", *args], cwd=tmp_path, env=base,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("secret", ["not-the-secret", "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"])
def test_a_token_telegram_refuses_is_not_printed_at_start_up(tmp_path: Path, secret: str) -> None:
    """`frontdesk run` with a wrong bot token against the sandbox's Telegram emulator: the refusal names
    the setting, and neither python-telegram-bot's message nor any log line shows the token."""
    token = f"987654321:{secret}"
    sandbox_port = free_port()
    done = _frontdesk(
        ["run"], tmp_path,
        FRONTDESK_TELEGRAM_TOKEN=token,
        FRONTDESK_TELEGRAM_API_BASE=f"http://127.0.0.1:{sandbox_port}",  # the emulator `run` starts
        FRONTDESK_SANDBOX_PORT=str(sandbox_port),
        FRONTDESK_HTTP_PORT=str(free_port()),
        FRONTDESK_NLU_URL="http://127.0.0.1:9",  # never reached: start-up stops at Telegram
        FRONTDESK_SECRET_KEY="k" * 40,  # a real-looking token means real accounts: a real key is required
        FRONTDESK_LOG_LEVEL="DEBUG",
    )
    printed = done.stdout + done.stderr
    assert done.returncode == 1, printed
    assert "refused the bot token" in printed and "FRONTDESK_TELEGRAM_TOKEN" in printed, printed
    assert secret not in printed


def test_cli_error_lines_go_through_the_redactor(tmp_path: Path) -> None:
    """An error line quoting a URL with a password in it (an NLU server behind basic auth) prints ***."""
    done = _frontdesk(["nlu", "parse", "hello"], tmp_path,
                      FRONTDESK_NLU_URL=f"http://frontdesk:pw-in-the-url-42@127.0.0.1:{free_port()}",
                      FRONTDESK_NLU_RETRIES="0")
    assert done.returncode == 1 and "error:" in done.stderr, done.stderr
    assert "frontdesk:***@127.0.0.1" in done.stderr and "pw-in-the-url-42" not in done.stderr


def test_a_validation_error_about_a_password_does_not_log_it(output: io.StringIO) -> None:
    """A password that fails validation (too long, a lone surrogate) is in the error pydantic and FastAPI
    raise: logged, the error keeps its shape and loses the value."""
    from fastapi.exceptions import RequestValidationError
    from pydantic import ValidationError

    from desk.api import TokenRequest

    password = "hunter2-correct-horse\ud800" + "x" * 1100
    try:
        TokenRequest.model_validate({"email": "anna@example.com", "password": password})
    except ValidationError as exc:
        logging.getLogger("desk").exception("login body refused")
        logging.getLogger("uvicorn.error").error("Exception in ASGI application: %s",
                                                 RequestValidationError(exc.errors()))
    raw = output.getvalue()
    assert "hunter2" not in raw
    first, second = _lines(output)
    assert "for TokenRequest\npassword\n" in str(first["exc"]) and "input_value='***'" in str(first["exc"])
    assert "'loc': ('password',)" in str(second["msg"]) and "'input': '***'" in str(second["msg"])


def test_secret_fields_in_reprs_and_headers_are_redacted(output: io.StringIO) -> None:
    log = logging.getLogger("httpx")
    log.warning("request headers %s", {"Authorization": "Token abcdef0123456789", "Accept": "json"})
    log.warning("body %s", '{"email": "a@b.c", "password": "json-password-1"}')
    log.warning("GET http://127.0.0.1:5005/status?token=rasa-token-0123 -> 401")
    log.warning("python-telegram-bot: The token `123456:short-secret` was rejected by the server.")
    log.warning("POST http://127.0.0.1:8081/bot123456:short-secret/getMe")
    raw = output.getvalue()
    for secret in ("abcdef0123456789", "json-password-1", "rasa-token-0123", "short-secret"):
        assert secret not in raw, secret
    assert '"Accept": "json"' in raw.replace("'", '"') and "a@b.c" in raw  # the rest stays readable


def test_secrets_registered_at_run_time_are_redacted_from_logs_and_stderr(output: io.StringIO) -> None:
    generated = "generated-at-start-" + "q" * 20
    register_secret(generated)
    logging.getLogger("nlu").info("token is %s", generated)
    assert generated not in output.getvalue()
    target = io.StringIO()
    stream = RedactingStream(target, default_redactor())
    print(f"error: token {generated} and postgresql://u:pw-1234567@db/x", file=stream)
    assert target.getvalue() == "error: token *** and postgresql://u:***@db/x\n"
