"""One run of a report, alert or sql task: query -> files -> mail, in one pass.

A query task goes through five steps: plan (render every template, before any
query), read (stream the rows to the writers), decide (does the mail go out),
then compose and send (jobs/report_mail.py: the primary mail, its parts and the
mail entries of deliver:; a dry run's sender writes the .eml beside the files
and mails only the addresses given on the command line).

Memory stays flat in the number of rows: the cursor's batches go straight to
every requested writer, and only the first 20 rows (for the mail's preview)
and a few counters are kept. Nothing here ever calls ``fetchall``.

Everything that can fail without touching the database (templates, file
names, addresses) is checked before the query runs, so a typo costs no query.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from dbcron.jobs.export._files import DIR_MODE
from dbcron.jobs.fence import gate
from dbcron.jobs.mail.delivery import mail_domain
from dbcron.jobs.report_mail import (
    compose_mail,
    deliver_entries,
    made_files,
    mail_entries,
    mail_ledger,
    send_dry_run,
    send_mail,
)
from dbcron.jobs.types import JobError, JobRequest, JobResult
from dbcron.templating import render, variables

if TYPE_CHECKING:
    from dbcron.jobs.alert import Condition, Verdict
    from dbcron.jobs.changes import ChangeTracker
    from dbcron.jobs.export import ExportOptions
    from dbcron.jobs.query import QueryStream
    from dbcron.model import Task

PREVIEW_ROWS = 20
_VERBS = {"DELETE": "deleted", "UPDATE": "updated", "INSERT": "inserted", "MERGE": "merged"}


@dataclass
class Output:
    """What one pass over the rows produced."""

    columns: list[str]
    rows: int = 0
    matched: int = 0
    preview: list[tuple[Any, ...]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def run_pipeline(request: JobRequest) -> JobResult:
    task = request.task
    tz = ZoneInfo(task.schedule.timezone or request.settings.timezone)
    env = variables(request.slot, tz, task.name)
    if task.kind == "sql":
        return _run_sql(request, task, env)
    return _run_query(request, task, tz, env)


def _run_sql(request: JobRequest, task: Task, env: dict[str, Any]) -> JobResult:
    from dbcron.jobs.query import run_statements

    counts = run_statements(task, env, request.timeout, commit=not request.dry_run,
                            before_commit=lambda: gate(request, "committing"))
    statements = [s for s in task.statements or [] if s.strip()]
    summary = "; ".join(_describe_count(s, n) for s, n in zip(statements, counts, strict=True))
    if request.dry_run:
        summary = f"dry run, rolled back: {summary}"
    return JobResult(
        "succeeded", rows=sum(n for n in counts if n > 0), result=counts, summary=summary
    )


def _describe_count(statement: str, count: int) -> str:
    verb = statement.split(None, 1)[0].upper()
    if count < 0:
        return f"ran {verb}"
    return f"{_VERBS.get(verb, 'affected')} {count:,} row{'' if count == 1 else 's'}"


def _run_query(request: JobRequest, task: Task, tz: ZoneInfo, env: dict[str, Any]) -> JobResult:
    """plan -> read -> decide -> compose -> send; a dry run differs only in its sender."""
    from dbcron.jobs.changes import ChangeTracker

    plan = _plan(request, task, tz, env)
    if task.burst is not None:
        from dbcron.jobs.burst import run_burst

        return run_burst(request, plan)
    track = ChangeTracker.for_request(request)
    output = _read(request, plan, track)
    if track is not None:
        track.count(request)
    decision = _decide(task, output, plan.condition, request.dry_run, track)
    result = JobResult(
        "succeeded",
        rows=output.rows,
        bytes=sum(p.stat().st_size for p in output.files),
        artifacts=[str(p) for p in output.files],
    )
    from dbcron.jobs.deliver.publish import publish

    # Files too large to mail are published once, for every mail of the run that carries
    # them; a run that mails none of its files (a quiet alert) publishes nothing.
    published = None
    if not request.dry_run and _mails_files(task, decision):
        published = publish(output.files, request.settings, task.name, plan.local)
    if task.email is None or decision.skip:
        result.summary = "; ".join(filter(None, [*decision.notes, decision.skip]))
        if task.email is not None and not request.dry_run:
            result.deliveries = mail_ledger(task.email.to + task.email.cc + task.email.bcc,
                                             "skipped", decision.skip)
    else:
        mail = compose_mail(request, plan, output, decision, task.email, published)
        result.artifacts += [str(plan.out_dir / n) for n in made_files(mail.messages, output.files)]
        sender = send_dry_run if request.dry_run else send_mail
        sender(request, plan, mail, decision, result)
        if track is not None and not request.dry_run:
            track.remember(request)
    if task.deliver:
        deliver_entries(request, plan, output, decision, result, published)
    return result


def _mails_files(task: Task, decision: Decision) -> bool:
    """Whether a mail of this run may carry the files: the primary one, or a mail entry
    that attaches them (an alert's entries only when its condition holds)."""
    if task.email is not None and not decision.skip:
        return True
    holds = decision.found is None or decision.found.holds
    return holds and any(entry.attach for entry in mail_entries(task))


@dataclass(frozen=True)
class Plan:
    """Everything decided before the query runs, so a typo in a template costs no query."""

    task: Task
    env: dict[str, Any]
    local: datetime  # the slot in the task's zone
    formats: list[str]
    stem: str
    options: ExportOptions
    condition: Condition | None
    domain: str
    out_dir: Path


def _plan(request: JobRequest, task: Task, tz: ZoneInfo, env: dict[str, Any]) -> Plan:
    from dbcron.cells import parse_format
    from dbcron.jobs.alert import parse_condition
    from dbcron.jobs.export import ColumnStyle, ExportOptions
    from dbcron.model import Export

    # A report exists to produce files; an alert only attaches them when asked.
    export = task.export or (Export() if task.kind == "report" else None)
    stem = render(export.filename, env, "filename") if export else ""
    local = request.slot.astimezone(tz)
    title = ""
    if export:
        title = render(export.title, env, "title") if export.title else task.description
    options = ExportOptions(
        title=title or task.name,
        subtitle=f"Scheduled for {local:%Y-%m-%d %H:%M} {local.tzname()}",
        tz=tz,
        columns={
            name: ColumnStyle(
                format=parse_format(c.format) if c.format else None, label=c.label, wrap=c.wrap
            )
            for name, c in (export.columns.items() if export else ())
        },
        csv_encoding=export.csv.encoding if export else "utf-8-sig",
        csv_delimiter=export.csv.delimiter if export else ",",
        csv_formulas=export.csv.formulas if export else "escape",
    )
    return Plan(
        task=task,
        env=env,
        local=local,
        formats=list(export.formats) if export else [],
        stem=stem,
        options=options,
        condition=parse_condition(task.condition) if task.condition else None,
        domain=mail_domain(request.settings) if task.email or mail_entries(task) else "",
        out_dir=_output_dir(request, task.name),
    )


def _read(request: JobRequest, plan: Plan, track: ChangeTracker | None) -> Output:
    from dbcron.jobs.query import stream_query

    with stream_query(plan.task, plan.env, request.timeout) as stream:
        return _consume(
            stream, plan.formats, plan.out_dir, plan.stem, plan.options, plan.condition, track
        )


@dataclass(frozen=True)
class Decision:
    """Whether the mail goes out: `skip` says why not (empty when it goes)."""

    found: Verdict | None  # an alert's verdict
    notes: list[str]
    skip: str
    changes: dict[str, Any] = field(default_factory=dict)  # if_changed / only_new variables
    since: str = ""  # if_changed: what changed since the last mail


def _decide(task: Task, output: Output, condition: Condition | None, dry_run: bool,
            track: ChangeTracker | None = None) -> Decision:
    from dbcron.jobs.alert import verdict

    found = verdict(condition, output.matched, output.rows) if condition is not None else None
    notes = [found.reason] if found else []
    if task.row_limit is not None and output.rows >= task.row_limit:
        notes.append(f"stopped at row_limit {task.row_limit:,}")
    skip = _why_not_send(task, output.rows, found)
    if not skip and track is not None:
        skip = track.skip_reason()
    if skip and output.files:
        count = len(output.files)
        skip = f"wrote {count} file{'' if count == 1 else 's'} ({output.rows:,} rows), {skip}"
    if skip and dry_run:
        skip = f"dry run: {skip}"
    since = track.since() if track is not None and not skip else ""
    if since:
        notes.append(since)
    return Decision(found, notes, skip, track.variables() if track else {}, since)


def _output_dir(request: JobRequest, name: str) -> Path:
    if request.dry_run:
        path = request.out_dir or Path(tempfile.mkdtemp(prefix=f"dbcron-{name}-"))
    else:
        path = request.settings.output_dir / name
    try:
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    except OSError as exc:
        raise JobError(f"cannot create the output directory {path}: {exc.strerror}") from None
    return path


def _consume(
    stream: QueryStream,
    formats: Sequence[str],
    out_dir: Path,
    stem: str,
    options: ExportOptions,
    condition: Condition | None,
    track: ChangeTracker | None = None,
) -> Output:
    """Read the result once: every batch to every writer, the condition, the preview.

    With a change tracker, rows delivered before (`only_new`) are dropped first.
    """
    from dbcron.jobs.alert import row_predicate, verdict
    from dbcron.jobs.export import Writer, open_writer, safe_filename

    output = Output(stream.columns)
    if formats and not output.columns:
        raise JobError("the query returned no columns to export", retryable=False)
    test = row_predicate(condition, output.columns) if condition is not None else None
    if track is not None:
        track.start(output.columns)
    writers: list[Writer] = []
    try:
        for fmt in formats:
            path = out_dir / safe_filename(stem, fmt)
            writers.append(open_writer(fmt, path, output.columns, options))
        for batch in stream.batches:
            if track is not None:
                batch = track.take(batch)
            for writer in writers:
                writer.write(batch)
            if len(output.preview) < PREVIEW_ROWS:
                output.preview += [tuple(r) for r in batch[: PREVIEW_ROWS - len(output.preview)]]
            if test is not None:
                output.matched += sum(1 for row in batch if test(row))
            output.rows += len(batch)
        if condition is not None and not verdict(condition, output.matched, output.rows).holds:
            # A quiet alert leaves nothing behind (it runs every few minutes), and must
            # not replace the same-named file an earlier alert mailed.
            for writer in writers:
                writer.abort()
        else:
            output.files = [writer.close() for writer in writers]
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    return output


def _why_not_send(task: Task, rows: int, found: Verdict | None) -> str:
    """Empty when the mail goes out, else the summary saying why it does not."""
    if task.email is None:
        return "" if task.deliver else "no email configured"
    if found is not None:
        return "" if found.holds else "nothing sent"
    rule = task.email.send
    if rule == "if_rows" and rows == 0:
        return "no rows: nothing sent (send: if_rows)"
    if rule == "if_empty" and rows > 0:
        return f"{rows:,} rows: nothing sent (send: if_empty)"
    return ""

