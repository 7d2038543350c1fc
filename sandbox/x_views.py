"""Temporary alias during the re-layer (issue 20); removed once nothing imports it."""

import sys

from sandbox.x import views as _module

sys.modules[__name__] = _module
