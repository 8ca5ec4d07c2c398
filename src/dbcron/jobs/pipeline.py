"""One run of a report, alert or sql task: query -> files -> mail, in one pass.

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
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from dbcron.jobs import JobError, JobRequest, JobResult
from dbcron.jobs.mail.delivery import (
    attached_names,
    compose,
    deliver,
    mail_domain,
    notify_failure,
    recipients,
)
from dbcron.jobs.mail.send import OutboxMailer, make_message_id, render_default_body
from dbcron.templating import render, variables

if TYPE_CHECKING:
    from dbcron.jobs.alert import Condition, Verdict
    from dbcron.jobs.export import ExportOptions
    from dbcron.jobs.query import QueryStream
    from dbcron.model import Task

__all__ = ["notify_failure", "run_pipeline"]

PREVIEW_ROWS = 20
_VERBS = {"DELETE": "deleted", "UPDATE": "updated", "INSERT": "inserted", "MERGE": "merged"}


@dataclass
class _Output:
    """What one pass over the rows produced."""

    columns: list[str]
    rows: int = 0
    matched: int = 0
    preview: list[tuple[Any, ...]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def run_pipeline(request: JobRequest) -> JobResult:
    from dbcron.model import Task

    task = Task.model_validate(request.task)
    tz = ZoneInfo(task.schedule.timezone or request.settings.timezone)
    env = variables(request.slot, tz, task.name)
    if task.kind == "sql":
        return _run_sql(request, task, env)
    return _run_query(request, task, tz, env)


def _run_sql(request: JobRequest, task: Task, env: dict[str, Any]) -> JobResult:
    from dbcron.jobs.fence import gate
    from dbcron.jobs.query import run_statements

    counts = run_statements(request.task, env, request.timeout, commit=not request.dry_run,
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
    from dbcron.jobs.alert import parse_condition, verdict
    from dbcron.jobs.export import ExportOptions
    from dbcron.jobs.query import stream_query
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
    )
    condition = parse_condition(task.condition) if task.condition else None
    domain = mail_domain(request.settings) if task.email else ""
    out_dir = _output_dir(request, task.name)

    with stream_query(request.task, env, request.timeout) as stream:
        formats = list(export.formats) if export else []
        output = _consume(stream, formats, out_dir, stem, options, condition)

    found = verdict(condition, output.matched, output.rows) if condition is not None else None

    notes = [found.reason] if found else []
    if task.row_limit is not None and output.rows >= task.row_limit:
        notes.append(f"stopped at row_limit {task.row_limit:,}")
    result = JobResult(
        "succeeded",
        rows=output.rows,
        bytes=sum(p.stat().st_size for p in output.files),
        artifacts=[str(p) for p in output.files],
    )
    skip = _why_not_send(task, output.rows, found)
    if skip and output.files:
        count = len(output.files)
        skip = f"wrote {count} file{'' if count == 1 else 's'} ({output.rows:,} rows), {skip}"
    if skip:
        if request.dry_run:
            skip = f"dry run: {skip}"
        result.summary = "; ".join([*notes, skip])
        return result

    assert task.email is not None  # _why_not_send said there is one
    message_vars = {**env, "rows": output.rows, "columns": output.columns}
    if found is not None:
        message_vars["reason"] = found.reason
    subject = _subject(task, message_vars, found, local)
    if task.email.body:
        text, html = render(task.email.body, message_vars, "body"), None
    else:
        description = "\n".join(x for x in (task.description, found and found.reason) if x)
        text, html = render_default_body(
            task=task.name,
            description=description,
            slot=local,
            late_by=request.late_by,
            row_count=output.rows,
            columns=output.columns,
            first_rows=output.preview,
            files=[p.name for p in output.files],
        )

    def message(
        to: Sequence[str], cc: Sequence[str], bcc: Sequence[str], prefix: str
    ) -> EmailMessage:
        name = f"{task.name}.dry-run" if request.dry_run else task.name
        return compose(
            request.settings,
            message_id=make_message_id(name, request.slot, domain),
            to=to,
            cc=cc,
            bcc=bcc,
            subject=prefix + subject,
            text=text,
            html=html,
            attachments=output.files,
            output_note=str(out_dir),
        )

    msg = message(task.email.to, task.email.cc, task.email.bcc, "")
    result.artifacts += [str(out_dir / n) for n in _zips(msg, output.files)]
    if not request.dry_run:
        from dbcron.jobs.fence import gate

        gate(request, "sending its mail")
        deliver(request.settings, msg, request.timeout)
        result.summary = "; ".join([*notes, _mailed(msg, len(output.files), out_dir)])
        return result

    # Dry run: what the slot would send is written next to its files, and
    # only goes out (marked) to the addresses given on the command line.
    eml = OutboxMailer(out_dir)
    eml.send(msg)
    preview = {
        "subject": str(msg["Subject"]),
        "recipients": recipients(msg),
        "attachments": [str(out_dir / n) for n in attached_names(msg)],
        "eml": str(eml.path_for(msg)),
        "sent_to": list(request.to),
    }
    would = f"would have {_mailed(msg, len(output.files), out_dir)}"
    if request.to:
        deliver(request.settings, message(request.to, (), (), "[dry run] "), request.timeout)
        would += f"; sent to {', '.join(request.to)} instead"
    result.result = preview
    result.summary = "; ".join(["dry run", *notes, would, f"preview in {preview['eml']}"])
    return result


def _output_dir(request: JobRequest, name: str) -> Path:
    if request.dry_run:
        path = request.out_dir or Path(tempfile.mkdtemp(prefix=f"dbcron-{name}-"))
    else:
        path = request.settings.output_dir / name
    try:
        path.mkdir(parents=True, exist_ok=True)
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
) -> _Output:
    """Read the result once: every batch to every writer, the condition, the preview."""
    from dbcron.jobs.alert import row_predicate, verdict
    from dbcron.jobs.export import Writer, open_writer, safe_filename

    output = _Output(stream.columns)
    if formats and not output.columns:
        raise JobError("the query returned no columns to export", retryable=False)
    test = row_predicate(condition, output.columns) if condition is not None else None
    writers: list[Writer] = []
    try:
        for fmt in formats:
            path = out_dir / safe_filename(stem, fmt)
            writers.append(open_writer(fmt, path, output.columns, options))
        for batch in stream.batches:
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
        return "no email configured"
    if found is not None:
        return "" if found.holds else "nothing sent"
    rule = task.email.send
    if rule == "if_rows" and rows == 0:
        return "no rows: nothing sent (send: if_rows)"
    if rule == "if_empty" and rows > 0:
        return f"{rows:,} rows: nothing sent (send: if_empty)"
    return ""


def _subject(task: Task, env: dict[str, Any], found: Verdict | None, local: datetime) -> str:
    assert task.email is not None
    if task.email.subject:
        return render(task.email.subject, env, "subject")
    if found is not None:
        return f"Alert {task.name}: {found.reason}"
    return f"{task.description or task.name} ({local:%Y-%m-%d})"


def _zips(msg: EmailMessage, files: Sequence[Path]) -> list[str]:
    """Archives build_message made next to the files because they were too big."""
    names = {p.name for p in files}
    return [n for n in attached_names(msg) if n not in names and n.endswith(".zip")]


def _mailed(msg: EmailMessage, file_count: int, out_dir: Path) -> str:
    people = len(recipients(msg))
    to = f"to {people} recipient{'' if people == 1 else 's'}"
    attached = attached_names(msg)
    if not file_count:
        return f"mailed {to}"
    if not attached:
        return f"mailed {to} without the files (too large; they are in {out_dir})"
    if len(attached) == 1 and attached[0].endswith(".zip") and file_count > 1:
        return f"mailed {file_count} files zipped {to}"
    return f"mailed {len(attached)} file{'' if len(attached) == 1 else 's'} {to}"
