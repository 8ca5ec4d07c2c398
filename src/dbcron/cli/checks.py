"""Commands that check the setup or tidy up: test-email, test-source, prune."""

from __future__ import annotations

import click

from dbcron.cli.app import App, pass_app


@click.command(name="test-email")
@click.argument("address")
@pass_app
def test_email(app: App, address: str) -> None:
    """Send a test mail with the current settings and say what is wrong, if anything."""
    from dbcron.services.checks import check_email

    click.echo(check_email(app.settings, address, app.now()))


@click.command(name="test-source")
@click.argument("target", metavar="TASK|SOURCE|URL")
@pass_app
def test_source(app: App, target: str) -> None:
    """Connect to a task's source, a named source (sales = DBCRON_SOURCE_SALES) or a URL,
    run SELECT 1, name the server and warn when the login can write."""
    import os

    from dbcron.services.checks import check_source
    from dbcron.sources import NAME, source_variable

    settings = app.settings  # loads .env, where named sources usually live
    named = NAME.match(target) is not None and source_variable(target) in os.environ
    if "://" in target or "${" in target or named:
        click.echo(check_source(target, settings))
        return
    from dbcron.errors import TaskNotFound

    row = app.existing_store.tasks.get(target)
    if row is None:
        raise TaskNotFound(target, app.existing_store.tasks.names())
    click.echo(check_source(row.data, app.settings))


@click.command()
@pass_app
def prune(app: App) -> None:
    """Delete run history and exported files past their keep days; say what went."""
    from dbcron.daemon.housekeeping import prune as prune_now

    click.echo(prune_now(app.store, app.settings, app.now()).describe())


COMMANDS = [test_email, test_source, prune]
