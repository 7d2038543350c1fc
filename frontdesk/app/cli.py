"""The `frontdesk` command: one Typer app, with each part contributing its own sub-commands.

Sub-apps are imported here and nowhere else, so the parts never import each other through the CLI.
"""

from __future__ import annotations

import typer

from frontdesk.app.roles import ROLE_DESK, ROLE_RUN, ROLE_WORKER, Role

app = typer.Typer(
    name="frontdesk",
    help="Frontdesk: a customer-contact bot and support desk for brands on X and Telegram.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold secrets
)


def _register_subcommands() -> None:
    from nlu.cli import app as nlu_app
    from storage.cli import app as db_app

    app.add_typer(db_app, name="db", help="The ticket store: migrations and checks.")
    app.add_typer(nlu_app, name="nlu", help="The NLU service (Rasa): train, serve, parse, eval.")

    from sandbox.cli import sandbox_command

    app.command(name="sandbox")(sandbox_command)

    from desk.cli import app as agents_app
    from desk.corrections import export_corrections_command

    app.add_typer(agents_app, name="agents", help="The desk's agent accounts: add, list, disable, enable, "
                  "set-password, end-sessions, link-telegram.")
    # The desk owns corrections (they live in the store); the command sits with the other NLU commands.
    nlu_app.command("export-corrections")(export_corrections_command)

    from bot.content_cli import app as content_app

    app.add_typer(content_app, name="content", help="The brand's content (content/): check a folder.")

    from bot.decisions_cli import app as eval_app
    from desk.customers_cli import app as customers_app

    app.add_typer(eval_app, name="eval", help="Measure what the bot does with labelled messages (decisions).")

    app.add_typer(customers_app, name="customers", help="Customers' personal data: export, erase, retention.")

    from desk.events_cli import app as events_app

    app.add_typer(events_app, name="events", help="Events: export an event's registrations as CSV.")

    from bot.channels.x.cli import app as x_app

    app.add_typer(x_app, name="x", help="The X channel: register, check and remove its Account Activity webhook.")


_register_subcommands()


# --- the roles: `frontdesk run`, `worker`, `desk` (frontdesk/app/roles.py, supervisor.py) -----------------


@app.command()
def run() -> None:
    """Start everything: store, NLU server, X channel, outbox, router worker, desk and /healthz.

    Without X credentials it runs in sandbox mode against the local X emulator and prints how to play
    a customer with curl.  Ctrl-C (or SIGTERM) stops every part cleanly.
    """
    _run_supervised(ROLE_RUN)


@app.command()
def worker() -> None:
    """Route the inbox, send the outbox, and poll X/Telegram while this process holds their leader lease.

    Run any number against one PostgreSQL database.  Serves /metrics and /healthz on
    FRONTDESK_METRICS_PORT (9100).  Needs X credentials or FRONTDESK_X_API_BASE (it never starts an
    emulator) and FRONTDESK_NLU_URL (or it starts its own Rasa).
    """
    _run_supervised(ROLE_WORKER)


@app.command()
def desk() -> None:
    """Serve the agents' desk, /healthz and the X/Telegram webhooks (no router, no pollers).

    /metrics: on FRONTDESK_HTTP_PORT in sandbox mode (or with FRONTDESK_PUBLIC_METRICS), else on
    FRONTDESK_METRICS_PORT (9100).  Run any number behind a load balancer; they share the database and
    need the same FRONTDESK_SECRET_KEY.
    """
    _run_supervised(ROLE_DESK)


def _run_supervised(role: Role) -> None:
    from bot.content import ContentError
    from frontdesk.app.event_loop import run_event_loop
    from frontdesk.app.supervisor import RunError, run_forever
    from frontdesk.core.business_hours import HoursError
    from frontdesk.core.logging import configure_logging
    from frontdesk.core.settings import InsecureSettings, get_settings

    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    try:
        run_event_loop(run_forever(settings, role))
    except (RunError, ContentError, HoursError, InsecureSettings) as exc:
        typer.echo(f"frontdesk: cannot start: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        pass


def main() -> None:
    from frontdesk.core.logging import redact_stderr

    # Error lines, tracebacks and warnings reach stderr outside logging: they are redacted the same way.
    redact_stderr()
    app()


if __name__ == "__main__":
    main()
