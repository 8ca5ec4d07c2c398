"""Commands that change tasks: add, apply, validate, edit, enable, disable, delete."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from dbcron.cli.app import App, confirm_or_yes, pass_app
from dbcron.vocabulary import FORMATS, KINDS

if TYPE_CHECKING:
    from dbcron.settings import Settings


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
    from dbcron.settings import load_environment

    load_environment()  # a ${VAR} that ./.env sets is set for the daemon started here too
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
@click.option("--kind", type=click.Choice(KINDS))
@click.option("--description")
@click.option("--cron", help="Cron expression, e.g. '0 9 * * mon-fri'.")
@click.option("--every", help="Interval, e.g. 30m.")
@click.option("--at", "at_", metavar="ISO", help="One-off time, e.g. 2026-12-01T09:00.")
@click.option("--timezone", help="IANA zone of the schedule (default DBCRON_TIMEZONE).")
@click.option("--source", help="A named source (sales reads DBCRON_SOURCE_SALES) or a URL "
              "without a password.")
@click.option("--query", help="SQL query (report, alert).")
@click.option("--statement", multiple=True, help="SQL statement (sql task); repeatable.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Query parameter (a template such as '{{ yesterday }}'); repeatable.")
@click.option("--condition", help="Alert condition: 'rows' or 'column op value'.")
@click.option("--format", "formats", multiple=True, type=click.Choice(FORMATS),
              help="Report attachment format; repeatable.")
@click.option("--to", help="Mail recipients, comma-separated.")
@click.option("--cc", help="Copy recipients, comma-separated.")
@click.option("--bcc", help="Blind copy recipients, comma-separated.")
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
        data = _gather(flags, app.settings, interactive=sys.stdin.isatty())
        checked = tasks.add(app.store, data, "add", app.now(), app.settings)
    _print_warnings(checked.warnings)
    click.echo(f"added {', '.join(checked.names)}")
    app.changed()


_SCHEDULE_FLAGS = (("cron", "cron"), ("every", "every"), ("at_", "at"))
_SCHEDULE_PROMPTS = {
    "cron": ("Cron schedule", "0 9 * * mon-fri"),
    "every": ("Every (e.g. 30m, 2h, 1d)", "1h"),
    "at": ("At (e.g. 2026-12-01T09:00)", None),
}
# A validation problem's field -> the prompt that answers it again.
_FIELD_PROMPTS = {
    "name": "name", "description": "description", "source": "source", "query": "query",
    "statements": "statement", "condition": "condition", "call": "call", "email": "to",
    "schedule": "schedule", "params": "params",
}


def _gather(flags: dict[str, Any], settings: Settings, interactive: bool) -> dict[str, Any]:
    """Task data from flags, prompting for the missing ones on a terminal.

    On a terminal a bad answer is asked again, with the problem shown, keeping
    every other answer; without one, every missing flag is named at once.
    """
    from dbcron.errors import InvalidTask
    from dbcron.services import tasks

    answers = {k: v for k, v in flags.items() if v not in (None, (), False)}
    answers["params"] = _params(flags.get("params") or ())
    if not interactive:
        _require_flags(answers)
        return _task_data(answers)  # validated by the caller, every problem at once
    if "kind" not in answers:
        answers["kind"] = click.prompt(
            "Kind", type=click.Choice(KINDS), default="report"
        )
    for key, question, kinds in _PROMPTS:
        if key not in answers and (not kinds or answers["kind"] in kinds):
            _ask(answers, key, question)
    if not any(answers.get(flag) for flag, _ in _SCHEDULE_FLAGS):
        _ask_schedule(answers)
    if "timezone" not in answers:
        _ask(answers, "timezone", "Timezone", default="UTC")
    while True:
        data = _task_data(answers)
        try:
            tasks.check_items([("add", data)], settings)
            return data
        except InvalidTask as exc:
            fields = [_prompt_key(problem) for problem in exc.problems]
            known = [f for f in fields if f is not None]
            if len(known) < len(fields):
                raise  # a problem no answer can fix: say it and stop
            for field, problem in zip(known, exc.problems, strict=True):
                click.echo(problem.split(": ", 2)[-1], err=True)
                if field == "schedule":
                    for flag, _ in _SCHEDULE_FLAGS:
                        answers.pop(flag, None)
                    _ask_schedule(answers)
                else:
                    answers.pop(field, None)
                    question = next((q for k, q, _ in _PROMPTS if k == field), field.capitalize())
                    _ask(answers, field, question)


def _require_flags(answers: dict[str, Any]) -> None:
    """Without a terminal: name every missing flag in one usage error."""
    kind = answers.get("kind")
    missing = [] if kind else ["--kind"]
    missing += [
        f"--{key}" for key, _q, kinds in _PROMPTS
        if kind in kinds and key != "to" and key not in answers
    ]
    if not any(answers.get(flag) for flag, _ in _SCHEDULE_FLAGS):
        missing.append("one of --cron, --every, --at")
    if missing:
        raise click.UsageError(f"missing {', '.join(missing)} (or run on a terminal)")


def _ask(answers: dict[str, Any], key: str, question: str, default: str | None = None) -> None:
    value = click.prompt(question, default=default if default is not None else "",
                         show_default=default is not None)
    if value:
        answers[key] = value


def _ask_schedule(answers: dict[str, Any]) -> None:
    how = click.prompt("Schedule: cron, every or at", default="cron",
                       type=click.Choice(["cron", "every", "at"]))
    question, default = _SCHEDULE_PROMPTS[how]
    flag = "at_" if how == "at" else how
    answers[flag] = click.prompt(question, default=default) if default else click.prompt(question)


def _prompt_key(problem: str) -> str | None:
    """Which answer a validation problem is about ("add: task 'x': FIELD: message")."""
    parts = problem.split(": ", 3)
    field = parts[2] if len(parts) > 3 else ""
    if field == "(task)":  # "a report task needs 'query'"
        quoted = problem.rsplit("'", 2)
        field = quoted[1] if len(quoted) == 3 else ""
    if field == "schedule.timezone":
        return "timezone"
    return _FIELD_PROMPTS.get(field.split(".")[0])


def _params(pairs: tuple[str, ...]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"{pair!r}: write NAME=VALUE, e.g. day={{{{ yesterday }}}}",
                                     param_hint="--param")
        params[name.strip()] = value
    return params


def _task_data(answers: dict[str, Any]) -> dict[str, Any]:
    kind = answers["kind"]
    data: dict[str, Any] = {"kind": kind}
    for key in ("name", "description", "source", "query", "condition", "call"):
        if answers.get(key):
            data[key] = answers[key]
    statement = answers.get("statement")
    if statement:
        data["statements"] = list(statement) if isinstance(statement, tuple) else [statement]
    if answers.get("params"):
        data["params"] = answers["params"]
    email: dict[str, Any] = {}
    for key in ("to", "cc", "bcc"):
        if answers.get(key):
            email[key] = [a.strip() for a in answers[key].split(",") if a.strip()]
    if answers.get("subject"):
        email["subject"] = answers["subject"]
    if email:
        data["email"] = email
    schedule = {field: answers[flag] for flag, field in _SCHEDULE_FLAGS if answers.get(flag)}
    if answers.get("timezone"):
        schedule["timezone"] = answers["timezone"]
    data["schedule"] = schedule
    if answers.get("formats"):
        data["export"] = {"formats": list(answers["formats"])}
    if answers.get("disabled"):
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
