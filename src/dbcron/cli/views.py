"""Commands that show tasks and settings: list, show, next, export, schema, config."""

from __future__ import annotations

from datetime import datetime

import click

from dbcron.cli.app import App, local, pass_app, print_json, table

json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")


@click.command(name="list")
@json_option
@pass_app
def list_(app: App, as_json: bool) -> None:
    """Tasks with their schedule in words, next run and last result."""
    from dbcron.services import tasks

    rows = tasks.listing(app.existing_store, app.settings, app.now(), descriptions=as_json)
    if as_json:
        print_json([r.to_json() for r in rows])
        return
    if not rows:
        click.echo("no tasks; add one with 'manage-tasks add' or 'manage-tasks apply tasks/'")
        return
    table(
        [
            [
                r.name,
                r.kind,
                r.schedule if r.enabled else "disabled",
                local(r.next_run, r.timezone),
                f"{local(r.last_run, r.timezone)} {r.last_status}" if r.last_run else "-",
            ]
            for r in rows
        ],
        ["NAME", "KIND", "SCHEDULE", "NEXT RUN", "LAST RUN"],
    )


@click.command()
@click.argument("name")
@json_option
@pass_app
def show(app: App, name: str, as_json: bool) -> None:
    """A task's definition (secrets masked), next 5 fire times and last runs."""
    from dbcron.services import tasks
    from dbcron.services.task_files import dump_yaml

    data = tasks.detail(app.existing_store, name, app.settings, app.now())
    if as_json:
        data.pop("schedule_text")
        print_json(data)
        return
    upcoming = data.pop("next_runs")
    notes = data.pop("calendar_notes", {})
    recent = data.pop("recent_runs")
    text = data.pop("schedule_text")
    imported = data.pop("imported", None)
    tz = (data["schedule"].get("timezone") or app.settings.timezone)
    click.echo(dump_yaml(data).rstrip())
    click.echo(f"\n# {text}")
    click.echo("# next runs:" if upcoming else "# next runs: none")
    for ts in upcoming:
        click.echo(f"#   {local(ts, tz)}")
        for note in notes.get(ts, []):
            click.echo(f"#       {note}")
    click.echo("# last runs:" if recent else "# last runs: none yet")
    for run in recent:
        error = f"  {run['error'].splitlines()[0]}" if run["error"] else ""
        click.echo(f"#   {local(run['scheduled_for'], tz)}  {run['status']}{error}")
        for d in run["deliveries"]:
            again = " (resend)" if d["resend"] else ""
            click.echo(f"#     {d['channel']} {d['recipient']}: {d['status']}{again}"
                       f"  {d['detail']}")
    if imported:
        click.echo("# imported from tasks.json: " + ", ".join(f"{k}={v}" for k, v in
                                                          imported.items()))


@click.command(name="next")
@click.argument("name", required=False)
@click.option("-n", "count", default=5, show_default=True, type=click.IntRange(1, 1000))
@click.option("--from", "start", metavar="ISO", help="Start instead of now (ISO 8601).")
@json_option
@pass_app
def next_(app: App, name: str | None, count: int, start: str | None, as_json: bool) -> None:
    """The next N times a task fires; without NAME, every enabled task's next N, in time order."""
    from dbcron.services import tasks

    begin = _instant(start, app) if start else app.now()
    if name is None:
        fires = tasks.upcoming_all(app.existing_store, count, begin, app.settings)
        if as_json:
            print_json([{"task": n, "at": t.isoformat()} for t, n in fires])
            return
        for t, n in fires:
            click.echo(f"{t.isoformat()}  {n}")
        if not fires:
            click.echo("no more fire times (no enabled task fires again)")
        return
    times = tasks.upcoming(app.existing_store, name, count, begin, app.settings)
    if as_json:
        print_json([t.isoformat() for t, _ in times])
        return
    tz = tasks.spec_of(tasks.get(app.existing_store, name), app.settings).tz
    for t, notes in times:
        click.echo(t.astimezone(tz).isoformat())
        for note in notes:
            click.echo(f"  {note}")
    if not times:
        click.echo("no more fire times")


def _instant(text: str, app: App) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an ISO 8601 time (e.g. 2026-03-08T12:00 or 2026-03-08T12:00+01:00)",
            param_hint="--from",
        ) from None
    if value.tzinfo is None:
        from zoneinfo import ZoneInfo

        value = value.replace(tzinfo=ZoneInfo(app.settings.timezone))
    return value


@click.command()
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml",
              show_default=True)
@pass_app
def export(app: App, fmt: str) -> None:
    """Print every task as a task file (secrets masked): a backup `apply` can read."""
    from dbcron.services import tasks

    exported = tasks.export_all(app.existing_store, app.settings.timezone)
    if fmt == "json":
        print_json(exported)
    else:
        from dbcron.services.task_files import dump_yaml

        click.echo(dump_yaml({"tasks": exported}).rstrip())


@click.command()
def schema() -> None:
    """The JSON Schema of task files, for editor completion."""
    from dbcron.model import json_schema

    print_json(json_schema())


@click.command()
@json_option
@pass_app
def config(app: App, as_json: bool) -> None:
    """Effective settings, where each came from, secrets masked."""
    rows = app.settings.describe()
    if as_json:
        print_json({name: {"value": value, "source": source} for name, value, source in rows})
        return
    table([list(r) for r in rows], ["SETTING", "VALUE", "SOURCE"])


COMMANDS = [list_, show, next_, export, schema, config]
