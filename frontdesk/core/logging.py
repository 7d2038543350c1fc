"""Structured logs: one JSON object per line in production, readable lines in development.

Three rules, enforced here rather than left to every call site:

- every line carries the conversation and ticket it is about, when there is one: code that works on a
  conversation binds it once (``with log_context(conversation_id=42):``) and every log call below it,
  in any module, includes it;
- secrets never reach the output: the values of every ``SecretStr`` setting and of secrets registered at
  run time (``register_secret``: the generated NLU token), bot tokens in Bot API URLs, ``Authorization``
  headers, OAuth parameters, passwords in database URLs and secret fields (``password``, ``…_token``) in
  reprs, JSON and validation errors are replaced by ``***`` in the message, its arguments, extra fields
  and tracebacks.  The CLI also routes all of stderr (error lines, tracebacks) through the same
  redactor (``redact_stderr``);
- message bodies are personal data: pass them only as ``extra={"text": ...}`` (or ``body``), and they
  are printed on DEBUG lines only.

``configure_logging()`` is idempotent: it replaces the handler it installed before.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import Any, TextIO

REDACTED = "***"
BODY_FIELDS: frozenset[str] = frozenset({"text", "body", "message_text"})
# Field names whose values are secret: whole words separated by _ or -, so `password`, `access_token`,
# `X-Api-Key` and `consumer_secret` match but `passed` or `tokenizer` do not.
_SECRET_WORDS = r"(?:password|passwd|secret|token|api[_-]?key|authorization|cookie|signature|credentials?)"
_SECRET_KEY_NAMES = re.compile(rf"(?:^|[_-]){_SECRET_WORDS}(?:$|[_-])", re.I)

_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("frontdesk_log_context", default={})

# The LogRecord's own attributes; anything else on a record came from `extra=` and is printed as a field.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}

# A quoted string in a repr or JSON text: '...' or "..." with backslash escapes.
_QUOTED = r"""(?:'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")"""
# A field name made of those words, inside text.
_SECRET_NAME = rf"(?:[\w-]*[_-])?{_SECRET_WORDS}(?:[_-][\w-]*)?"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Telegram Bot API URLs carry the token in the path: /bot123456:AAE.../sendMessage (any secret length:
    # a wrong token is still somebody's secret).
    (re.compile(r"(/(?:file/)?bot)\d+:[^/\s?#'\"`]+"), rf"\1{REDACTED}"),
    # a bare bot token (python-telegram-bot quotes it whole when Telegram refuses it): digits, a colon and a
    # secret with at least one non-digit, so that ids such as "chat:message" stay readable
    (re.compile(r"\b\d{5,}:(?=[0-9_-]*[A-Za-z_-])[A-Za-z0-9_-]{8,}"), REDACTED),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), rf"\1 {REDACTED}"),
    # an Authorization header's whole value, whatever its scheme: "Authorization: X", 'authorization': 'X'
    (re.compile(r"""(?i)(\bauthorization["']?\s*[:=]\s*)(?:"[^"\n]*"|'[^'\n]*'|[^\n,;}]+)"""),
     rf"\1{REDACTED}"),
    (re.compile(r'(?i)(oauth_(?:token|signature|consumer_key|nonce)="?)[^",&\s]+'), rf"\1{REDACTED}"),
    # user:password@host in URLs (database URLs, proxies)
    (re.compile(r"(://[^:/@\s]+:)[^@\s]+(@)"), rf"\1{REDACTED}\2"),
    (re.compile(r"(?i)((?:secret|token|password|api_key)=)[^&\s]+"), rf"\1{REDACTED}"),
    # a secret field in a dict repr or JSON: 'password': '...', "x_access_token": "..."
    (re.compile(rf"""(?i)(["']{_SECRET_NAME}["']\s*:\s*){_QUOTED}"""), rf"\1'{REDACTED}'"),
    # a validation error about a secret field echoes its input: pydantic's error dicts ('loc': (...,
    # 'password'), ..., 'input': '...') and its text form ("password\n  ... [type=..., input_value='...'").
    (re.compile(rf"""(?i)('loc':\s*\([^()]*'{_SECRET_NAME}'[^()]*\)[^{{}}]*?'input':\s*){_QUOTED}"""),
     rf"\1'{REDACTED}'"),
    (re.compile(rf"""(?im)(^[\w.\[\] -]*{_SECRET_NAME}\s*\n[^\n]*?\binput_value=)(?:{_QUOTED}|[^,\]\s]+)"""),
     rf"\1'{REDACTED}'"),
)


# --- context ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Bind fields (conversation_id, ticket_id, channel, ...) to every log line inside the block."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def bind(**fields: Any) -> contextvars.Token[dict[str, Any]]:
    """Bind fields until ``unbind(token)``: for code that cannot use a ``with`` block (middleware)."""
    return _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})


def unbind(token: contextvars.Token[dict[str, Any]]) -> None:
    _context.reset(token)


def current_context() -> dict[str, Any]:
    return dict(_context.get())


# --- redaction ----------------------------------------------------------------------------------------


# Secrets that exist only at run time (a generated token): every Redactor redacts them too.
_registered_secrets: set[str] = set()


def _worth_redacting(secret: str) -> bool:
    # Very short values would redact ordinary words; settings secrets are never that short.
    return bool(secret) and len(secret) >= 6


def register_secret(secret: str) -> None:
    """Redact ``secret`` from every log line and stderr write from now on (e.g. a generated token)."""
    if _worth_redacting(secret):
        _registered_secrets.add(secret)


class Redactor:
    """Replaces known secret values and secret-looking patterns in strings."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        self._secrets.update(s for s in secrets if _worth_redacting(s))

    def __call__(self, value: str) -> str:
        for secret in sorted(self._secrets | _registered_secrets, key=len, reverse=True):
            if secret in value:
                value = value.replace(secret, REDACTED)
        for pattern, replacement in _PATTERNS:
            value = pattern.sub(replacement, value)
        return value

    def scrub(self, value: Any, key: str = "") -> Any:
        if key and _SECRET_KEY_NAMES.search(key) and value not in (None, ""):
            return REDACTED
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {k: self.scrub(v, str(k)) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.scrub(v) for v in value]
        if value is None or isinstance(value, (bool, int, float)):
            return value
        return self(str(value))


def default_redactor() -> Redactor:
    """A Redactor that knows the current settings' secret values (none if the settings cannot load)."""
    redactor = Redactor()
    with contextlib.suppress(Exception):  # settings that fail to load must not stop redaction from working
        redactor.add(settings_secrets())
    return redactor


class RedactingStream(io.TextIOBase):
    """A text stream that redacts every write before passing it on (``sys.stderr`` of the CLI).

    Secrets reach stderr outside logging too: error lines (``typer.echo(err=True)``), ``print``,
    tracebacks of uncaught exceptions, warnings.  Each write is redacted whole; a secret split across
    two writes would pass, which none of those writers does.
    """

    def __init__(self, wrapped: TextIO, redactor: Redactor) -> None:
        super().__init__()
        self.wrapped = wrapped
        self.redactor = redactor

    def write(self, text: str) -> int:
        self.wrapped.write(self.redactor(text))
        return len(text)

    def flush(self) -> None:
        self.wrapped.flush()

    def fileno(self) -> int:
        return self.wrapped.fileno()

    def isatty(self) -> bool:
        return self.wrapped.isatty()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.wrapped.encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return self.wrapped.errors


def redact_stderr() -> None:
    """Route everything written to ``sys.stderr`` from now on through the redactor (idempotent)."""
    if not isinstance(sys.stderr, RedactingStream):
        sys.stderr = RedactingStream(sys.stderr, default_redactor())


def settings_secrets() -> list[str]:
    """The values of every SecretStr field of the current settings."""
    from pydantic import SecretStr

    from frontdesk.core.settings import get_settings

    settings = get_settings()
    values = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            values.append(value.get_secret_value())
    return values


class ContextAndRedactionFilter(logging.Filter):
    """Adds the bound context to each record, removes bodies above DEBUG and redacts secrets.

    It runs on the handler, so records from every library (httpx, uvicorn, telegram) pass through it.
    """

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            self._prepare(record)
        except Exception as exc:  # noqa: BLE001 - a bad log call must never break the code that logs
            record.msg, record.args = f"(log record could not be prepared: {type(exc).__name__})", None
            record.exc_info, record.exc_text = None, None
        return True

    def _prepare(self, record: logging.LogRecord) -> None:
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        message = record.getMessage()
        record.msg, record.args = self.redactor(message), None
        for key in [k for k in vars(record) if k not in _RECORD_ATTRS]:
            if key in BODY_FIELDS and record.levelno > logging.DEBUG:
                delattr(record, key)
            else:
                setattr(record, key, self.redactor.scrub(getattr(record, key), key))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor(record.exc_text)
            record.exc_info = None  # formatted and redacted once; formatters use exc_text


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRS}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, the bound context and extra fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update(_extra_fields(record))
        if record.exc_text:
            line["exc"] = record.exc_text
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """For a terminal: time, level, logger, message, then key=value for context and extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        fields = " ".join(f"{k}={v}" for k, v in _extra_fields(record).items())
        text = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if fields:
            text += f"  [{fields}]"
        if record.exc_text:
            text += "\n" + record.exc_text
        return text


_HANDLER_NAME = "frontdesk"


def configure_logging(
    level: str | int = "INFO", json: bool = False, *, stream: TextIO | None = None,
    extra_secrets: Iterable[str] = (),
) -> logging.Handler:
    """Send every logger's output, JSON or text, through the context and redaction filter to `stream`.

    Call once at process start (each CLI command does).  Uvicorn should then be started with
    ``log_config=None`` so its access and error logs go through the same handler.
    """
    level_no = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(level_no, int):
        raise ValueError(f"unknown log level {level!r}; use DEBUG, INFO, WARNING or ERROR")
    redactor = default_redactor()
    redactor.add(extra_secrets)

    target = stream or sys.stderr
    if isinstance(target, RedactingStream):  # the filter below redacts already: once is enough
        target = target.wrapped
    handler = logging.StreamHandler(target)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if json else TextFormatter())
    handler.addFilter(ContextAndRedactionFilter(redactor))

    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level_no)
    # Libraries that log every request at INFO (httpx logs full Bot API URLs) are quieter than ours.
    for noisy in ("httpx", "httpcore", "hpack", "asyncio", "aiosqlite"):
        logging.getLogger(noisy).setLevel(max(level_no, logging.WARNING))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    return handler
