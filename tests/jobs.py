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


def leak(variable: str) -> dict[str, object]:
    """What a careless application job returns: its connection URL and settings."""
    url = os.environ[variable]
    return {"url": url, "settings": {"password": "Hunter2-ret"}, "note": f"used {url}"}


def fail_with_config(variable: str) -> None:
    """An exception quoting a config dict and its JSON form, as libraries do."""
    password = os.environ[variable]
    config = {"host": "db", "password": password}
    raise RuntimeError(f"bad config {config!r}; as JSON {{\"password\": \"{password}\"}}")


def require(path: str, out: str) -> int:
    """Fail until `path` exists, then append a line to `out`: an upstream load that is late."""
    if not Path(path).exists():
        raise RuntimeError(f"{path} is not there yet")
    return append(out)


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
