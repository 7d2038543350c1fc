"""Temporary alias during the re-layer (issue 20); removed once nothing imports it."""

import sys

from bot.channels.x import client as _module

sys.modules[__name__] = _module
