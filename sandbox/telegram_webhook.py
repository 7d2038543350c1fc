"""Temporary alias during the re-layer (issue 20); removed once nothing imports it."""

import sys

from sandbox.telegram import webhook as _module

sys.modules[__name__] = _module
