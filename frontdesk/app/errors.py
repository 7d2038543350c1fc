"""The one error the app layer raises when a process cannot start."""

from __future__ import annotations


class RunError(RuntimeError):
    """`frontdesk run` / `worker` / `desk` cannot start; the message says why and what to do."""
