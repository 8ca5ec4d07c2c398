"""The work a task does, run inside a worker process: query, export, mail, alert, SQL, call.

`execute` is the one entry point. It never raises: every outcome, including a
bug in a job, comes back as a `JobResult` the runner records. The request and
result types live in `jobs.types`.
"""

from __future__ import annotations

import logging
import traceback

from dbcron.errors import TemplateError
from dbcron.jobs.types import JobError, JobRequest, JobResult

log = logging.getLogger("dbcron.jobs")


def execute(request: JobRequest) -> JobResult:
    """Run one attempt of a task; failures become a failed result with a masked reason."""
    from dbcron.secrets import mask_secrets

    try:
        if request.task.kind == "call":
            from dbcron.jobs.call import run_call

            return run_call(request)
        from dbcron.jobs.pipeline import run_pipeline

        return run_pipeline(request)
    except JobError as exc:
        return JobResult("failed", error=mask_secrets(str(exc)), retryable=exc.retryable,
                         deliveries=exc.deliveries)
    except TemplateError as exc:
        # A template is wrong in the task file: trying again renders it the same way.
        return JobResult("failed", error=mask_secrets(str(exc)), retryable=False)
    except Exception as exc:  # a bug or a library error: record it, keep the daemon alive
        log.debug("job %s failed:\n%s", request.task.name, traceback.format_exc())
        text = f"{type(exc).__name__}: {exc}"
        return JobResult("failed", error=mask_secrets(text))
