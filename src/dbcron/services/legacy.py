"""Import of the older tool's tasks.json: every field maps to something.

The old tool kept APScheduler-style schedule fields and a database URL with
its password in each task. URLs do not enter the store: each distinct URL
becomes one named source (`source: daily_sales`, read from
`DBCRON_SOURCE_DAILY_SALES`), and the `VAR=url` lines are handed back for the
environment file. Counters, timestamps and the last error are kept as the
task's `imported` facts, shown by `manage-tasks show`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbcron.errors import ImportFileError
from dbcron.secrets import mask_secrets
from dbcron.sources import source_variable

_STAT_FIELDS = ("task_id", "database_type", "created_at", "last_run", "next_run",
                "run_count", "error_count", "last_error", "excel_path", "pdf_path")


@dataclass
class Imported:
    """What an import produces: task data, their imported facts, and env lines to add."""

    items: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def handle(name: str, taken: set[str]) -> str:
    """A valid unique task name from the old tool's free-text name."""
    base = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")[:60] or "task"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}-{n}", n + 1
    taken.add(candidate)
    return candidate


def read(path: Path) -> list[Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ImportFileError(
            f"{path}: line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}"
        ) from None
    if isinstance(doc, dict) and isinstance(doc.get("tasks"), list):
        doc = doc["tasks"]
    if not isinstance(doc, list):
        raise ImportFileError(f"{path}: expected a JSON list of tasks, got {type(doc).__name__}")
    return doc


def convert(path: Path, entries: list[Any], timezone: str) -> Imported:
    """Map every entry; all problems are reported together and nothing is half-imported.

    The old tool ran its schedules on the server's local time, so each schedule
    gets ``timezone`` (the host's, unless the user named another).
    """
    out = Imported()
    problems: list[str] = []
    taken: set[str] = set()
    url_vars: dict[str, str] = {}
    for i, entry in enumerate(entries):
        where = f"{path}[{i}]"
        if not isinstance(entry, Mapping):
            problems.append(f"{where}: expected an object, got {type(entry).__name__}")
            continue
        title = str(entry.get("name") or entry.get("task_id") or f"task-{i + 1}")
        where += f" ('{title}')"
        name = handle(title, taken)
        try:
            data = _task(entry, name, title)
            data["schedule"] = {**_schedule(entry), "timezone": timezone}
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        url = entry.get("database_url")
        if url:
            source = url_vars.get(url)
            if source is None:
                source = _source_name(name, out.env)
                url_vars[url] = source
                out.env[source_variable(source)] = str(url)
            data["source"] = source
        else:
            problems.append(f"{where}: database_url: missing; every task needs its database")
            continue
        out.items.append((where, data))
        facts = {k: entry[k] for k in _STAT_FIELDS if entry.get(k) not in (None, "")}
        facts["original_name"] = title
        if "last_error" in facts:
            facts["last_error"] = mask_secrets(str(facts["last_error"]))
        out.facts[name] = facts
    if problems:
        raise ImportFileError("\n".join(problems))
    return out


def _source_name(task_name: str, taken: Mapping[str, str]) -> str:
    """A named source for the task's database, unique among those already made."""
    base = re.sub(r"[^a-z0-9]+", "_", task_name).strip("_")
    base = base if base[:1].isalpha() else f"db_{base}"
    name, n = base, 2
    while source_variable(name) in taken:  # "Sales Report" and "sales_report": two databases
        name, n = f"{base}_{n}", n + 1
    return name


def _task(entry: Mapping[str, Any], name: str, title: str) -> dict[str, Any]:
    if not entry.get("query"):
        raise ValueError("query: missing; the old tool's tasks are all queries")
    data: dict[str, Any] = {
        "name": name,
        "description": entry.get("description") or title,
        "kind": "report",
        "enabled": bool(entry.get("is_active", True)),
        "query": entry["query"],
    }
    formats = [f for f, key in (("xlsx", "export_excel"), ("pdf", "export_pdf")) if entry.get(key)]
    if formats:
        export: dict[str, Any] = {"formats": formats}
        stem = _stem(entry.get("excel_path") or entry.get("pdf_path"))
        if stem:
            export["filename"] = stem + "-{{ today }}"
        data["export"] = export
    to = _addresses(entry.get("email_recipients"))
    if to:
        email: dict[str, Any] = {"to": to}
        cc = _addresses(entry.get("email_cc_recipients"))
        if cc:
            email["cc"] = cc
        if entry.get("email_subject"):
            email["subject"] = entry["email_subject"]
        data["email"] = email
    return data


def _stem(path: Any) -> str | None:
    if not path:
        return None
    return Path(str(path)).stem or None


def _addresses(value: Any) -> list[str]:
    if not value:
        return []
    if isinstance(value, str):
        value = re.split(r"[,;\s]+", value)
    return [str(v).strip() for v in value if str(v).strip()]


def _schedule(entry: Mapping[str, Any]) -> dict[str, Any]:
    kind = entry.get("schedule_type")
    config = entry.get("schedule_config") or {}
    if not isinstance(config, Mapping):
        raise ValueError("schedule_config: expected an object")
    if kind == "cron":
        return _cron(config)
    if kind == "interval":
        units = {"weeks": 604800, "days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}
        unknown = set(config) - set(units)
        if unknown:
            raise ValueError(f"schedule_config: unknown interval fields {sorted(unknown)}")
        try:
            seconds = sum(int(config.get(k) or 0) * n for k, n in units.items())
        except (TypeError, ValueError):
            raise ValueError("schedule_config: interval fields must be whole numbers") from None
        if seconds <= 0:
            raise ValueError("schedule_config: an interval needs weeks/days/hours/minutes/seconds")
        return {"every": f"{seconds}s"}
    if kind == "once":
        run_date = config.get("run_date")
        if not run_date:
            raise ValueError("schedule_config.run_date: missing for a 'once' schedule")
        return {"at": str(run_date)}
    raise ValueError(f"schedule_type: {kind!r} is not one of cron, interval, once")


# APScheduler's cron fields, largest first, with the minimum a field below the
# largest given one defaults to (week and day_of_week stay "*").
_APS_FIELDS = (("year", "*"), ("month", "1"), ("day", "1"), ("week", "*"),
               ("day_of_week", "*"), ("hour", "0"), ("minute", "0"), ("second", "0"))


def _cron(config: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(config) - {name for name, _ in _APS_FIELDS}
    if unknown:
        raise ValueError(f"schedule_config: unknown cron fields {sorted(unknown)}")
    # APScheduler: a field counts as given when it is not None (an explicit "*"
    # too); fields below the largest given one default to their minimum, fields
    # above it to "*". {"month": "1,4,7,10"} is the 1st of each quarter at 00:00.
    given = [i for i, (name, _) in enumerate(_APS_FIELDS) if config.get(name) not in (None, "")]
    largest = given[0] if given else len(_APS_FIELDS)
    field = {
        name: str(config[name]).replace(" ", "") if i in given
        else (minimum if i > largest else "*")
        for i, (name, minimum) in enumerate(_APS_FIELDS)
    }
    if field["week"] != "*":
        raise ValueError("schedule_config.week: ISO week numbers have no cron equivalent")
    if field["second"] not in ("0", "00"):
        raise ValueError("schedule_config.second: dbcron schedules to the minute; use 0")
    schedule: dict[str, Any] = {
        "cron": " ".join([field["minute"], field["hour"], field["day"], field["month"],
                          _dow(field["day_of_week"])])
    }
    year = field["year"]
    if year != "*":
        if not year.isdigit():
            raise ValueError(f"schedule_config.year: {year!r}; only a single year is supported")
        schedule["start"] = f"{year}-01-01T00:00:00"
        schedule["end"] = f"{year}-12-31T23:59:59"
    return schedule


def _dow(value: str) -> str:
    """APScheduler counts weekdays Monday = 0 .. Sunday = 6; cron Monday = 1 .. Sunday = 7,
    so ranges such as 5-6 (Saturday-Sunday) stay ranges: 6-7."""
    return re.sub(r"(?<![/\d])\d+", lambda m: str(int(m.group()) % 7 + 1), value)
