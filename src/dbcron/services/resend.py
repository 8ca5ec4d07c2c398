"""`manage-tasks resend RUN`: deliver a finished run again from what it kept, never re-querying.

A run keeps the mail it sent (``mail.eml``; a mail entry of ``deliver:`` as
``<label>.eml``) and each channel's body under ``<output>/<task>/.sent/run-<id>/``.
Resending reads those copies: the same message (same Message-ID, to the chosen
recipients) and the same bodies (same Idempotency-Key, freshly signed, to the URL
the task names now). Every resend
adds its own rows to the ledger; the original rows stay as they were.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from dbcron.errors import DbcronError
from dbcron.settings import Settings
from dbcron.store import DeliveryRow, Store

if TYPE_CHECKING:
    from email.message import EmailMessage

    from dbcron.model import Channel


def resend(store: Store, settings: Settings, run_id: int, failed_only: bool, now: datetime
           ) -> list[dict[str, str]]:
    """The new ledger rows, one per delivery tried again."""
    from dbcron.jobs.deliver import sent_dir
    from dbcron.services.tasks import load

    run = store.runs.get(run_id)
    if run is None:
        raise DbcronError(f"no run {run_id}; 'manage-tasks history' lists runs")
    if run.status == "running":
        raise DbcronError(f"run {run_id} of {run.task} is still running; resend after it ends")
    latest: dict[tuple[str, str], DeliveryRow] = {}
    for row in store.deliveries.of_runs([run_id])[run_id]:
        latest[(row.channel, row.recipient)] = row  # a later resend supersedes
    chosen = [r for r in latest.values()
              if r.status == "failed" or (r.status == "sent" and not failed_only)]
    if not chosen:
        what = "no failed deliveries" if failed_only else "no deliveries"
        raise DbcronError(f"run {run_id} of {run.task} has {what} to resend "
                          f"(see 'manage-tasks history {run.task} --deliveries')")
    from dbcron.model import MailChannel

    task = load(store, run.task)
    folder = sent_dir(settings.output_dir / run.task, run_id)
    items: list[dict[str, str]] = []
    # Per channel: "mail", "mail part 2/3" of a split, or a mail entry's label.
    mail: dict[str, list[str]] = {}
    for r in chosen:
        if r.type == "mail":
            mail.setdefault(r.channel, []).append(r.recipient)
    from dbcron.jobs.mail.parts import kept_name_of

    stopped = ""  # a split mail's part that failed: the parts after it wait, in order
    for channel, to in mail.items():
        if stopped and kept_name_of(channel):
            items += [_row(channel, "mail", a, "failed", f"not sent: {stopped} failed")
                      for a in to]
            continue
        rows = _resend_mails(settings, folder, channel, to)
        if kept_name_of(channel) and any(r["status"] == "failed" for r in rows):
            stopped = channel.removeprefix("mail ")
        items += rows
    channels = {c.label: c for c in task.deliver if not isinstance(c, MailChannel)}
    for row in (r for r in chosen if r.type != "mail"):
        items.append(_resend_channel(row, channels, folder, run.task, run.scheduled_for))
    store.deliveries.record(run_id, run.task, items, now, resend=True)
    return items


def _row(channel: str, kind: str, recipient: str, status: str, detail: str) -> dict[str, str]:
    return {"channel": channel, "type": kind, "recipient": recipient, "status": status,
            "detail": detail}


def _missing(path: os.PathLike[str]) -> str:
    return (f"the copy kept for resend is gone ({path}); copies are pruned with the output "
            "files after DBCRON_KEEP_OUTPUT_DAYS")


def _resend_mails(settings: Settings, folder: Path, channel: str, to: list[str]
                  ) -> list[dict[str, str]]:
    """A part of a split mail, a mail entry of deliver:, the run's one mail, or a burst's
    mail per recipient."""
    from dbcron.jobs.burst import kept_mail_name
    from dbcron.jobs.mail.parts import kept_name_of

    part = kept_name_of(channel)
    if part is not None:
        return _resend_mail(settings, folder / part, to, channel)
    if channel != "mail":  # a mail entry of deliver:: its own kept message
        return _resend_mail(settings, folder / f"{channel}.eml", to, channel)
    if (folder / "mail.eml").exists():
        return _resend_mail(settings, folder / "mail.eml", to, channel)
    return [row for address in to
            for row in _resend_mail(settings, folder / kept_mail_name(address), [address],
                                    channel)]


def _resend_mail(settings: Settings, eml: os.PathLike[str], to: list[str], channel: str
                 ) -> list[dict[str, str]]:
    from email import policy
    from email.parser import BytesParser

    from dbcron.jobs.mail.delivery import mailer_for
    from dbcron.jobs.mail.send import MailError, send_with_retry

    try:
        with open(eml, "rb") as handle:
            msg = BytesParser(policy=policy.default).parse(handle)
    except FileNotFoundError:
        return [_row(channel, "mail", a, "failed", _missing(eml)) for a in to]
    _readdress(msg, to)
    try:
        send_with_retry(mailer_for(settings), msg, attempts=2, backoff=5.0)
    except MailError as exc:
        return [_row(channel, "mail", a, "failed", f"mail not sent: {exc}") for a in to]
    return [_row(channel, "mail", a, "sent", "resent") for a in to]


def _readdress(msg: EmailMessage, to: list[str]) -> None:
    """Keep each chosen recipient where the kept mail had them: a Bcc recipient stays in
    Bcc (smtplib strips it on the wire), so nobody learns who else got it. One not in the
    kept headers (a burst's mail per recipient is kept once) goes in To."""
    chosen = {a.lower() for a in to}
    found: dict[str, list[str]] = {}
    for header in ("To", "Cc", "Bcc"):
        found[header] = [str(a) for a in getattr(msg[header], "addresses", ())
                         if a.addr_spec.lower() in chosen]
        del msg[header]
    placed = {a.lower() for a in found["To"] + found["Cc"] + found["Bcc"]}
    found["To"] += [a for a in to if a.lower() not in placed]
    for header, addresses in found.items():
        if addresses:
            msg[header] = ", ".join(addresses)


def _resend_channel(row: DeliveryRow, channels: Mapping[str, Channel],
                    folder: os.PathLike[str], task: str, slot: datetime) -> dict[str, str]:
    from dbcron.jobs.deliver import idempotency_key, post
    from dbcron.jobs.deliver.post import DeliveryFailed

    channel = channels.get(row.channel)
    if channel is None:
        return _row(row.channel, row.type, row.recipient, "failed",
                    f"the task has no channel '{row.channel}' any more")
    path = Path(folder) / f"{row.channel}.json"
    try:
        body = path.read_bytes()
    except FileNotFoundError:
        return _row(row.channel, row.type, row.recipient, "failed", _missing(path))
    try:
        detail = post(channel, body, idempotency_key(task, slot, row.channel), os.environ)
    except DeliveryFailed as exc:
        return _row(row.channel, row.type, row.recipient, "failed", str(exc))
    return _row(row.channel, row.type, row.recipient, "sent", f"resent: {detail}")
