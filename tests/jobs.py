"""Functions for `call` tasks in tests: they succeed, fail, sleep, or leave a trace."""

from __future__ import annotations

import os
import time
from pathlib import Path


def succeed(*args: object, **kwargs: object) -> dict[str, object]:
    return {"args": list(args), "kwargs": kwargs}


def fail(message: str = "boom") -> None:
    raise RuntimeError(message)


def sleep(seconds: float, marker: str | None = None) -> str:
    """Sleep, then touch `marker`: a file that exists only if the sleep was not stopped."""
    time.sleep(seconds)
    if marker:
        Path(marker).touch()
    return "slept"


def append(path: str, text: str = "x") -> int:
    """Append a line with the pid: tests count lines to see how often a slot ran."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(f"{text} {os.getpid()}\n")
    return 1


def span(path: str, seconds: float) -> int:
    """Note the worker's pid in `path`.started, sleep, then append "start end pid" to
    `path`: a line there is the side effect done, and overlapping lines are runs that
    overlapped."""
    begun = time.time()
    with open(path + ".started", "a", encoding="utf-8") as handle:
        handle.write(f"{os.getpid()}\n")
    time.sleep(seconds)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(f"{begun} {time.time()} {os.getpid()}\n")
    return 1
