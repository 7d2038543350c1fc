"""The X (Twitter) channel: mentions and DMs in (polled or pushed), replies and DMs out, each exactly once."""

from bot.channels.x.channel import XChannel, XStartError
from bot.channels.x.dms import DmPoller
from bot.channels.x.mentions import MentionsPoller
from bot.channels.x.sender import XSender
from bot.channels.x.webhook import XWebhookHandler, make_x_webhook_router

__all__ = [
    "DmPoller",
    "MentionsPoller",
    "XChannel",
    "XSender",
    "XStartError",
    "XWebhookHandler",
    "make_x_webhook_router",
]
