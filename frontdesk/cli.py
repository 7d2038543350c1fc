"""The `frontdesk` command: one Typer app, with each part contributing its own sub-commands.

Sub-apps are imported here and nowhere else, so the parts never import each other through the CLI.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="frontdesk",
    help="Frontdesk: a customer-contact bot and support desk for brands on X and Telegram.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold secrets
)


def _register_subcommands() -> None:
    from storage.cli import app as db_app

    from nlu.cli import app as nlu_app

    app.add_typer(db_app, name="db", help="The ticket store: migrations and checks.")
    app.add_typer(nlu_app, name="nlu", help="The NLU service (Rasa): train, serve, parse, eval.")

    from sandbox.cli import sandbox_command

    app.command(name="sandbox")(sandbox_command)

    from desk.cli import app as agents_app
    from nlu.corrections import export_corrections_command

    app.add_typer(agents_app, name="agents", help="The desk's agent accounts: add, list, disable, link Telegram.")
    # Moves under `frontdesk nlu` when the NLU part's sub-app lands.
    app.command("nlu-export-corrections")(export_corrections_command)


_register_subcommands()


# --- the bot: `frontdesk run` and `frontdesk worker` (frontdesk/run.py) ---------------------------------------


@app.command()
def run() -> None:
    """Start everything: store, NLU server, X channel, outbox, router worker, desk and /healthz.

    Without X credentials it runs in sandbox mode against the local X emulator and prints how to play
    a customer with curl.  Ctrl-C (or SIGTERM) stops every part cleanly.
    """
    _run_supervised(with_http=True, with_channels=True)


@app.command()
def worker() -> None:
    """Run only the router worker and the outbox loop (to scale out beside a `frontdesk run`)."""
    _run_supervised(with_http=False, with_channels=False)


def _run_supervised(*, with_http: bool, with_channels: bool) -> None:
    import asyncio
    import logging

    from bot.content import ContentError
    from bot.hours import HoursError
    from frontdesk.run import RunError, run_forever
    from frontdesk.settings import get_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore", "aiosqlite", "sqlalchemy.engine", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        asyncio.run(run_forever(get_settings(), with_http=with_http, with_channels=with_channels))
    except (RunError, ContentError, HoursError) as exc:
        typer.echo(f"frontdesk: cannot start: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        pass


def main() -> None:
    app()


if __name__ == "__main__":
    main()
