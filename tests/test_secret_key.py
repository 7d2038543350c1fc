"""With real X or Telegram accounts, no process starts on a secret key anyone could know (issue 17)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from desk.app import create_desk_app
from desk.auth import TokenSigner
from frontdesk.core.settings import (
    DEVELOPMENT_SECRET_KEY,
    SANDBOX_TELEGRAM_TOKEN,
    SANDBOX_X_ACCESS_TOKEN,
    SANDBOX_X_ACCESS_TOKEN_SECRET,
    SANDBOX_X_CONSUMER_KEY,
    SANDBOX_X_CONSUMER_SECRET,
    InsecureSettings,
    Settings,
)
from storage.db import Database

REAL_X = {
    "FRONTDESK_X_CONSUMER_KEY": "real-consumer-key",
    "FRONTDESK_X_CONSUMER_SECRET": "real-consumer-secret",
    "FRONTDESK_X_ACCESS_TOKEN": "real-access-token",
    "FRONTDESK_X_ACCESS_TOKEN_SECRET": "real-access-token-secret",
}
STRONG_KEY = "k" * 32


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def _real_x(**values: object) -> Settings:
    keys = {name.removeprefix("FRONTDESK_").lower(): SecretStr(v) for name, v in REAL_X.items()}
    return _settings(**keys, **values)


@pytest.mark.parametrize(
    "key", [None, DEVELOPMENT_SECRET_KEY, "short-but-not-default", "k" * 31], ids=["unset", "dev", "short", "31"]
)
def test_real_x_credentials_refuse_a_guessable_key(key: str | None) -> None:
    settings = _real_x() if key is None else _real_x(secret_key=SecretStr(key))
    with pytest.raises(InsecureSettings, match="FRONTDESK_SECRET_KEY"):
        settings.check_secrets()


def test_a_real_telegram_token_alone_is_production_too() -> None:
    with pytest.raises(InsecureSettings, match="FRONTDESK_SECRET_KEY"):
        _settings(telegram_token=SecretStr("123456:real-telegram-token")).check_secrets()


def test_a_blank_variable_is_the_default_and_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**REAL_X, "FRONTDESK_SECRET_KEY": ""}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(InsecureSettings):
        Settings(_env_file=None).check_secrets()  # type: ignore[call-arg]


def test_a_long_random_key_and_the_sandbox_both_start() -> None:
    _real_x(secret_key=SecretStr(STRONG_KEY)).check_secrets()
    assert _settings().sandbox_mode
    sandbox = _settings(
        x_consumer_key=SecretStr(SANDBOX_X_CONSUMER_KEY), x_consumer_secret=SecretStr(SANDBOX_X_CONSUMER_SECRET),
        x_access_token=SecretStr(SANDBOX_X_ACCESS_TOKEN),
        x_access_token_secret=SecretStr(SANDBOX_X_ACCESS_TOKEN_SECRET),
        telegram_token=SecretStr(SANDBOX_TELEGRAM_TOKEN),
    )
    assert sandbox.sandbox_mode
    sandbox.check_secrets()  # the development key is fine where nothing real is at stake


async def test_the_desk_is_not_built_on_the_development_key_with_real_accounts(db: Database) -> None:
    with pytest.raises(InsecureSettings):
        create_desk_app(db, _real_x())
    # With a real key, a token signed with the public default is worthless.
    app = create_desk_app(db, _real_x(secret_key=SecretStr(STRONG_KEY)))
    forged = TokenSigner(DEVELOPMENT_SECRET_KEY, 3600).issue("a-sign-in-secret")
    assert app.state.desk.tokens.secret(forged) is None


@pytest.mark.parametrize("command", ["run", "desk", "worker"])
def test_every_process_refuses_to_start_and_names_the_variable(command: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRONTDESK_")}
    env.update(REAL_X, FRONTDESK_VAR_DIR=str(tmp_path), FRONTDESK_SECRET_KEY="")
    result = subprocess.run(
        [sys.executable, "-m", "frontdesk", command],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert "FRONTDESK_SECRET_KEY" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "frontdesk.db").exists()  # refused before opening anything
