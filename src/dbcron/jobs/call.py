"""`call` tasks: a Python function for application jobs that are not SQL."""

from __future__ import annotations

import importlib
import json
from typing import Any

from dbcron.jobs import JobError, JobRequest, JobResult


def resolve(path: str) -> Any:
    """`package.module:function` -> the function, or a JobError saying what is missing."""
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise JobError(
            f"cannot import {module_name!r} for {path!r}: {exc}", retryable=False
        ) from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise JobError(f"{module_name!r} has no function {attr!r}", retryable=False) from None


def run_call(request: JobRequest) -> JobResult:
    from dbcron.jobs.fence import gate

    task = request.task
    func = resolve(task["call"])
    gate(request, f"calling {task['call']}")  # the call is the side effect
    value = func(*task.get("args", []), **task.get("kwargs", {}))
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        # The run still succeeded; only its return value cannot be stored as JSON.
        value = repr(value)
    return JobResult("succeeded", result=value, summary="called " + task["call"])
