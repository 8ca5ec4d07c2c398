"""Commands about runs: run, backfill, history, status."""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
from datetime import date
from typing import TYPE_CHECKING

import click

from dbcron.cli.app import App, local, pass_app, print_json, table
from dbcron.vocabulary import RUN_STATUSES

if TYPE_CHECKING:
    from dbcron.store import RunRow

json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")


@click.command()
@click.argument("name")
@click.option("--local", is_flag=True, help="Run in this process even when a daemon is up.")
@click.option("--dry-run", is_flag=True, help="Build what the run would send; send nothing.")
@click.option("--as-of", metavar="DATE", help="Dry run: the slot of this date (YYYY-MM-DD).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Dry run: write the attachments and the mail (.eml) here.")
@click.option("--to", "to", multiple=True, help="Dry run: mail only this address.")
@json_option
@pass_app
def run(app: App, name: str, local: bool, dry_run: bool, as_of: str | None,
        out_dir: str | None, to: tuple[str, ...], as_json: bool) -> None:
    """Run a task now (through the daemon when it is up); exit 1 if the run fails."""
    if not dry_run and (as_of or out_dir or to):
        raise click.UsageError("--as-of, --out and --to go with --dry-run")
    if as_of:
        _day(as_of, "--as-of")
    if dry_run:
        from dbcron.services.dry_run import dry_run as preview

        result = preview(app.existing_store, app.settings, name, as_of, out_dir, to, app.now())
        if as_json:
            print_json(result.__dict__)
        else:
            click.echo(result.summary or "dry run done")
            for path in result.artifacts:
                click.echo(f"  {path}")
        if result.status != "succeeded":
            raise click.ClickException(result.error or "dry run failed")
        return
    import logging

    from dbcron.services.runs import mail_note, run_now

    # The runner logs each attempt for a daemon's journal; here the command's own lines
    # (progress on stderr, the outcome on stdout) say it, without the log lines between.
    logging.getLogger("dbcron").addHandler(logging.NullHandler())
    outcome = run_now(app.existing_store, app.settings, name, app.now, local,
                      lambda line: click.echo(line, err=True))
    if as_json:
        print_json(outcome.to_json())
    else:
        rows = "" if outcome.rows is None else f", {outcome.rows:,} row" + (
            "" if outcome.rows == 1 else "s")
        tries = f" after {outcome.attempt} attempts" if outcome.attempt > 1 else ""
        took = _took(outcome)  # from the first attempt's start: retry waits included
        note = mail_note(app.existing_store, outcome)
        click.echo(f"run #{outcome.id} of {name}: {outcome.status}{tries} in {took}{rows}"
                   + (f"; {note}" if note else ""))
        for path in outcome.artifacts:
            click.echo(f"  {path}")
    if outcome.status != "succeeded":
        raise click.ClickException(outcome.error or outcome.status)


@click.command()
@click.argument("name", required=False)
@click.option("--status", help=f"Only runs with this status: {', '.join(RUN_STATUSES)}.")
@click.option("--since", help="An ISO time, or a duration back from now (24h, 7d).")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--deliveries", is_flag=True,
              help="Also list each run's deliveries: channel, recipient, sent/failed/skipped.")
@json_option
@pass_app
def history(app: App, name: str | None, status: str | None, since: str | None, limit: int,
            deliveries: bool, as_json: bool) -> None:
    """Past runs, newest first: when due, started, ended, status, rows, error."""
    from dbcron.errors import DbcronError
    from dbcron.services import runs
    if status is not None and status not in RUN_STATUSES:
        raise click.BadParameter(f"{status!r}: use one of {', '.join(RUN_STATUSES)}",
                                 param_hint="--status")
    try:
        start = runs.parse_since(since, app.now(), app.settings.timezone) if since else None
    except DbcronError as exc:
        raise click.UsageError(str(exc)) from None
    found = runs.history(app.existing_store, name, status, start, limit)
    ledger = app.existing_store.deliveries.of_runs([r.id for r in found]) if deliveries else {}
    if as_json:
        print_json([{**r.to_json(), "deliveries": [d.to_json() for d in ledger[r.id]]}
                    if deliveries else r.to_json() for r in found])
        return
    if not found:
        click.echo("no runs")
        return
    tz = app.settings.timezone
    headers = ["ID", "TASK", "SLOT", "STATUS", "TOOK", "ROWS", "ERROR"]
    rows = [
        [str(r.id), r.task, local(r.scheduled_for, tz),
         r.status + (" (backfill)" if r.trigger == "backfill" else ""), _took(r),
         "-" if r.rows is None else str(r.rows)]
        for r in found
    ]
    room = _error_room(headers[:-1], rows)
    lines: list[list[str]] = []
    for row, r in zip(rows, found, strict=True):
        error = r.error.splitlines()[0] if r.error else ""
        # Wrapped, never cut: the cause ("no such column: regoin") is at the end.
        chunks = textwrap.wrap(error, room, break_on_hyphens=False) if room else [error]
        lines.append([*row, chunks[0] if chunks else ""])
        lines += [["", "", "", "", "", "", chunk] for chunk in chunks[1:]]
    table(lines, headers)
    for r in found:
        if ledger.get(r.id):
            click.echo(f"\nrun {r.id} deliveries:")
            table([[d.channel, d.recipient, d.status + (" (resend)" if d.resend else ""),
                    d.detail.splitlines()[0][:80] if d.detail else ""] for d in ledger[r.id]],
                  ["CHANNEL", "RECIPIENT", "STATUS", "DETAIL"])


def _error_room(headers: list[str], rows: list[list[str]]) -> int:
    """Columns left for the error on this terminal; 0 (no limit) when not on one."""
    if not sys.stdout.isatty() and "COLUMNS" not in os.environ:
        return 0
    widths = [max(len(c) for c in col) for col in zip(headers, *rows, strict=True)]
    used = sum(widths) + 2 * len(widths)
    return max(shutil.get_terminal_size().columns - used, 30)


def _took(run: RunRow) -> str:
    started, finished = run.started_at, run.finished_at
    if started is None or finished is None:
        return "-"
    return f"{(finished - started).total_seconds():.1f}s"


@click.command()
@click.option("--check", is_flag=True,
              help="Exit 0 when a daemon is alive and no task's last run failed, else 1.")
@json_option
@pass_app
def status(app: App, check: bool, as_json: bool) -> None:
    """Is the daemon alive, since when, what is due next, what ran in 24 h."""
    from dbcron.services import runs

    now = app.now()
    report = runs.status(app.existing_store, app.settings, now)
    if check:
        healthy, line = runs.health(report)
        click.echo(line)
        if not healthy:
            raise click.exceptions.Exit(1)
        return
    if as_json:
        print_json(report.to_json())
        return
    d = report.daemon
    tz = app.settings.timezone
    if report.alive and d is not None:
        uptime = str(now - d.started_at).split(".")[0]
        click.echo(f"daemon: alive, pid {d.pid} on {d.host}, up {uptime}, "
                   f"{d.tasks_loaded} tasks loaded, last reload {local(d.last_reload_at, tz)}")
    elif d is not None:
        click.echo(f"daemon: NOT running (last seen {local(d.heartbeat_at, tz)}, "
                   f"pid {d.pid} on {d.host})")
    else:
        click.echo("daemon: NOT running (never started on this store)")
    counts = ", ".join(f"{n} {s}" for s, n in sorted(report.runs_24h.items())) or "none"
    click.echo(f"runs in the last 24 h: {counts}")
    if report.failing:
        click.echo("last run failed: " + ", ".join(report.failing))
    click.echo("next:" if report.upcoming else "next: nothing scheduled")
    for at, name in report.upcoming:
        click.echo(f"  {local(at, at.tzinfo)}  {name}")  # each in its task's zone, as in list


@click.command()
@click.argument("run_id", metavar="RUN", type=int)
@click.option("--failed-only", is_flag=True, help="Only the deliveries that failed.")
@json_option
@pass_app
def resend(app: App, run_id: int, failed_only: bool, as_json: bool) -> None:
    """Deliver a finished run again from its kept copies, without running its query."""
    from dbcron.services.resend import resend as resend_run

    items = resend_run(app.existing_store, app.settings, run_id, failed_only, app.now())
    if as_json:
        print_json(items)
    else:
        for i in items:
            click.echo(f"{i['channel']} {i['recipient']}: {i['status']} ({i['detail']})")
    failed = sum(1 for i in items if i["status"] == "failed")
    if failed:
        raise click.ClickException(f"{failed} of {len(items)} deliveries failed again")




@click.command()
@click.argument("name")
@click.option("--from", "first", required=True, metavar="DATE",
              help="First day (YYYY-MM-DD, in the task's zone).")
@click.option("--to", "last", required=True, metavar="DATE", help="Last day, included.")
@click.option("--dry-run", is_flag=True, help="List the slots that would run; run nothing.")
@click.option("--local", is_flag=True, help="Run in this process even when a daemon is up.")
@pass_app
def backfill(app: App, name: str, first: str, last: str, dry_run: bool, local: bool) -> None:
    """Run every past slot in a date range that has no successful run, oldest first.

    Each slot runs as that slot (its dates, its Message-ID), through the daemon
    when one is up; a slot that succeeded is never run, so never mailed, again.
    Exit 1 if any slot fails.
    """
    from dbcron.services import backfill as service

    start, end = _day(first, "--from"), _day(last, "--to")
    todo = service.plan(app.existing_store, app.settings, name, start, end, app.now())
    click.echo(service.describe(todo))
    for slot in todo.slots if dry_run else []:
        click.echo(f"  would run {slot.astimezone(todo.tz).isoformat()}")
    if dry_run or not todo.slots:
        return
    finished = service.backfill(app.existing_store, app.settings, todo, app.now, local)
    runs: list[RunRow] = []
    if sys.stdout.isatty():
        with click.progressbar(finished, length=len(todo.slots), label=f"backfill of {name}",
                               show_pos=True, item_show_func=lambda run: service.bar_item(
                                   todo, run)) as bar:
            runs = list(bar)
        # The bar keeps only the latest slot in view: the failed ones are listed after it.
        for number, run in enumerate(runs, 1):
            if run.status != "succeeded":
                click.echo(service.slot_line(todo, number, run))
    else:
        # A log (cron mail, CI, journal) gets a line per slot instead of a redrawn bar.
        for number, run in enumerate(finished, 1):
            runs.append(run)
            click.echo(service.slot_line(todo, number, run))
    failed = [r for r in runs if r.status != "succeeded"]
    click.echo(f"backfill of {name}: {len(runs) - len(failed)} succeeded, {len(failed)} failed")
    if failed:
        raise click.ClickException(f"{len(failed)} slot(s) did not succeed; "
                                   f"see 'manage-tasks history {name}'")


@click.command()
@click.argument("name")
@click.option("--date", "day", metavar="DATE",
              help="The run's day the data is for (YYYY-MM-DD): the slot's date in the "
              "task's timezone; default today there.")
@pass_app
def ready(app: App, name: str, day: str | None) -> None:
    """Say a task's data is loaded: opens its ready: {signal: true} gate for that day.

    For an ETL on this host; elsewhere POST /api/v1/tasks/NAME/ready does the same.
    A run waiting for the signal goes on within about a second.
    """
    from dbcron.services.signals import after_signal, receive

    when = _day(day, "--date") if day else None
    signal = receive(app.existing_store, app.settings, name, when, app.now(), "cli")
    click.echo(f"ready signal for {name}, {signal.business_date}, recorded")
    click.echo(after_signal(app.settings.pidfile), err=True)


def _day(text: str, option: str) -> date:
    from dbcron.errors import DbcronError
    from dbcron.services.signals import parse_day

    try:
        return parse_day(text, option)
    except DbcronError:
        raise click.BadParameter(f"{text!r} is not a date; write it as YYYY-MM-DD",
                                 param_hint=option) from None


COMMANDS = [run, backfill, history, status, resend, ready]
