"""Commands that change tasks: add, apply, validate, edit, enable, disable, delete."""

from __future__ import annotations

import sys
from typing import Any

import click

from dbcron.cli.app import App, confirm_or_yes, pass_app


def _print_warnings(warnings: list[str]) -> None:
    for line in warnings:
        click.echo(f"warning: {line}", err=True)


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--prune", is_flag=True, help="Also delete store tasks that no file declares.")
@click.option("--yes", is_flag=True, help="Do not ask before pruning.")
@pass_app
def apply(app: App, paths: tuple[str, ...], prune: bool, yes: bool) -> None:
    """Create or update the tasks declared in YAML files or directories."""
    from dbcron.services import tasks

    checked = tasks.check_paths(paths, app.settings)
    _print_warnings(checked.warnings)
    if prune:
        doomed = tasks.prune_candidates(app.store, checked.names)
        if doomed:
            confirm_or_yes(f"Delete {len(doomed)} task(s): {', '.join(doomed)}?", yes)
    result = tasks.apply(app.store, checked, app.now(), prune=prune)
    click.echo(
        f"{len(result.created)} created, {len(result.updated)} updated, "
        f"{len(result.unchanged)} unchanged, {len(result.removed)} removed"
    )
    for verb, names in (("created", result.created), ("updated", result.updated),
                        ("removed", result.removed)):
        for name in names:
            click.echo(f"  {verb} {name}")
    if result.changed:
        app.changed()


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@pass_app
def validate(app: App, paths: tuple[str, ...]) -> None:
    """Check task files without touching the store."""
    from dbcron.services import tasks

    # The settings (and .env) say which source variables tasks may read.
    checked = tasks.check_paths(paths, app.settings)
    _print_warnings(checked.warnings)
    click.echo(f"{len(checked.definitions)} task(s) valid: {', '.join(checked.names)}")


_PROMPTS: list[tuple[str, str, set[str]]] = [
    # (flag, question, kinds it applies to; empty: every kind, never required)
    ("name", "Task name (a-z, 0-9, - and _)", {"report", "sql", "alert", "call"}),
    ("description", "Description", set()),
    ("source", "Source name (e.g. sales for DBCRON_SOURCE_SALES) or URL without password",
     {"report", "sql", "alert"}),
    ("query", "Query (SQL)", {"report", "alert"}),
    ("statement", "SQL statement", {"sql"}),
    ("condition", "Condition ('rows' or 'column op value')", {"alert"}),
    ("call", "Function (package.module:function)", {"call"}),
    ("to", "Mail to (comma-separated; empty for none)", {"report", "alert"}),
]


@click.command()
@click.option("--from-file", type=click.Path(exists=True, dir_okay=False),
              help="Add the task(s) of a YAML file instead of prompting.")
@click.option("--name")
@click.option("--kind", type=click.Choice(["report", "sql", "alert", "call"]))
@click.option("--description")
@click.option("--cron", help="Cron expression, e.g. '0 9 * * mon-fri'.")
@click.option("--every", help="Interval, e.g. 30m.")
@click.option("--at", "at_", metavar="ISO", help="One-off time, e.g. 2026-12-01T09:00.")
@click.option("--timezone", help="IANA zone of the schedule (default DBCRON_TIMEZONE).")
@click.option("--source", help="A named source (sales reads DBCRON_SOURCE_SALES) or a URL "
              "without a password.")
@click.option("--query", help="SQL query (report, alert).")
@click.option("--statement", multiple=True, help="SQL statement (sql task); repeatable.")
@click.option("--condition", help="Alert condition: 'rows' or 'column op value'.")
@click.option("--format", "formats", multiple=True, type=click.Choice(["xlsx", "pdf", "csv"]),
              help="Report attachment format; repeatable.")
@click.option("--to", help="Mail recipients, comma-separated.")
@click.option("--subject", help="Mail subject template.")
@click.option("--call", help="Python function 'package.module:function' (call task).")
@click.option("--disabled", is_flag=True, help="Add the task disabled.")
@pass_app
def add(app: App, /, from_file: str | None, **flags: Any) -> None:
    """Add a task: prompts on a terminal for what the flags leave out."""
    from dbcron.services import tasks

    if from_file:
        checked = tasks.check_paths([from_file], app.settings)
        exists = set(checked.names) & set(app.store.tasks.names())
        if exists:
            raise click.ClickException(
                f"task(s) exist already: {', '.join(sorted(exists))}; use 'apply' to update"
            )
        tasks.apply(app.store, checked, app.now())
    else:
        data = _gather(flags, interactive=sys.stdin.isatty())
        checked = tasks.add(app.store, data, "add", app.now(), app.settings)
    _print_warnings(checked.warnings)
    click.echo(f"added {', '.join(checked.names)}")
    app.changed()


def _gather(flags: dict[str, Any], interactive: bool) -> dict[str, Any]:
    """Task data from flags, prompting for the missing ones on a terminal."""
    def ask(key: str, question: str, required: bool, default: str | None = None) -> Any:
        if flags.get(key) not in (None, ()):
            return flags[key]
        if not interactive:
            if required:
                raise click.UsageError(f"missing --{key.replace('_', '-')} (or run on a terminal)")
            return default
        return click.prompt(question, default=default if default is not None else "",
                            show_default=default is not None) or None

    if flags.get("kind") is None and interactive:
        flags["kind"] = click.prompt(
            "Kind", type=click.Choice(["report", "sql", "alert", "call"]), default="report"
        )
    kind = ask("kind", "Kind", True)
    data: dict[str, Any] = {"kind": kind}
    for key, question, kinds in _PROMPTS:
        if kinds and kind not in kinds and flags.get(key) in (None, ()):
            continue  # not a field of this kind: neither asked nor required
        value = ask(key, question, kind in kinds and key != "to")
        if value in (None, "", ()):
            continue
        if key == "statement":
            data["statements"] = list(value) if isinstance(value, tuple) else [value]
        elif key == "to":
            data["email"] = {"to": [a.strip() for a in value.split(",") if a.strip()]}
        else:
            data[key] = value
    schedule: dict[str, Any] = {}
    for key, field in (("cron", "cron"), ("every", "every"), ("at_", "at")):
        if flags.get(key):
            schedule[field] = flags[key]
    if not schedule:
        if not interactive:
            raise click.UsageError("give one of --cron, --every, --at")
        schedule["cron"] = click.prompt("Cron schedule", default="0 9 * * mon-fri")
    timezone = ask("timezone", "Timezone", False, default="UTC")
    if timezone:
        schedule["timezone"] = timezone
    data["schedule"] = schedule
    if flags.get("formats"):
        data["export"] = {"formats": list(flags["formats"])}
    if flags.get("subject"):
        data.setdefault("email", {})["subject"] = flags["subject"]
    if flags.get("disabled"):
        data["enabled"] = False
    return data


@click.command()
@click.argument("name")
@pass_app
def edit(app: App, name: str) -> None:
    """Edit a task's YAML in $EDITOR; it is saved only if it is valid."""
    import yaml

    from dbcron.services import tasks
    from dbcron.services.task_files import dump_yaml, load_yaml

    original = dump_yaml(tasks.get(app.existing_store, name).data)
    edited = click.edit(original, extension=".yaml")
    if edited is None or edited == original:
        click.echo("no change")
        return
    try:
        data = load_yaml(edited)
    except yaml.YAMLError as exc:
        raise click.ClickException(
            f"edited task '{name}': invalid YAML, nothing saved: {exc}"
        ) from None
    result = tasks.replace(
        app.existing_store, name, data, app.now(), app.settings
    )
    if result.changed:
        click.echo(f"updated {name}")
        app.changed()
    else:
        click.echo("no change")


def _toggle(enabled: bool) -> click.Command:
    verb = "enable" if enabled else "disable"

    @click.command(name=verb, help=f"{verb.capitalize()} a task.")
    @click.argument("name")
    @pass_app
    def command(app: App, name: str) -> None:
        from dbcron.services import tasks

        if tasks.set_enabled(app.existing_store, name, enabled, app.now()):
            click.echo(f"{verb}d {name}")
            app.changed()
        else:
            click.echo(f"{name} is already {verb}d")

    return command


@click.command()
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask.")
@pass_app
def delete(app: App, name: str, yes: bool) -> None:
    """Delete a task (its run history stays)."""
    from dbcron.services import tasks

    tasks.get(app.existing_store, name)
    confirm_or_yes(f"Delete task {name}?", yes)
    tasks.delete(app.existing_store, name)
    click.echo(f"deleted {name}")
    app.changed()


COMMANDS = [add, apply, validate, edit, _toggle(True), _toggle(False), delete]
