"""The work a task does, run inside a worker process: query, export, mail, alert, SQL, call.

`execute` is the one entry point. It never raises: every outcome, including a
bug in a job, comes back as a `JobResult` the runner records.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from dbcron.settings import Settings

log = logging.getLogger("dbcron.jobs")


class JobError(Exception):
    """A failure with a message fit for the run's error column.

    `retryable` is False when trying again cannot help (a missing ${VAR}, a
    function that does not exist), so retries are not spent on it.
    """

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class JobRequest:
    task: dict[str, Any]  # validated task data, as the store keeps it
    slot: datetime  # aware: the scheduled time this run is for
    settings: Settings
    timeout: float  # seconds; pushed down to the database where it can be
    attempt: int = 1
    trigger: str = "schedule"
    late_by: timedelta | None = None
    run_id: int | None = None
    fence: int | None = None  # the claim's fencing number, checked before any side effect
    dry_run: bool = False  # build everything, send nothing, record nothing
    out_dir: Path | None = None  # dry run: where the attachments go
    to: tuple[str, ...] = ()  # dry run: mail these addresses instead of the task's


@dataclass
class JobResult:
    status: Literal["succeeded", "failed"]
    rows: int | None = None
    bytes: int | None = None
    artifacts: list[str] = field(default_factory=list)
    result: Any = None
    error: str | None = None
    retryable: bool = True
    summary: str = ""


def execute(request: JobRequest) -> JobResult:
    """Run one attempt of a task; failures become a failed result with a masked reason."""
    from dbcron.secrets import mask_secrets

    kind = request.task["kind"]
    try:
        if kind == "call":
            from dbcron.jobs.call import run_call

            return run_call(request)
        from dbcron.jobs.pipeline import run_pipeline

        return run_pipeline(request)
    except JobError as exc:
        return JobResult("failed", error=mask_secrets(str(exc)), retryable=exc.retryable)
    except Exception as exc:  # a bug or a library error: record it, keep the daemon alive
        log.debug("job %s failed:\n%s", request.task["name"], traceback.format_exc())
        text = f"{type(exc).__name__}: {exc}"
        return JobResult("failed", error=mask_secrets(text))
