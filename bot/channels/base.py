"""What every channel provides to the rest of the bot, and nothing more.

Inbound: a channel turns platform events into `storage.actions.InboundMessage`, records each with
`storage.actions.record_inbound` (de-duplicated, before any other work), and calls `wake()` so the router
looks at its inbox now rather than at its next tick.

Outbound: the outbox loop (`bot/outbox.py`) leases due rows and hands each to the channel's
`ChannelSender`.  A sender raises `SendError` to say what should happen next.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from storage.models import Channel
from storage.outbox import Delivery

Wake = Callable[[], None]


class SendError(Exception):
    """Delivery failed.  `permanent`: never retry (the platform refused it for good);
    `retry_after_s`: the platform said when to try again (rate limit)."""

    def __init__(self, message: str, *, permanent: bool = False, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after_s = retry_after_s


class ChannelSender(Protocol):
    channel: Channel

    async def deliver(self, delivery: Delivery) -> str:
        """Send it; return the platform's id for what was posted."""
        ...

    async def find_delivered(self, delivery: Delivery) -> str | None:
        """After a crash mid-send: the platform id if the account already posted this, else None."""
        ...
