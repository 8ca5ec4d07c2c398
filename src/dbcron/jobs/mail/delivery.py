"""Getting a run's mail out: which backend, how hard to retry, failure notices.

The pipeline decides *what* to send; this module sends it. A transient SMTP
failure is retried here with the same message object (exports not rebuilt,
same Message-ID); only when those retries are spent does the run fail and the
runner's own retry policy take over.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, cast

from dbcron.jobs.mail.send import (
    Mailer,
    MailError,
    OutboxMailer,
    Security,
    SmtpConfig,
    SmtpMailer,
    TransientMailError,
    build_message,
    make_message_id,
    parse_address,
    send_with_retry,
)
from dbcron.jobs.types import JobError
from dbcron.secrets import mask_secrets

if TYPE_CHECKING:
    from dbcron.model import Task
    from dbcron.settings import Settings

MAIL_ATTEMPTS = 3
# Waits between attempts: a twentieth of the run's timeout (so the retries fit
# well inside it), at most 30 s, doubling: 30 s and 60 s for a 15-minute task.
_MAX_BACKOFF = 30.0
_NOTIFY_BACKOFF = 10.0


def mailer_for(settings: Settings) -> Mailer:
    """SMTP when a host is set, else ``.eml`` files in the outbox (the demo's default)."""
    if not settings.smtp_host:
        return OutboxMailer(settings.outbox_dir)
    return SmtpMailer(
        SmtpConfig(
            host=settings.smtp_host,
            port=settings.smtp_port,
            user=settings.smtp_user,
            password=settings.smtp_password,
            security=cast(Security, settings.smtp_security),
            timeout=settings.smtp_timeout,
            sender=settings.smtp_from,
        )
    )


def mail_domain(settings: Settings) -> str:
    """The domain of DBCRON_SMTP_FROM, which Message-IDs carry."""
    try:
        return parse_address(settings.smtp_from).domain
    except ValueError as exc:
        raise JobError(f"DBCRON_SMTP_FROM: {exc}", retryable=False) from None


def compose(
    settings: Settings,
    *,
    message_id: str,
    to: Sequence[str],
    cc: Sequence[str] = (),
    bcc: Sequence[str] = (),
    subject: str,
    text: str,
    html: str | None,
    attachments: Sequence[Path] = (),
    output_note: str = "",
    left_out: Sequence[Path] = (),
) -> EmailMessage:
    """build_message with the settings' sender and size limit; bad addresses are JobErrors."""
    try:
        msg = build_message(
            sender=settings.smtp_from,
            to=to,
            cc=cc,
            subject=subject,
            text=text,
            html=html,
            attachments=attachments,
            message_id=message_id,
            date=datetime.now(UTC),
            max_attachment_bytes=settings.max_attachment_bytes,
            output_note=output_note,
            left_out=left_out,
        )
        if bcc:
            # smtplib takes Bcc recipients from this header and strips it on the wire.
            msg["Bcc"] = [parse_address(a) for a in bcc]
    except ValueError as exc:
        raise JobError(f"cannot build the mail: {exc}", retryable=False) from None
    return msg


def deliver(settings: Settings, msg: EmailMessage, timeout: float) -> None:
    """Send with in-run retries for outages; what is left becomes a JobError."""
    backoff = min(_MAX_BACKOFF, timeout / 20)
    try:
        send_with_retry(mailer_for(settings), msg, attempts=MAIL_ATTEMPTS, backoff=backoff)
    except TransientMailError as exc:
        raise JobError(f"mail not sent: {exc}", retryable=True) from None
    except MailError as exc:
        raise JobError(f"mail not sent: {exc}", retryable=False) from None


def attached_names(msg: EmailMessage) -> list[str]:
    return [part.get_filename() or "" for part in msg.iter_attachments()]


def recipients(msg: EmailMessage) -> list[str]:
    return [
        str(address.addr_spec)
        for header in ("To", "Cc", "Bcc")
        for address in getattr(msg[header], "addresses", ())
    ]


def notify_failure(
    task: Task,
    slot: datetime,
    error: str,
    facts: Mapping[str, object],
    settings: Settings,
) -> list[str]:
    """Mail ``notify.on_failure`` that the slot's run failed for good; return who was told.

    Called by the runner after the last retry. The error is masked again here
    (it may come from anywhere); the Message-ID is derived from task and slot,
    so a daemon restarted mid-notice does not send two unnoticed. Raises
    ``MailError`` when the notice itself cannot be delivered.
    """
    to = list(task.notify.on_failure)
    if not to:
        return []
    name = task.name
    error = mask_secrets(error).strip() or "unknown error"
    first_line = error.splitlines()[0]
    lines = [f"The task {name} failed and will not be retried for this slot.", ""]
    lines.append(f"task: {name}")
    lines.append(f"slot: {slot.isoformat()}")
    lines += [f"{key}: {mask_secrets(str(value))}" for key, value in facts.items()]
    lines += ["", "error:", error, ""]
    domain = parse_address(settings.smtp_from).domain
    msg = build_message(
        sender=settings.smtp_from,
        to=to,
        cc=[],
        subject=f"[dbcron] {name} failed: {first_line[:150]}",
        text="\n".join(lines),
        html=None,
        attachments=[],
        message_id=make_message_id(f"{name}.failed", slot, domain),
        date=datetime.now(UTC),
    )
    send_with_retry(mailer_for(settings), msg, attempts=MAIL_ATTEMPTS, backoff=_NOTIFY_BACKOFF)
    return to
