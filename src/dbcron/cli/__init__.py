"""`manage-tasks`: edit the task store, inspect runs, talk to the daemon.

Command modules import only click at the top; each command imports what it
needs when it runs, so `manage-tasks --help` starts in well under 100 ms.
"""

from __future__ import annotations

from typing import Any

import click

from dbcron.cli.app import App


class Group(click.Group):
    """Turns dbcron's own errors into one clear line and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        from dbcron.errors import DbcronError

        try:
            return super().invoke(ctx)
        except DbcronError as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            app = ctx.find_object(App)
            if app is not None:
                app.close()


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--store", metavar="URL", help="Store URL (overrides DBCRON_STORE).")
@click.option(
    "--state-dir", metavar="DIR", help="State directory (overrides DBCRON_STATE_DIR)."
)
@click.version_option(package_name="dbcron")
@click.pass_context
def cli(ctx: click.Context, store: str | None, state_dir: str | None) -> None:
    """Manage dbcron's scheduled database tasks and see what they did."""
    ctx.obj = App({"store": store, "state_dir": state_dir})


def _register() -> None:
    from dbcron.cli import checks, edit, imports, runs, tokens, views

    for module in (edit, views, imports, runs, checks, tokens):
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main() -> None:
    cli(prog_name="manage-tasks")
