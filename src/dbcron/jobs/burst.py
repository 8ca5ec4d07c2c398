"""Bursting: one result split into one file set and one mail per distinct address.

`burst: {column: manager_email}` routes each row by the value of that column:
rows with the same address go to that address's own writers (opened when the
address first appears), and its mail carries only those files. The result is
read once and streamed as in the pipeline: memory holds, per recipient, the
open writers and a 20-row preview, never the rows.

A value that is not one address (empty, NULL, two addresses, a display name
with a newline) is a failed delivery in the ledger, as is every address past
`burst.max`; neither stops the others. A refused mail fails its own row only.
The run fails (without a retry, which would mail everyone again) when a mail
could not be sent; a bad address alone does not fail the run.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbcron.jobs.types import JobError, JobRequest, JobResult
from dbcron.templating import render

if TYPE_CHECKING:
    from dbcron.jobs.export import Writer
    from dbcron.jobs.pipeline import Plan

PREVIEW_ROWS = 20
# One plain address: what the model accepts in email.to, nothing a header could smuggle.
ADDRESS = re.compile(r"^[^@\s,;<>\"'()\[\]\\/]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")


@dataclass
class _Recipient:
    address: str
    writers: list[Writer]
    rows: int = 0
    preview: list[tuple[Any, ...]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def _slug(address: str) -> str:
    """A file-name part for an address that cannot collide: readable text plus a hash."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", address)[:60]
    return f"{readable}-{hashlib.sha256(address.encode()).hexdigest()[:8]}"


def kept_mail_name(address: str) -> str:
    """The file a recipient's mail is kept in for resend (no address reaches a path as is)."""
    return f"mail-{_slug(address)}.eml"


def run_burst(request: JobRequest, plan: Plan) -> JobResult:
    from dbcron.jobs.query import stream_query

    task = plan.task
    assert task.burst is not None and task.email is not None  # the model checked both
    with stream_query(task, plan.env, request.timeout) as stream:
        columns = list(stream.columns)
        if task.burst.column not in columns:
            raise JobError(f"burst: the result has no column '{task.burst.column}'; its "
                           f"columns are {', '.join(columns)}", retryable=False)
        recipients, refused, rows = _split(stream.batches, columns, plan)
    return _mail_each(request, plan, columns, recipients, refused, rows)


def _split(batches: Any, columns: list[str], plan: Plan
           ) -> tuple[dict[str, _Recipient], dict[str, str], int]:
    """Route every row to its recipient's writers; returns who got what and who was refused."""
    from dbcron.jobs.export import open_writer, safe_filename

    task = plan.task
    assert task.burst is not None
    at = columns.index(task.burst.column)
    recipients: dict[str, _Recipient] = {}
    refused: dict[str, str] = {}
    total = 0
    folder = plan.out_dir / "burst"
    try:
        for batch in batches:
            routed: dict[str, list[Any]] = {}
            for row in batch:
                value = row[at]
                address = "" if value is None else str(value).strip()
                if address in recipients:
                    routed.setdefault(address, []).append(row)
                    continue
                if address in refused:
                    continue
                if not ADDRESS.match(address):
                    refused[address] = "not a valid address" if address else "no address (empty)"
                elif len(recipients) >= task.burst.max:
                    refused[address] = f"over burst.max ({task.burst.max} recipients per run)"
                else:
                    folder.mkdir(parents=True, exist_ok=True)
                    stem = f"{plan.stem}-{_slug(address)}"
                    recipients[address] = _Recipient(address, [
                        open_writer(fmt, folder / safe_filename(stem, fmt), columns,
                                    plan.options) for fmt in plan.formats])
                    routed.setdefault(address, []).append(row)
            for address, mine in routed.items():
                who = recipients[address]
                for writer in who.writers:
                    writer.write(mine)
                if len(who.preview) < PREVIEW_ROWS:
                    who.preview += [tuple(r) for r in mine[: PREVIEW_ROWS - len(who.preview)]]
                who.rows += len(mine)
            total += len(batch)
        for who in recipients.values():
            who.files = [writer.close() for writer in who.writers]
    except BaseException:
        for who in recipients.values():
            for writer in who.writers:
                writer.abort()
        raise
    return recipients, refused, total


def _mail_each(request: JobRequest, plan: Plan, columns: list[str],
               recipients: dict[str, _Recipient], refused: dict[str, str], total: int
               ) -> JobResult:
    from dbcron.jobs.deliver import keep_sent
    from dbcron.jobs.mail.delivery import compose, deliver
    from dbcron.jobs.mail.send import make_message_id, render_default_body

    task = plan.task
    assert task.email is not None
    files = [p for who in recipients.values() for p in who.files]
    result = JobResult("succeeded", rows=total, bytes=sum(p.stat().st_size for p in files),
                       artifacts=[str(p) for p in files])
    ledger = [{"channel": "mail", "type": "mail", "recipient": address or "(empty)",
               "status": "failed", "detail": why} for address, why in refused.items()]
    sent = failed = 0
    for who in recipients.values():
        variables = {**plan.env, "rows": who.rows, "columns": columns, "recipient": who.address}
        subject = (render(task.email.subject, variables, "subject") if task.email.subject
                   else f"{task.description or task.name} ({plan.local:%Y-%m-%d})")
        if task.email.body:
            text, html = render(task.email.body, variables, "body"), None
        else:
            text, html = render_default_body(
                task=task.name, description=task.description, slot=plan.local,
                late_by=request.late_by, row_count=who.rows, columns=columns,
                first_rows=who.preview, files=[p.name for p in who.files])
        # Its own Message-ID per recipient: the slot's id would make them one thread.
        tag = hashlib.sha256(who.address.encode()).hexdigest()[:12]
        message = compose(
            request.settings, message_id=make_message_id(f"{task.name}.b{tag}", request.slot,
                                                         plan.domain),
            to=[who.address], subject=subject, text=text, html=html, attachments=who.files,
            output_note=str(plan.out_dir / "burst"))
        if request.dry_run:
            continue
        keep_sent(plan.out_dir, request.run_id, kept_mail_name(who.address), message.as_bytes())
        try:
            deliver(request.settings, message, request.timeout)
        except JobError as exc:
            failed += 1
            ledger.append({"channel": "mail", "type": "mail", "recipient": who.address,
                           "status": "failed", "detail": str(exc)})
            continue
        sent += 1
        ledger.append({"channel": "mail", "type": "mail", "recipient": who.address,
                       "status": "sent", "detail": f"{who.rows} rows"})
    result.deliveries = [] if request.dry_run else ledger
    parts = [f"burst {total:,} rows to {len(recipients)} recipients"]
    if request.dry_run:
        parts = [f"dry run: would mail {len(recipients)} recipients ({total:,} rows)"]
    else:
        parts.append(f"mailed {sent}")
    if refused:
        parts.append(f"{len(refused)} values refused (see the ledger)")
    result.summary = "; ".join(parts)
    if failed:
        result.status, result.retryable = "failed", False
        result.error = f"burst: {failed} of {len(recipients)} mails not sent (see the ledger)"
    return result
