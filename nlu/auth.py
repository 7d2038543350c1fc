"""The token that Rasa's HTTP API requires (``rasa run --auth-token``) and the client sends.

Without it, anyone who reaches Rasa's port can parse, replace the model (``PUT /model``) or train
(``POST /model/train``).  The token is ``FRONTDESK_NLU_AUTH_TOKEN`` when set (deployments, where Rasa
runs in another container); otherwise one is generated on first use and kept in
``<var_dir>/nlu-auth-token`` (mode 0600), so that every process sharing the var directory (`frontdesk
nlu serve` in one terminal, `frontdesk run` with FRONTDESK_NLU_URL in another) agrees on it.  A file
that is empty or readable by other users is replaced by a new token.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from frontdesk.core.logging import register_secret
from frontdesk.core.settings import Settings

TOKEN_FILE_NAME = "nlu-auth-token"
AUTH_TOKEN_ENV = "FRONTDESK_NLU_AUTH_TOKEN"


def token_path(settings: Settings) -> Path:
    return settings.var_dir / TOKEN_FILE_NAME


def nlu_auth_token(settings: Settings) -> str:
    """The configured token, else the one stored under var/ (generated the first time)."""
    if settings.nlu_auth_token is not None and settings.nlu_auth_token.get_secret_value():
        token = settings.nlu_auth_token.get_secret_value()
    else:
        token = _stored_token(token_path(settings))
    register_secret(token)  # whatever prints it later (an error, a library's log line) prints *** instead
    return token


def _stored_token(path: Path) -> str:
    token = _read_private(path)
    if token is None:
        _write_new(path, replace=path.exists())
        token = _read_private(path)
    if token is None:
        raise OSError(f"cannot keep the NLU auth token in {path}; set FRONTDESK_NLU_AUTH_TOKEN instead")
    return token


def _read_private(path: Path) -> str | None:
    """The stored token, or None when there is none or it may have been read by other users."""
    try:
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            return None  # someone loosened its mode: it may be known, so a new one replaces it
        return path.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def _write_new(path: Path, *, replace: bool) -> None:
    """Write a new token atomically: concurrent first starts all end up reading the same one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
        if replace:
            os.replace(staging, path)
        else:
            with contextlib.suppress(FileExistsError):  # another process won the race: use its token
                os.link(staging, path)
    finally:
        staging.unlink(missing_ok=True)
