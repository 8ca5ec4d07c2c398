"""Which Python functions `call` tasks may run: only modules the operator listed.

A `call` task runs ``package.module:function`` in the daemon's worker, as the
daemon's user: whoever can write the store could otherwise run ``os:system``
on every daemon host of a shared store. ``DBCRON_CALL_MODULES`` lists module
prefixes (``myapp.jobs`` allows ``myapp.jobs:x`` and ``myapp.jobs.nightly:y``);
unset, no `call` task may run. The check happens at `validate`/`apply` and
again before the worker imports anything (importing a module runs its code).
"""

from __future__ import annotations

import re

SETTING = "DBCRON_CALL_MODULES"
_MODULE = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*$")


def parse_modules(text: str | None) -> tuple[str, ...]:
    """``DBCRON_CALL_MODULES``: comma-separated module names; ValueError on a bad one."""
    entries = tuple(e.strip() for e in (text or "").split(",") if e.strip())
    for entry in entries:
        if not _MODULE.match(entry):
            raise ValueError(
                f"{SETTING}: {entry!r} is not a module name; list modules or packages whose "
                "functions call tasks may run, e.g. myapp.jobs,reports"
            )
    return entries


def refusal(path: str, modules: tuple[str, ...]) -> str | None:
    """Why ``package.module:function`` may not run (None when it may)."""
    module = path.partition(":")[0]
    if any(module == m or module.startswith(m + ".") for m in modules):
        return None
    now = f"it allows only {', '.join(modules)}" if modules else "it is unset, so no call task runs"
    return (
        f"{module} is not in {SETTING} ({now}); the operator allows it by adding "
        f"{module} to {SETTING} in the daemon's environment"
    )
