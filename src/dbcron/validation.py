"""Turning task data into `Task`s, with errors a person can act on.

Each problem names where the task came from, the field, what was wrong and
what would be valid; a misspelt field gets the closest real one suggested.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from dbcron.errors import InvalidTask
from dbcron.model import (
    Calendar,
    Changes,
    Channel,
    Column,
    Csv,
    Dst,
    Email,
    Export,
    MailChannel,
    Notify,
    OnlyNew,
    Policy,
    Ready,
    Schedule,
    Task,
)
from dbcron.model.delivery import ADDRESS_PATTERN
from dbcron.secrets import mask_secrets
from dbcron.vocabulary import CHANNEL_TYPES

_MODELS: dict[str, type[BaseModel]] = {
    "": Task,
    "schedule": Schedule,
    "schedule.dst": Dst,
    "schedule.calendar": Calendar,
    "policy": Policy,
    "export": Export,
    "export.csv": Csv,
    "email": Email,
    "email.only_new": OnlyNew,
    "email.changes": Changes,
    "notify": Notify,
    "ready": Ready,
}


def parse_task(data: Any, origin: str) -> Task:
    """Validate one task mapping; `origin` says where it came from (file, tasks.json entry)."""
    if not isinstance(data, Mapping):
        raise InvalidTask([f"{origin}: a task must be a mapping of fields, got {_kind(data)}"])
    label = origin + (f": task '{data['name']}'" if isinstance(data.get("name"), str) else "")
    try:
        return Task.model_validate(dict(data))
    except ValidationError as exc:
        raise InvalidTask([f"{label}: {p}" for p in describe_errors(exc)]) from None


def parse_tasks(items: Iterable[tuple[str, Any]]) -> list[Task]:
    """Validate many (origin, data) pairs, reporting every problem and duplicate at once."""
    problems: list[str] = []
    seen: dict[str, str] = {}
    result: list[Task] = []
    for origin, data in items:
        try:
            task = parse_task(data, origin)
        except InvalidTask as exc:
            problems.extend(exc.problems)
            continue
        if task.name in seen:
            problems.append(
                f"{origin}: duplicate task name '{task.name}' (also in {seen[task.name]}); "
                "names must be unique"
            )
            continue
        seen[task.name] = origin
        result.append(task)
    if problems:
        raise InvalidTask(problems)
    return result


# A `deliver:` entry's model, by its type (pydantic puts the type into the error's place).
_DELIVER_MODELS: dict[str, type[BaseModel]] = {
    **dict.fromkeys(CHANNEL_TYPES, Channel), "mail": MailChannel}


def describe_errors(exc: ValidationError) -> list[str]:
    lines = []
    for error in exc.errors(include_url=False):
        loc = [str(p) for p in error["loc"]]
        entry = None
        if len(loc) > 2 and loc[0] == "deliver" and loc[2] in _DELIVER_MODELS:
            entry = _DELIVER_MODELS[loc.pop(2)]  # deliver.1.to, not deliver.1.mail.to
        field = ".".join(loc) or "(task)"
        message = error["msg"].removeprefix("Value error, ")
        kinds = ", ".join(_DELIVER_MODELS)
        if error["type"] == "extra_forbidden":
            message = _unknown_field(loc, entry)
        elif error["type"] == "union_tag_not_found":
            field, message = f"{field}.type", f"is required: one of {kinds}"
        elif error["type"] == "union_tag_invalid":
            message = f"{_shown(error['input'].get('type'))} is not one of {kinds}"
            field = f"{field}.type"
        elif error["type"] == "missing":
            message = "is required"
        elif (error["type"] == "string_pattern_mismatch"
              and error.get("ctx", {}).get("pattern") == ADDRESS_PATTERN):
            message = (f"{_shown(error['input'])} is not one mail address: write it as "
                       "name@example.com, one per list item")
        elif error["type"] == "string_pattern_mismatch" and loc[-1] == "name":
            message = (
                f"{_shown(error['input'])} is not a valid name: use lower-case letters, digits, "
                "'-' and '_', starting with a letter or digit (e.g. daily-sales)"
            )
        elif error["type"] not in ("value_error", "assertion_error"):
            message = f"{message} (got {_shown(error['input'])})"
        lines.append(f"{field}: {message}")
    return lines


def _unknown_field(loc: list[str], entry: type[BaseModel] | None) -> str:
    parent = ".".join(p for p in loc[:-1] if not p.isdigit())
    # export.columns is keyed by the query's column names: any key holds a Column.
    column = parent.startswith("export.columns.") and parent.count(".") == 2
    model = entry if parent == "deliver" else Column if column else _MODELS.get(parent)
    name = loc[-1]
    if model is None:
        return f"unknown field '{name}'"
    known = list(model.model_fields)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown field '{name}'; {hint}valid fields: {', '.join(known)}"


def _shown(value: Any) -> str:
    text = mask_secrets(repr(value))
    return text if len(text) <= 80 else text[:77] + "..."


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def missing_env(task: Task, environ: Mapping[str, str] | None = None) -> list[str]:
    """Source variables not set now: a warning at validation, an error at run time."""
    environ = os.environ if environ is None else environ
    return [var for var in task.env_refs() if var not in environ]


def not_allowed(
    items: list[tuple[str, Any]],
    tasks: list[Task],
    source_vars: tuple[str, ...],
    call_modules: tuple[str, ...],
) -> list[str]:
    """What may not enter the store (a password written in a source URL) and what the
    operator did not allow (source variables, call modules): one line per problem,
    naming where each task came from (``items`` and ``tasks`` in one order).

    Checked here, where definitions come in, not in the model: a task stored
    before these rules still loads in the daemon, and fails (or keeps running)
    with a message, instead of vanishing from the schedule.
    """
    from dbcron.callables import refusal
    from dbcron.sources import literal_password, literal_password_message, problems

    found = []
    for (origin, _), task in zip(items, tasks, strict=True):
        label = f"{origin}: task '{task.name}'"
        if task.source:
            found += [f"{label}: source: {p}" for p in problems(task.source, source_vars)]
            if literal_password(task.source):
                found.append(f"{label}: source: {literal_password_message()}")
        refused = refusal(task.call, call_modules) if task.call else None
        if refused:
            found.append(f"{label}: call: {refused}")
        found += [f"{label}: {p}" for p in not_done(task)]
    return found


def not_done(task: Task) -> list[str]:
    """What a task asks for that its runs would not do: refused where definitions come in
    (`not_allowed`); a task stored before these rules loads with a warning and runs
    without it (daemon/lifecycle.py)."""
    found = []
    if task.burst is not None:
        if task.deliver:
            # A channel or a second mail would get every row, not each recipient's own.
            found.append(f"deliver.0: a {task.deliver[0].type} entry does not go with burst "
                         "(each recipient gets only their rows); put the extra addresses in "
                         "the result column, or deliver from a second task")
        email = task.email
        if email and (email.send == "if_changed" or email.only_new or email.changes):
            found.append("burst: send: if_changed, only_new and changes compare a task's "
                         "whole result with its last mail, which a burst does not send; leave "
                         "them out, or drop burst")
    for i, entry in enumerate(task.deliver):
        if entry.send == "if_changed":
            found.append(f"deliver.{i}.send: 'if_changed' compares with the task's last "
                         "mail, so it is for email: alone; use always, if_rows or if_empty")
    return found
