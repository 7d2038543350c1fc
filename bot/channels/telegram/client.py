"""Building the python-telegram-bot `Bot` that every Telegram part shares, and reading its errors.

One `Bot` (one HTTP connection pool) serves the customer poller, the sender and the agents' pager.  Long
polls get their own request object, so a 25-second getUpdates never holds a connection a send needs.
"""

from __future__ import annotations

import datetime as dtm
import warnings

from telegram import Bot
from telegram.error import RetryAfter
from telegram.request import HTTPXRequest

TELEGRAM_API = "https://api.telegram.org"

# What Frontdesk asks Telegram for: customer messages, and the agents' button presses.
ALLOWED_UPDATES = ("message", "callback_query")


def api_urls(api_base: str) -> tuple[str, str]:
    """`(base_url, base_file_url)` for python-telegram-bot from an API root such as the sandbox's
    ``http://127.0.0.1:8081`` (empty: the real Telegram)."""
    root = (api_base or TELEGRAM_API).rstrip("/")
    return f"{root}/bot", f"{root}/file/bot"


def build_bot(token: str, api_base: str = "", *, connections: int = 8) -> Bot:
    """A `Bot` for `token` on `api_base`; call ``await bot.initialize()`` (or ``async with bot``) before use."""
    if not token or ":" not in token:
        raise ValueError(
            "the Telegram token looks wrong: it is '<bot id>:<secret>' as given by @BotFather; "
            "set FRONTDESK_TELEGRAM_TOKEN"
        )
    base_url, base_file_url = api_urls(api_base)
    return Bot(
        token,
        base_url=base_url,
        base_file_url=base_file_url,
        request=HTTPXRequest(connection_pool_size=connections, read_timeout=15.0, write_timeout=15.0),
        get_updates_request=HTTPXRequest(connection_pool_size=1),
    )


def retry_after_seconds(exc: RetryAfter) -> float:
    """How long Telegram asked us to wait, in seconds (PTB 22 is moving this attribute to timedelta)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = exc.retry_after
    if isinstance(value, dtm.timedelta):
        return value.total_seconds()
    return float(value)
