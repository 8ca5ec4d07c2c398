"""Sandboxed Jinja2 for subjects, bodies, file names, titles and query parameters.

Task files are written by people who may not run the server, so templates get
Jinja's immutable sandbox (no attribute access to internals, no mutation) and
StrictUndefined (a typo such as ``{{ yesteday }}`` is an error naming the
variable, not an empty string in a file name).

The date variables come from the run's *scheduled* slot in the task's
timezone, never from the clock: a retry or a catch-up run at 11:00 still
reports the day the 09:00 slot was meant for.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from dbcron.errors import TemplateError


def variables(slot: datetime, tz: ZoneInfo, task: str) -> dict[str, Any]:
    """The variables every template sees, as a pure function of the slot.

    Dates are ISO strings (``2026-03-01``) because that is what a file name, a
    subject and a bound SQL date parameter all want; ``slot`` stays a datetime
    for templates that format it themselves (``{{ slot.strftime('%B %Y') }}``).
    """
    if slot.tzinfo is None:
        raise ValueError(f"slot {slot.isoformat()} has no timezone; pass an aware datetime")
    local = slot.astimezone(tz)
    today = local.date()
    month_start = today.replace(day=1)
    last_month_end = month_start - timedelta(days=1)

    def days_ago(n: int) -> str:
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"days_ago() takes a whole number of days, not {n!r}")
        return (today - timedelta(days=n)).isoformat()

    return {
        "task": task,
        "slot": local,
        "now": local.isoformat(),
        "today": today.isoformat(),
        "yesterday": (today - timedelta(days=1)).isoformat(),
        "tomorrow": (today + timedelta(days=1)).isoformat(),
        "week_start": (today - timedelta(days=today.weekday())).isoformat(),
        "month_start": month_start.isoformat(),
        "last_month_start": last_month_end.replace(day=1).isoformat(),
        "last_month_end": last_month_end.isoformat(),
        "year_start": date(today.year, 1, 1).isoformat(),
        "days_ago": days_ago,
    }


# A subject, a file name, a parameter or a mail body: a million characters is
# far beyond any of them, and far below what hurts a worker (a 400 MB subject
# took one to 2.4 GB).
MAX_OUTPUT = 1_000_000


class _Bounded(ImmutableSandboxedEnvironment):
    """The sandbox, with ``*`` and ``**`` refusing results past MAX_OUTPUT before
    building them (``{{ 'x' * 400000000 }}`` is a single huge chunk, which no
    cap on the streamed output could stop in time)."""

    intercepted_binops = frozenset(["*", "**"])

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*" and any(
            isinstance(seq, str | list | tuple) and isinstance(n, int)
            and len(seq) * n > MAX_OUTPUT
            for seq, n in ((left, right), (right, left))
        ):
            raise SecurityError(f"the result would exceed {MAX_OUTPUT} items")
        # A power has about right * bit_length(left) bits; a decimal digit is ~3.3.
        if (
            operator == "**" and isinstance(left, int) and isinstance(right, int)
            and abs(left) > 1 and right * abs(left).bit_length() > 4 * MAX_OUTPUT
        ):
            raise SecurityError("the power is too large")
        return super().call_binop(context, operator, left, right)


@cache
def _environment() -> ImmutableSandboxedEnvironment:
    # No autoescape: the output is a subject, a file name or a SQL parameter,
    # never HTML (the default HTML body has its own escaping environment).
    return _Bounded(
        undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True
    )


def _bounded_render(template: jinja2.Template, variables: Mapping[str, Any]) -> str:
    """Render chunk by chunk, stopping as soon as the output passes MAX_OUTPUT
    (a loop of 100,000 x 100,000 iterations is stopped, not run to the end)."""
    parts: list[str] = []
    size = 0
    for chunk in template.generate(variables):
        size += len(chunk)
        if size > MAX_OUTPUT:
            raise SecurityError(f"the output exceeds {MAX_OUTPUT} characters")
        parts.append(chunk)
    return "".join(parts)


def render(template: str, variables: Mapping[str, Any], what: str = "template") -> str:
    """Render one template; any problem is a TemplateError naming ``what`` and the template."""
    try:
        return _bounded_render(_environment().from_string(template), variables)
    except jinja2.TemplateSyntaxError as exc:
        problem = f"syntax error on line {exc.lineno}: {exc.message}"
    except jinja2.UndefinedError as exc:
        problem = f"{exc.message}; known variables: {', '.join(sorted(variables))}"
    except jinja2.TemplateError as exc:  # SecurityError and the rest
        problem = str(exc)
    except (TypeError, ValueError, ArithmeticError) as exc:
        problem = f"{type(exc).__name__}: {exc}"
    raise TemplateError(f"{what} {template!r}: {problem}")


def render_params(params: Mapping[str, Any], variables: Mapping[str, Any]) -> dict[str, Any]:
    """Render string parameter values; numbers, booleans and lists pass through unchanged.

    The results are bound as SQL parameters by the caller, never pasted into SQL.
    """
    return {
        name: render(value, variables, f"param {name!r}") if isinstance(value, str) else value
        for name, value in params.items()
    }
