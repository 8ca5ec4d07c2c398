"""`call` tasks: a Python function for application jobs that are not SQL."""

from __future__ import annotations

import importlib
import json
from typing import Any

from dbcron.callables import refusal
from dbcron.jobs.fence import gate
from dbcron.jobs.types import JobError, JobRequest, JobResult
from dbcron.secrets import mask_value


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

    task = request.task
    assert task.call is not None  # the model requires it of a call task
    # Before importing: importing a module already runs its code.
    refused = refusal(task.call, request.settings.call_allowlist)
    if refused:
        raise JobError(refused, retryable=False)
    func = resolve(task.call)
    gate(request, f"calling {task.call}")  # the call is the side effect
    value = func(*task.args, **task.kwargs)
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        # The run still succeeded; only its return value cannot be stored as JSON.
        value = repr(value)
    # The value is stored and shown by history: it may hold a URL or a password.
    return JobResult("succeeded", result=mask_value(value), summary="called " + task.call)
