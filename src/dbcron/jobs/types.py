"""What crosses into a worker and back: the job request, its result, and the job error.

Kept apart from the code that runs jobs so that the core (templating), the
daemon and the services can name these types without importing any job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbcron.vocabulary import JobStatus, Trigger

if TYPE_CHECKING:
    from dbcron.model import Task
    from dbcron.settings import Settings


class JobError(Exception):
    """A failure with a message fit for the run's error column.

    `retryable` is False when trying again cannot help (a missing ${VAR}, a
    function that does not exist), so retries are not spent on it.
    """

    def __init__(self, message: str, retryable: bool = True,
                 deliveries: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.deliveries = deliveries or []  # the ledger rows of a failed mail


@dataclass(frozen=True)
class JobRequest:
    task: Task  # validated once, when the daemon (or the CLI) loaded it; pickled as it is
    slot: datetime  # aware: the scheduled time this run is for
    settings: Settings
    timeout: float  # seconds; pushed down to the database where it can be
    attempt: int = 1
    trigger: Trigger = "schedule"
    late_by: timedelta | None = None
    run_id: int | None = None
    fence: int | None = None  # the claim's fencing number, checked before any side effect
    dry_run: bool = False  # build everything, send nothing, record nothing
    out_dir: Path | None = None  # dry run: where the attachments go
    to: tuple[str, ...] = ()  # dry run: mail these addresses instead of the task's


@dataclass
class JobResult:
    status: JobStatus
    rows: int | None = None
    bytes: int | None = None
    artifacts: list[str] = field(default_factory=list)
    result: Any = None
    error: str | None = None
    retryable: bool = True
    summary: str = ""
    # The ledger: one {channel, type, recipient, status, detail} per mail recipient and
    # channel of `deliver:` (jobs.deliver.Delivery), recorded when the run ends.
    deliveries: list[dict[str, str]] = field(default_factory=list)
