"""The roles a Frontdesk process plays, as data: which parts the supervisor starts for each.

`frontdesk run` is `ROLE_RUN`, `frontdesk worker` is `ROLE_WORKER`, `frontdesk desk` is `ROLE_DESK`
(frontdesk/app/cli.py).  The supervisor (frontdesk/app/supervisor.py) reads a `Role` and nothing else to
decide what to start; a test that needs part of a role derives it, e.g.
``dataclasses.replace(ROLE_RUN, http=False, pollers=False)``.

Pollers always run under their account's leader lease (bot/channels/leading.py), so any number of
processes of any role can share one database.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Role:
    """The parts one process runs."""

    name: str
    http: bool
    """The HTTP app on FRONTDESK_HTTP_PORT: the desk, `/healthz`, and (`webhooks`) the channels' webhooks."""
    pollers: bool
    """Poll X and Telegram for messages, while this process holds the account's leader lease."""
    outbox: bool
    """Send the outbox's rows (the channels' senders are started for it)."""
    router: bool
    """The router worker: NLU parse, routing, tickets; starts Rasa when FRONTDESK_NLU_URL is empty."""
    webhooks: bool
    """Accept the channels' webhooks on the HTTP app (when the channel is configured for them)."""
    metrics_port: bool
    """Serve `/metrics` and `/healthz` on FRONTDESK_METRICS_PORT, unless the HTTP app already serves
    `/metrics` (`Settings.effective_public_metrics`); FRONTDESK_METRICS_PORT=0 turns it off."""
    sandbox: bool
    """Without real credentials, start the X and Telegram emulators in-process
    (frontdesk/app/sandbox_mode.py); a role without it needs real credentials or FRONTDESK_X_API_BASE."""
    retention: bool
    """Apply FRONTDESK_RETENTION_DAYS periodically (docs/privacy.md): housekeeping, not request serving."""

    @property
    def uses_channels(self) -> bool:
        """Whether the channels (their clients) are started at all: to poll, send, or take webhooks."""
        return self.pollers or self.outbox or self.webhooks


ROLE_RUN = Role(
    name="run", http=True, pollers=True, outbox=True, router=True, webhooks=True, metrics_port=True,
    sandbox=True, retention=True,
)
"""`frontdesk run`: everything in one process (SQLite, the sandbox when no credentials are set)."""

ROLE_WORKER = Role(
    name="worker", http=False, pollers=True, outbox=True, router=True, webhooks=False, metrics_port=True,
    sandbox=False, retention=True,
)
"""`frontdesk worker`: router, outbox and the pollers of the accounts whose lease it wins; no HTTP app,
so `/metrics` and `/healthz` on the metrics port; never starts an emulator."""

ROLE_DESK = Role(
    name="desk", http=True, pollers=False, outbox=False, router=False, webhooks=True, metrics_port=True,
    sandbox=False, retention=False,
)
"""`frontdesk desk`: the desk, `/healthz` and the webhooks (recorded for the workers); no router, no
pollers."""

ROLES: dict[str, Role] = {role.name: role for role in (ROLE_RUN, ROLE_WORKER, ROLE_DESK)}
