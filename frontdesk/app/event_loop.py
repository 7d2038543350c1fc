"""`run_event_loop`: how every long-running Frontdesk process (the roles, the sandbox) runs its main coroutine."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


def run_event_loop(main: Coroutine[Any, Any, Any]) -> Any:
    """Run `main` on uvloop (libuv), or on plain asyncio if uvloop is not installed.

    These processes are loops of small I/O steps, and uvloop's loop spends about half the CPU of
    asyncio's own per step.  That matters for the emulators too: on one machine (the benchmarks, CI)
    the sandbox shares the cores with the bot it stands in front of.
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
