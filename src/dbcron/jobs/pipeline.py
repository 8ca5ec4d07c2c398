"""One run of a report, alert or sql task: query -> files -> mail, in one pass.

A query task goes through five steps: plan (render every template, before any
query), read (stream the rows to the writers), decide (does the mail go out),
compose (the message), send (deliver it; a dry run's sender writes the .eml
beside the files and mails only the addresses given on the command line).

Memory stays flat in the number of rows: the cursor's batches go straight to
every requested writer, and only the first 20 rows (for the mail's preview)
and a few counters are kept. Nothing here ever calls ``fetchall``.

Everything that can fail without touching the database (templates, file
names, addresses) is checked before the query runs, so a typo costs no query.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from dbcron.jobs.export._files import DIR_MODE
from dbcron.jobs.fence import gate
from dbcron.jobs.mail.delivery import attached_names, compose, deliver, mail_domain, recipients
from dbcron.jobs.mail.send import OutboxMailer, make_message_id, render_default_body
from dbcron.jobs.types import JobError, JobRequest, JobResult
from dbcron.templating import render, variables

if TYPE_CHECKING:
    from dbcron.jobs.alert import Condition, Verdict
    from dbcron.jobs.changes import ChangeTracker
    from dbcron.jobs.export import ExportOptions
    from dbcron.jobs.mail.parts import Split
    from dbcron.jobs.query import QueryStream
    from dbcron.model import Email, MailChannel, Task

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
            result.deliveries = _mail_ledger(task.email.to + task.email.cc + task.email.bcc,
                                             "skipped", decision.skip)
    else:
        mail = _compose(request, plan, output, decision, task.email, published)
        result.artifacts += [str(plan.out_dir / n) for n in _made(mail.messages, output.files)]
        sender = _send_dry_run if request.dry_run else _send
        sender(request, plan, mail, decision, result)
        if track is not None and not request.dry_run:
            track.remember(request)
    if task.deliver:
        _deliver_channels(request, plan, output, decision, result, published)
    return result


def _mails_files(task: Task, decision: _Decision) -> bool:
    """Whether a mail of this run may carry the files: the primary one, or a mail entry
    that attaches them (an alert's entries only when its condition holds)."""
    if task.email is not None and not decision.skip:
        return True
    holds = decision.found is None or decision.found.holds
    return holds and any(entry.attach for entry in _mail_entries(task))


def _mail_entries(task: Task) -> list[MailChannel]:
    from dbcron.model import MailChannel

    return [c for c in task.deliver if isinstance(c, MailChannel)]


def _deliver_channels(request: JobRequest, plan: _Plan, output: _Output, decision: _Decision,
                      result: JobResult, published: str | None) -> None:
    """The `deliver:` entries, after the primary mail: mails to other audiences, then
    webhook, Slack and Teams channels. A failed entry fails the run without a retry
    (retrying would query and mail again): the error names it, and `resend` tries it
    again from its kept copy."""
    from dbcron.jobs.deliver import DELIVERY_FAILED, RunFacts, deliver_all, skip_reason, summarize

    task = plan.task
    mails = _mail_entries(task)
    hooks = [c.label for c in task.deliver if c.type != "mail"]
    mailed = not decision.skip and task.email is not None
    facts = RunFacts(
        task=task, slot=request.slot, local=plan.local, env=plan.env, rows=output.rows,
        columns=output.columns, preview=output.preview, files=output.files,
        out_dir=plan.out_dir, reason=decision.found.reason if decision.found else None,
        holds=decision.found.holds if decision.found else None,
        mailed_to=len(task.email.to) + len(task.email.cc) if mailed and task.email else 0,
        run_id=request.run_id, attempt=request.attempt,
    )
    notes: list[str] = []
    failed: list[str] = []
    if request.dry_run:
        for entry in mails:
            why = skip_reason(entry, facts)
            notes.append(f"would not mail {entry.label} ({why})" if why else
                         _entry_dry_run(request, plan, output, decision, entry))
        if hooks:
            notes.append(f"would post to {', '.join(hooks)}")
        result.summary = "; ".join(filter(None, [result.summary, *notes]))
        return
    if decision.skip or task.email is None:
        gate(request, "delivering to its channels")  # else the mail passed the gate already
    for entry in mails:
        why = skip_reason(entry, facts)
        if why:
            result.deliveries += _mail_ledger(entry.to + entry.cc + entry.bcc, "skipped", why,
                                              entry.label)
            notes.append(f"not mailed {entry.label} ({why})")
            continue
        mail = _compose(request, plan, output, decision, entry, published)
        note, error = _send_entry(request, plan, output, mail, entry, result)
        notes += [note] if note else []
        failed += [error] if error else []
    deliveries = deliver_all(facts)
    posted, post_error = summarize(deliveries)
    result.summary = "; ".join(filter(None, [result.summary, *notes, posted]))
    result.deliveries += [d.to_json() for d in deliveries]
    if post_error:
        failed.append(post_error.removeprefix(DELIVERY_FAILED))
    if failed:
        result.status, result.retryable = "failed", False
        # After a split mail's failed part, say both.
        result.error = "; ".join(filter(None, [result.error, DELIVERY_FAILED + "; ".join(failed)]))


def _send_entry(request: JobRequest, plan: _Plan, output: _Output, mail: _Mail,
                entry: MailChannel, result: JobResult) -> tuple[str, str]:
    """Send one mail entry (never split: only the primary mail splits), kept for resend as
    `<label>.eml`: (summary, error) of which one is empty. Its own ledger rows, one per
    recipient."""
    from dbcron.jobs.deliver import keep_sent

    [message] = mail.messages
    to = recipients(message)
    keep_sent(plan.out_dir, request.run_id, f"{entry.label}.eml", message.as_bytes())
    result.artifacts += [str(plan.out_dir / n) for n in _made(mail.messages, output.files)
                         if str(plan.out_dir / n) not in result.artifacts]
    try:
        deliver(request.settings, message, request.timeout)
    except JobError as exc:
        result.deliveries += _mail_ledger(to, "failed", str(exc), entry.label)
        return "", f"{entry.label}: {exc}"
    result.deliveries += _mail_ledger(to, "sent", _accepted(request), entry.label)
    return f"{entry.label}: {_mailed(mail, plan.out_dir)}", ""


def _entry_dry_run(request: JobRequest, plan: _Plan, output: _Output, decision: _Decision,
                   entry: MailChannel) -> str:
    """A dry run writes each mail entry's .eml beside the primary one; it sends none."""
    mail = _compose(request, plan, output, decision, entry, None)
    [message] = mail.messages
    eml = OutboxMailer(plan.out_dir)
    eml.send(message)
    return (f"would have {entry.label}: {_mailed(mail, plan.out_dir)} "
            f"(preview in {eml.path_for(message)})")


@dataclass(frozen=True)
class _Plan:
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


def _plan(request: JobRequest, task: Task, tz: ZoneInfo, env: dict[str, Any]) -> _Plan:
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
    return _Plan(
        task=task,
        env=env,
        local=local,
        formats=list(export.formats) if export else [],
        stem=stem,
        options=options,
        condition=parse_condition(task.condition) if task.condition else None,
        domain=mail_domain(request.settings) if task.email or _mail_entries(task) else "",
        out_dir=_output_dir(request, task.name),
    )


def _read(request: JobRequest, plan: _Plan, track: ChangeTracker | None) -> _Output:
    from dbcron.jobs.query import stream_query

    with stream_query(plan.task, plan.env, request.timeout) as stream:
        return _consume(
            stream, plan.formats, plan.out_dir, plan.stem, plan.options, plan.condition, track
        )


@dataclass(frozen=True)
class _Decision:
    """Whether the mail goes out: `skip` says why not (empty when it goes)."""

    found: Verdict | None  # an alert's verdict
    notes: list[str]
    skip: str
    changes: dict[str, Any] = field(default_factory=dict)  # if_changed / only_new variables
    since: str = ""  # if_changed: what changed since the last mail


def _decide(task: Task, output: _Output, condition: Condition | None, dry_run: bool,
            track: ChangeTracker | None = None) -> _Decision:
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
    return _Decision(found, notes, skip, track.variables() if track else {}, since)


@dataclass(frozen=True)
class _Mail:
    """The composed mail to the task's recipients (several when split into parts), and
    how to address the same mail elsewhere."""

    messages: list[EmailMessage]
    readdress: Callable[[Sequence[str], str], list[EmailMessage]]
    file_count: int  # files the run wrote, attached or not
    split_note: str = ""  # what a split left out, and why


def _compose(request: JobRequest, plan: _Plan, output: _Output, decision: _Decision,
             spec: Email | MailChannel, published: str | None) -> _Mail:
    """The mail `spec` describes: the task's email: (the primary mail) or a mail entry of
    deliver:, which has its own Message-ID (task and label) and may leave out the files."""
    from dbcron.model import MailChannel

    task, found = plan.task, decision.found
    message_vars = {**plan.env, **decision.changes, "rows": output.rows,
                    "columns": output.columns}
    if found is not None:
        message_vars["reason"] = found.reason
    subject = _subject(task, spec.subject, message_vars, found, plan.local)
    if spec.body:
        text, html = render(spec.body, message_vars, "body"), None
    else:
        description = "\n".join(x for x in (task.description, found and found.reason) if x)
        text, html = render_default_body(
            task=task.name,
            title=plan.options.title,
            description=description,
            slot=plan.local,
            late_by=request.late_by,
            row_count=output.rows,
            columns=plan.options.labels(output.columns),
            formats=[s.format for s in plan.options.styles(output.columns)],
            first_rows=output.preview,
            files=[p.name for p in output.files],
            changes=f"{decision.since[:1].upper()}{decision.since[1:]}." if decision.since
            else "",
        )
    name = f"{task.name}.{spec.label}" if isinstance(spec, MailChannel) else task.name
    attach = not isinstance(spec, MailChannel) or spec.attach
    # Only the primary mail splits: a mail entry goes as one mail (zipped, or with a note).
    split = (_split(request, plan, output)
             if not isinstance(spec, MailChannel) and spec.too_large == "split" else None)
    files = output.files if attach else []
    # One mail (as under zip) unless the split needs more: its files, zipped or not.
    single = files if split is None else (split.parts[0] if split.parts else [])

    def messages(
        to: Sequence[str], cc: Sequence[str], bcc: Sequence[str], prefix: str
    ) -> list[EmailMessage]:
        message_id = make_message_id(f"{name}.dry-run" if request.dry_run else name,
                                     request.slot, plan.domain)
        note = published or str(plan.out_dir)
        if split is None or split.total < 2:
            return [compose(
                request.settings, message_id=message_id, to=to, cc=cc, bcc=bcc,
                subject=prefix + subject, text=text, html=html,
                attachments=single,
                output_note=note, left_out=split.left_out if split else (),
            )]
        return _parts(request, split, message_id, to, cc, bcc, prefix + subject, text, html,
                      note)

    return _Mail(
        messages=messages(spec.to, spec.cc, spec.bcc, ""),
        readdress=lambda to, prefix: messages(to, (), (), prefix),
        file_count=len(files),
        split_note=_split_note(split) if split else "",
    )


def _split_note(split: Split) -> str:
    from dbcron.jobs.mail.parts import MAX_PARTS

    if split.too_many:
        return (f"not split: it would take {split.too_many} mails, more than "
                f"{MAX_PARTS}; the files are left out")
    if split.left_out:
        names = ", ".join(p.name for p in split.left_out)
        return f"left out, too large even cut by rows: {names}"
    return ""


def _split(request: JobRequest, plan: _Plan, output: _Output) -> Split:
    """email.too_large: split: which files go in which mail, files cut by rows."""
    from dbcron.jobs.export.cut import cut
    from dbcron.jobs.mail.parts import plan_split

    limit = int(request.settings.max_attachment_mb * 1024 * 1024)
    return plan_split(output.files, limit,
                      lambda path, budget: cut(path, budget, output.columns, plan.options,
                                               output.rows))


def _parts(request: JobRequest, split: Split, message_id: str, to: Sequence[str],
           cc: Sequence[str], bcc: Sequence[str], subject: str, text: str, html: str | None,
           note: str) -> list[EmailMessage]:
    """Part 1 with the report's body, parts 2..n answering it with the rest of the files."""
    from dbcron.jobs.mail.message import append_note
    from dbcron.jobs.mail.parts import (
        first_part_note,
        later_part_text,
        part_message_id,
        part_subject,
        thread,
    )

    total = split.total
    said = first_part_note(split, request.settings.max_attachment_mb)
    built = []
    for number, files in enumerate(split.parts, start=1):
        if number == 1:
            body, alternative = append_note(text, html, said)
        else:
            body, alternative = later_part_text(subject, number, total, files), None
        msg = compose(
            request.settings, message_id=part_message_id(message_id, number), to=to, cc=cc,
            bcc=bcc, subject=part_subject(subject, number, total), text=body,
            html=alternative, attachments=files, output_note=note,
            left_out=split.left_out if number == 1 else (),
        )
        if number > 1:
            thread(msg, message_id)
        built.append(msg)
    return built


def _mail_ledger(to: Sequence[str], status: str, detail: str, channel: str = "mail"
                 ) -> list[dict[str, str]]:
    """Ledger rows of a mail, one per recipient; `channel` is "mail" for the task's email:
    (with parts, "mail part k/n") and the entry's label for a mail of deliver:."""
    return [{"channel": channel, "type": "mail", "recipient": address, "status": status,
             "detail": detail} for address in to]


def _accepted(request: JobRequest) -> str:
    return "accepted" if request.settings.smtp_host else "written to the outbox"


def _send(
    request: JobRequest, plan: _Plan, mail: _Mail, decision: _Decision, result: JobResult
) -> None:
    """Send the mail, or its parts in order; a part that fails stops the rest."""
    from dbcron.jobs.deliver import keep_sent
    from dbcron.jobs.mail.parts import kept_name, part_channel

    total = len(mail.messages)
    to = recipients(mail.messages[0])
    # Kept beside the files so `manage-tasks resend` sends these very messages again.
    for number, msg in enumerate(mail.messages, start=1):
        keep_sent(plan.out_dir, request.run_id, kept_name(number, total), msg.as_bytes())
    gate(request, "sending its mail")
    sent = _accepted(request)
    ledger: list[dict[str, str]] = []
    for number, msg in enumerate(mail.messages, start=1):
        try:
            deliver(request.settings, msg, request.timeout)
        except JobError as exc:
            ledger += _mail_ledger(to, "failed", str(exc), part_channel(number, total))
            for later in range(number + 1, total + 1):
                ledger += _mail_ledger(to, "failed", f"not sent: part {number} failed",
                                       part_channel(later, total))
            if number == 1:
                exc.deliveries = ledger
                raise
            # A retry would send the parts before it again: resend sends only the rest. The
            # run goes on to its deliver: entries, which have their own ledger rows.
            result.status, result.retryable = "failed", False
            result.error = (f"{exc} (part {number} of {total}; parts 1 to {number - 1} were "
                            f"sent, so the run is not retried: 'manage-tasks resend "
                            f"{request.run_id} --failed-only' sends the rest)")
            result.deliveries = ledger
            result.summary = "; ".join([*decision.notes, f"mailed part 1 to {number - 1} of "
                                        f"{total}; part {number} failed"])
            return
        ledger += _mail_ledger(to, "sent", sent, part_channel(number, total))
    result.deliveries = ledger
    mailed = _mailed(mail, plan.out_dir)
    result.summary = "; ".join([*decision.notes, mailed])


def _send_dry_run(
    request: JobRequest, plan: _Plan, mail: _Mail, decision: _Decision, result: JobResult
) -> None:
    """What the slot would send is written next to its files, and only goes out
    (marked) to the addresses given on the command line."""
    msg = mail.messages[0]
    eml = OutboxMailer(plan.out_dir)
    for part in mail.messages:
        eml.send(part)
    preview = {
        "subject": str(msg["Subject"]),
        "recipients": recipients(msg),
        "attachments": [str(plan.out_dir / n) for m in mail.messages for n in attached_names(m)],
        "eml": str(eml.path_for(msg)),
        "sent_to": list(request.to),
    }
    if len(mail.messages) > 1:
        preview["parts"] = [str(eml.path_for(m)) for m in mail.messages]
    would = f"would have {_mailed(mail, plan.out_dir)}"
    if request.to:
        for part in mail.readdress(request.to, "[dry run] "):
            deliver(request.settings, part, request.timeout)
        to = ", ".join(request.to)
        if request.settings.smtp_host:
            would += f"; sent to {to} instead"
        else:  # no SMTP server configured: the mail went to the outbox, not to anyone
            would += (f"; for {to}, written to the outbox {request.settings.outbox_dir} "
                      "instead (DBCRON_SMTP_HOST is not set)")
    result.result = preview
    result.summary = "; ".join(["dry run", *decision.notes, would, f"preview in {preview['eml']}"])


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
) -> _Output:
    """Read the result once: every batch to every writer, the condition, the preview.

    With a change tracker, rows delivered before (`only_new`) are dropped first.
    """
    from dbcron.jobs.alert import row_predicate, verdict
    from dbcron.jobs.export import Writer, open_writer, safe_filename

    output = _Output(stream.columns)
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


def _subject(task: Task, template: str | None, env: dict[str, Any], found: Verdict | None,
             local: datetime) -> str:
    """The subject `template` renders; without one, the email: subject, else a default."""
    for text in (template, task.email.subject if task.email else None):
        if text:
            return render(text, env, "subject")
    if found is not None:
        return f"Alert {task.name}: {found.reason}"
    return f"{task.description or task.name} ({local:%Y-%m-%d})"


def _made(messages: Sequence[EmailMessage], files: Sequence[Path]) -> list[str]:
    """Files build_message or the split made next to the exports: a zip, the pieces."""
    names = {p.name for p in files}
    return [n for m in messages for n in attached_names(m) if n not in names]


def _mailed(mail: _Mail, out_dir: Path) -> str:
    people = len(recipients(mail.messages[0]))
    to = f"to {people} recipient{'' if people == 1 else 's'}"
    return "; ".join(filter(None, [_mailed_files(mail, out_dir, to), mail.split_note]))


def _mailed_files(mail: _Mail, out_dir: Path, to: str) -> str:
    msg, file_count = mail.messages[0], mail.file_count
    if len(mail.messages) > 1:
        return (f"mailed {file_count} file{'' if file_count == 1 else 's'} in "
                f"{len(mail.messages)} parts {to}")
    attached = attached_names(msg)
    if not file_count:
        return f"mailed {to}"
    if not attached:
        return f"mailed {to} without the files (too large; they are in {out_dir})"
    if len(attached) == 1 and attached[0].endswith(".zip") and file_count > 1:
        return f"mailed {file_count} files zipped {to}"
    return f"mailed {len(attached)} file{'' if len(attached) == 1 else 's'} {to}"
