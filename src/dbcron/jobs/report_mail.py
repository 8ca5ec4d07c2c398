"""The mails of a report or alert run: composed from `email:` (the primary mail) or a
mail entry of `deliver:`, split into parts when too large, sent past the side-effect
gate with one ledger row per recipient, or written beside the files by a dry run.

The pipeline (jobs/pipeline.py) plans, reads and decides; this module turns its
decision into messages and deliveries. Every message of a slot has a Message-ID of its
own that retries and `resend` keep, so a recipient never gets the same mail twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbcron.jobs.fence import gate
from dbcron.jobs.mail.delivery import attached_names, compose, deliver, recipients
from dbcron.jobs.mail.send import OutboxMailer, make_message_id, render_default_body
from dbcron.jobs.types import JobError, JobRequest, JobResult
from dbcron.templating import render

if TYPE_CHECKING:
    from dbcron.jobs.alert import Verdict
    from dbcron.jobs.mail.parts import Split
    from dbcron.jobs.pipeline import Decision, Output, Plan
    from dbcron.model import Email, MailChannel, Task


def mail_entries(task: Task) -> list[MailChannel]:
    """The task's deliver: entries that are mails (the others are webhook, Slack, Teams)."""
    from dbcron.model import MailChannel

    return [c for c in task.deliver if isinstance(c, MailChannel)]


def deliver_entries(request: JobRequest, plan: Plan, output: Output, decision: Decision,
                    result: JobResult, published: str | None) -> None:
    """The `deliver:` entries, after the primary mail: mails to other audiences, then
    webhook, Slack and Teams channels. A failed entry fails the run without a retry
    (retrying would query and mail again): the error names it, and `resend` tries it
    again from its kept copy."""
    from dbcron.jobs.deliver import DELIVERY_FAILED, RunFacts, deliver_all, skip_reason, summarize

    task = plan.task
    mails = mail_entries(task)
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
            result.deliveries += mail_ledger(entry.to + entry.cc + entry.bcc, "skipped", why,
                                              entry.label)
            notes.append(f"not mailed {entry.label} ({why})")
            continue
        mail = compose_mail(request, plan, output, decision, entry, published)
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


def _send_entry(request: JobRequest, plan: Plan, output: Output, mail: Mail,
                entry: MailChannel, result: JobResult) -> tuple[str, str]:
    """Send one mail entry (never split: only the primary mail splits), kept for resend as
    `<label>.eml`: (summary, error) of which one is empty. Its own ledger rows, one per
    recipient."""
    from dbcron.jobs.deliver import keep_sent

    [message] = mail.messages
    to = recipients(message)
    keep_sent(plan.out_dir, request.run_id, f"{entry.label}.eml", message.as_bytes())
    result.artifacts += [str(plan.out_dir / n) for n in made_files(mail.messages, output.files)
                         if str(plan.out_dir / n) not in result.artifacts]
    try:
        deliver(request.settings, message, request.timeout)
    except JobError as exc:
        result.deliveries += mail_ledger(to, "failed", str(exc), entry.label)
        return "", f"{entry.label}: {exc}"
    result.deliveries += mail_ledger(to, "sent", _accepted(request), entry.label)
    return f"{entry.label}: {_mailed(mail, plan.out_dir)}", ""


def _entry_dry_run(request: JobRequest, plan: Plan, output: Output, decision: Decision,
                   entry: MailChannel) -> str:
    """A dry run writes each mail entry's .eml beside the primary one; it sends none."""
    mail = compose_mail(request, plan, output, decision, entry, None)
    [message] = mail.messages
    eml = OutboxMailer(plan.out_dir)
    eml.send(message)
    return (f"would have {entry.label}: {_mailed(mail, plan.out_dir)} "
            f"(preview in {eml.path_for(message)})")


@dataclass(frozen=True)
class Mail:
    """The composed mail to the task's recipients (several when split into parts), and
    how to address the same mail elsewhere."""

    messages: list[EmailMessage]
    readdress: Callable[[Sequence[str], str], list[EmailMessage]]
    file_count: int  # files the run wrote, attached or not
    split_note: str = ""  # what a split left out, and why


def compose_mail(request: JobRequest, plan: Plan, output: Output, decision: Decision,
                 spec: Email | MailChannel, published: str | None) -> Mail:
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

    return Mail(
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


def _split(request: JobRequest, plan: Plan, output: Output) -> Split:
    """email.too_large: split: which files go in which mail, files cut by rows."""
    from dbcron.jobs.export.cut import cut
    from dbcron.jobs.mail.parts import plan_split

    limit = request.settings.max_attachment_bytes
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


def mail_ledger(to: Sequence[str], status: str, detail: str, channel: str = "mail"
                ) -> list[dict[str, str]]:
    """Ledger rows of a mail, one per recipient; `channel` is "mail" for the task's email:
    (with parts, "mail part k/n") and the entry's label for a mail of deliver:."""
    return [{"channel": channel, "type": "mail", "recipient": address, "status": status,
             "detail": detail} for address in to]


def _accepted(request: JobRequest) -> str:
    return "accepted" if request.settings.smtp_host else "written to the outbox"


def send_mail(
    request: JobRequest, plan: Plan, mail: Mail, decision: Decision, result: JobResult
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
            ledger += mail_ledger(to, "failed", str(exc), part_channel(number, total))
            for later in range(number + 1, total + 1):
                ledger += mail_ledger(to, "failed", f"not sent: part {number} failed",
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
        ledger += mail_ledger(to, "sent", sent, part_channel(number, total))
    result.deliveries = ledger
    mailed = _mailed(mail, plan.out_dir)
    result.summary = "; ".join([*decision.notes, mailed])


def send_dry_run(
    request: JobRequest, plan: Plan, mail: Mail, decision: Decision, result: JobResult
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


def _subject(task: Task, template: str | None, env: dict[str, Any], found: Verdict | None,
             local: datetime) -> str:
    """The subject `template` renders; without one, the email: subject, else a default."""
    for text in (template, task.email.subject if task.email else None):
        if text:
            return render(text, env, "subject")
    if found is not None:
        return f"Alert {task.name}: {found.reason}"
    return f"{task.description or task.name} ({local:%Y-%m-%d})"


def made_files(messages: Sequence[EmailMessage], files: Sequence[Path]) -> list[str]:
    """Files build_message or the split made next to the exports: a zip, the pieces."""
    names = {p.name for p in files}
    return [n for m in messages for n in attached_names(m) if n not in names]


def _mailed(mail: Mail, out_dir: Path) -> str:
    people = len(recipients(mail.messages[0]))
    to = f"to {people} recipient{'' if people == 1 else 's'}"
    return "; ".join(filter(None, [_mailed_files(mail, out_dir, to), mail.split_note]))


def _mailed_files(mail: Mail, out_dir: Path, to: str) -> str:
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
