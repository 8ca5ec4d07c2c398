"""The step before a side effect: is this attempt's claim still ours?

A daemon paused (SIGSTOP, a VM stall) or cut off from the store past its lease
loses its runs to a peer, but its worker processes go on. Before each side
effect (sending mail, committing SQL, calling a function) the worker asks its
daemon, which asks the store in one conditional UPDATE, whether the run still
carries the fencing number the attempt started with; if not, the worker stops
without the side effect. Asking through the daemon keeps the store's driver
and connections out of the workers, and a paused daemon's worker waits for
the answer instead of acting.
"""

from __future__ import annotations

from collections.abc import Callable

from dbcron.jobs.types import JobError, JobRequest

FENCED_OFF = "fenced off"
# Set in a worker process: asks the daemon, returns None to go on or why not to.
_ask: Callable[[str], str | None] | None = None


def install(ask: Callable[[str], str | None]) -> None:
    global _ask
    _ask = ask


def gate(request: JobRequest, what: str) -> None:
    """Raise a JobError when the attempt may not do `what`; else the run is marked as
    past its side effect (an interrupted run past it is not retried)."""
    if request.dry_run or request.fence is None or _ask is None:
        return  # nothing claimed (a dry run), or not in a daemon's worker
    refused = _ask(what)
    if refused is not None:
        raise JobError(refused, retryable=not refused.startswith(FENCED_OFF))


def refusal(what: str) -> str:
    return f"{FENCED_OFF}: the run was taken over before {what}; stopped without doing it"
