"""`import`: bring in the older tool's tasks.json."""

from __future__ import annotations

from pathlib import Path

import click

from dbcron.cli.app import App, pass_app


@click.command(name="import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--env-file", type=click.Path(dir_okay=False, path_type=Path), default=Path(".env"),
    show_default=True,
    help="Where the database URLs go as VAR=url lines (created 0600, appended).",
)
@click.option("--timezone", metavar="ZONE",
              help="IANA zone of the schedules (default: this host's, as the old tool used).")
@pass_app
def import_(app: App, file: Path, env_file: Path, timezone: str | None) -> None:
    """Import tasks.json: tasks into the store, database URLs into the env file."""
    import os

    from dbcron.model import check_timezone
    from dbcron.services import imports

    if timezone is not None:
        try:
            check_timezone(timezone)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--timezone") from None
        zone = f"{timezone} (--timezone)"
    else:
        timezone = imports.host_timezone(os.environ)
        zone = f"{timezone}, this host's timezone, as the old tool used (--timezone to change)"
    outcome = imports.import_file(
        lambda: app.store, file, env_file, app.now(), timezone, app.settings
    )
    for line in outcome.warnings:
        click.echo(f"warning: {line}", err=True)
    result = outcome.result
    click.echo(
        f"imported {len(result.created) + len(result.updated)} task(s) from {file}: "
        f"{len(result.created)} created, {len(result.updated)} updated, "
        f"{len(result.unchanged)} unchanged"
    )
    click.echo(f"  schedules in {zone}")
    for original, name in outcome.renamed:
        click.echo(f"  '{original}' -> {name}")
    for var, shown in outcome.env_lines:
        click.echo(f"  {var}={shown}  (written to {env_file})")
    if result.changed:
        app.changed()


COMMANDS = [import_]
