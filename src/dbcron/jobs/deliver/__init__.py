"""Deliveries by HTTP: each webhook, Slack and Teams channel of a task's `deliver:` list,
after the run's files (its mail entries are mails: jobs/pipeline.py sends them).

Each channel gets its own outcome (sent, failed with the reason, skipped with
the reason) and one channel failing never stops the others. The POST carries
an ``Idempotency-Key`` derived from task, slot and channel, so a receiver can
drop the second copy when a retried run delivers the same slot again.
Secrets (the URL of a chat webhook, header credentials, the signing secret)
are ``${VAR}`` references resolved here, in the worker, from its environment,
and never appear in a message, an error or a log line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from dbcron.errors import TemplateError
from dbcron.jobs.deliver.post import DeliveryFailed, post_json, signature
from dbcron.sources import secret_problem
from dbcron.templating import render

if TYPE_CHECKING:
    from dbcron.model import Channel, MailChannel, Task

log = logging.getLogger("dbcron.deliver")
DeliveryStatus = Literal["sent", "failed", "skipped"]
DELIVERY_FAILED = "delivery failed for "  # how a run's error begins when an entry failed
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class RunFacts:
    """What the run produced, as the channels describe it."""

    task: Task
    slot: datetime  # aware, UTC: the idempotency key's part
    local: datetime  # the slot in the task's zone, for people
    env: Mapping[str, Any]  # the template variables of the run
    rows: int
    columns: Sequence[str]
    preview: Sequence[Sequence[Any]]
    files: Sequence[Path]
    out_dir: Path
    reason: str | None  # an alert's verdict
    holds: bool | None  # an alert's condition; None for a report
    mailed_to: int
    run_id: int | None
    attempt: int


@dataclass(frozen=True)
class Delivery:
    channel: str
    type: str
    recipient: str  # the URL's ${VAR} or host: never the URL itself
    status: DeliveryStatus
    detail: str

    def to_json(self) -> dict[str, str]:
        return dict(self.__dict__)


def sent_dir(out_dir: Path, run_id: int) -> Path:
    return out_dir / ".sent" / f"run-{run_id}"


def keep_sent(out_dir: Path, run_id: int | None, name: str, data: bytes) -> None:
    """Keep what a run sends (its mail, each channel's body) for `manage-tasks resend`.

    Without a run (a dry run) there is nothing to resend. A copy that cannot be
    written costs only the resend, never the delivery itself.
    """
    if run_id is None:
        return
    folder = sent_dir(out_dir, run_id)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    except OSError as exc:
        log.warning("cannot keep a copy for resend in %s: %s", folder, exc.strerror)


def recipient_of(channel: Channel) -> str:
    if _ENV_REF.fullmatch(channel.url):
        return channel.url
    return urlsplit(channel.url).hostname or "?"


def idempotency_key(task: str, slot: datetime, channel: str) -> str:
    """The same for every attempt and every daemon delivering this slot to this channel."""
    text = f"{task}\n{slot.astimezone(UTC).isoformat()}\n{channel}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def deliver_all(facts: RunFacts, environ: Mapping[str, str] | None = None,
                sleep: Callable[[float], None] = time.sleep) -> list[Delivery]:
    from dbcron.model import Channel

    env = os.environ if environ is None else environ
    return [_deliver_one(facts, channel, env, sleep) for channel in facts.task.deliver
            if isinstance(channel, Channel)]


def _deliver_one(facts: RunFacts, channel: Channel, environ: Mapping[str, str],
                 sleep: Callable[[float], None]) -> Delivery:
    def outcome(status: DeliveryStatus, detail: str) -> Delivery:
        return Delivery(channel.label, channel.type, recipient_of(channel), status, detail)

    why_not = skip_reason(channel, facts)
    if why_not:
        return outcome("skipped", why_not)
    key = idempotency_key(facts.task.name, facts.slot, channel.label)
    try:
        body = _body(channel, facts, key)
        keep_sent(facts.out_dir, facts.run_id, f"{channel.label}.json", body)
        return outcome("sent", post(channel, body, key, environ, sleep))
    except (DeliveryFailed, TemplateError) as exc:
        return outcome("failed", str(exc))


def post(channel: Channel, body: bytes, key: str, environ: Mapping[str, str],
         sleep: Callable[[float], None] = time.sleep) -> str:
    """POST a built body to the channel (also what `resend` calls); returns the detail."""
    url = _expand(channel.url, environ, "url")
    headers = {name: _expand(value, environ, f"headers.{name}")
               for name, value in channel.headers.items()}
    headers["Idempotency-Key"] = key
    if channel.sign is not None:
        secret = _expand(channel.sign.secret, environ, "sign.secret")
        headers[channel.sign.header] = signature(secret, int(time.time()), body)
    posted = post_json(url, body, headers, channel.timeout.total_seconds(), channel.retries,
                       sleep)
    tries = f" after {posted.attempts} attempts" if posted.attempts > 1 else ""
    return f"HTTP {posted.status}{tries}"


def skip_reason(channel: Channel | MailChannel, facts: RunFacts) -> str:
    """Why this entry is not sent for the run ("" when it is): the alert's condition, or
    its own send rule."""
    if facts.holds is not None:
        return "" if facts.holds else "condition did not hold"
    if channel.send == "if_rows" and facts.rows == 0:
        return "no rows (send: if_rows)"
    if channel.send == "if_empty" and facts.rows > 0:
        return f"{facts.rows:,} rows (send: if_empty)"
    return ""


def _expand(text: str, environ: Mapping[str, str], field: str) -> str:
    # Checked again here: a task stored before the rule must not post other settings.
    refused = secret_problem(text)
    if refused:
        raise DeliveryFailed(f"{field}: {refused}")
    missing = [name for name in _ENV_REF.findall(text) if name not in environ]
    if missing:
        names = ", ".join(f"${{{n}}}" for n in missing)
        raise DeliveryFailed(f"{field} needs {names}, which is not set in the daemon's "
                             "environment")
    return _ENV_REF.sub(lambda m: environ[m.group(1)], text)


def _title(channel: Channel, facts: RunFacts, variables: Mapping[str, Any]) -> str:
    task = facts.task
    if channel.title:
        return render(channel.title, variables, f"deliver {channel.label} title")
    if task.email is not None and task.email.subject:
        return render(task.email.subject, variables, "subject")
    if facts.reason is not None:
        return f"Alert {task.name}: {facts.reason}"
    return f"{task.description or task.name} ({facts.local:%Y-%m-%d})"


def _body(channel: Channel, facts: RunFacts, key: str) -> bytes:
    from dbcron.jobs.deliver import chat

    first = [list(r) for r in facts.preview[: channel.rows]]
    # JSON-ready values (dates, decimals as text), the same for templates and payloads.
    first = json.loads(json.dumps(first, default=str))
    files = [p.name for p in facts.files]
    variables = {
        **facts.env, "rows": facts.rows, "columns": list(facts.columns), "first_rows": first,
        "files": files, "output_dir": str(facts.out_dir), "reason": facts.reason,
        "run_id": facts.run_id, "attempt": facts.attempt, "idempotency_key": key,
    }
    title = _title(channel, facts, variables)
    if channel.type == "webhook":
        if channel.body:
            text = render(channel.body, {**variables, "title": title},
                          f"deliver {channel.label} body")
            try:
                json.loads(text)
            except ValueError as exc:
                raise DeliveryFailed(f"body is not JSON ({exc}); build it with "
                                     "{{ value | tojson }}") from None
            return text.encode()
        document = {
            "task": facts.task.name, "title": title, "slot": facts.local.isoformat(),
            "run_id": facts.run_id, "attempt": facts.attempt, "rows": facts.rows,
            "columns": list(facts.columns), "first_rows": first, "files": files,
            "output_dir": str(facts.out_dir), "reason": facts.reason, "idempotency_key": key,
        }
        return json.dumps(document, ensure_ascii=False).encode()
    summary = chat.summary_line(facts.rows, len(first), f"{facts.local:%Y-%m-%d %H:%M %Z}")
    if facts.reason:
        summary = f"{facts.reason} · {summary}"
    note = chat.files_note(files, str(facts.out_dir), facts.mailed_to)
    build = chat.slack_message if channel.type == "slack" else chat.teams_message
    return json.dumps(build(title, summary, facts.columns, first, note),
                      ensure_ascii=False).encode()


def summarize(deliveries: Sequence[Delivery]) -> tuple[str, str | None]:
    """(summary for the run, error when a channel failed)."""
    sent = [d.channel for d in deliveries if d.status == "sent"]
    failed = [f"{d.channel}: {d.detail}" for d in deliveries if d.status == "failed"]
    skipped = [f"{d.channel} ({d.detail})" for d in deliveries if d.status == "skipped"]
    parts = []
    if sent:
        parts.append(f"posted to {', '.join(sent)}")
    if skipped:
        parts.append(f"not posted to {', '.join(skipped)}")
    error = DELIVERY_FAILED + "; ".join(failed) if failed else None
    return "; ".join(parts), error
