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

    app.add_typer(db_app, name="db", help="The ticket store: migrations and checks.")

    from sandbox.cli import sandbox_command

    app.command(name="sandbox")(sandbox_command)


_register_subcommands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
