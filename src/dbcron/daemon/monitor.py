"""Dead-man's switch pings: a task's `monitor.url` hears of every run, healthchecks-style.

``<url>/start`` when an attempt starts, ``<url>`` when the run succeeds and
``<url>/fail`` (with the masked error as the body) when it ends otherwise.
The monitor alerts on a fail, and on silence: a daemon that is down, a task
disabled by mistake or a schedule that never fires send nothing at all.
Each ping carries ``rid``, a UUID derived from the run, so the monitor pairs
start and end and measures the run's duration.

A ping is best effort: one try within the task's monitor timeout, a warning
in the log when it fails (without the URL, which is a secret), never an error
of the run.
"""

from __future__ import annotations

import logging
import os
import re
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

from dbcron.secrets import mask_secrets
from dbcron.sources import secret_problem

if TYPE_CHECKING:
    from dbcron.model import Task

log = logging.getLogger("dbcron.monitor")
Event = Literal["start", "success", "fail"]
_SUFFIX: dict[Event, str] = {"start": "/start", "success": "", "fail": "/fail"}
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
MAX_BODY = 10_000  # healthchecks keeps the first 10 kB of a ping body


def ping_url(base: str, event: Event, run_id: int, task: str) -> str:
    rid = uuid.uuid5(uuid.NAMESPACE_URL, f"dbcron:{task}:{run_id}")
    return f"{base.rstrip('/')}{_SUFFIX[event]}?rid={rid}"


def ping(task: Task, event: Event, run_id: int, error: str | None = None,
         environ: Mapping[str, str] | None = None) -> bool:
    """True when the monitor took the ping; never raises."""
    monitor = task.monitor
    if monitor is None:
        return False
    env = os.environ if environ is None else environ
    refused = secret_problem(monitor.url)
    if refused:  # a task stored before the rule: never post another setting
        log.warning("task %s: monitor url: %s; no %s ping", task.name, refused, event)
        return False
    missing = [n for n in _ENV_REF.findall(monitor.url) if n not in env]
    if missing:
        log.warning("task %s: monitor url needs ${%s}, which is not set; no %s ping",
                    task.name, missing[0], event)
        return False
    base = _ENV_REF.sub(lambda m: env[m.group(1)], monitor.url)
    body = mask_secrets(error or "")[:MAX_BODY].encode() if event == "fail" else b""
    request = urllib.request.Request(
        ping_url(base, event, run_id, task.name), data=body, method="POST",
        headers={"Content-Type": "text/plain; charset=utf-8", "User-Agent": "dbcron"})
    try:
        with urllib.request.urlopen(request, timeout=monitor.timeout.total_seconds()) as answer:
            answer.read(1024)
        return True
    except urllib.error.HTTPError as exc:
        why = f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        why = getattr(reason, "strerror", None) or type(reason).__name__
    log.warning("task %s: monitor %s ping failed: %s", task.name, event, why,
                extra={"task": task.name})
    return False
