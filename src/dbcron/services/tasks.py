"""Task services behind the CLI: validate, apply, add, edit, list, show, next, enable, delete.

Each takes the store, the settings and `now` explicitly and returns plain data;
the CLI only parses arguments, calls one of these and prints.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from dbcron.errors import DbcronError, InvalidTask, TaskNotFound
from dbcron.schedule import ScheduleSpec, calendar_notes, describe, fire_times, next_fire
from dbcron.secrets import mask_secrets
from dbcron.settings import Settings
from dbcron.store import ApplyResult, Store, TaskRow

if TYPE_CHECKING:
    from dbcron.model import Task


@dataclass
class Checked:
    """Validated task data ready for the store, and warnings worth printing."""

    definitions: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [d["name"] for d in self.definitions]


def check_items(items: Iterable[tuple[str, Any]], settings: Settings) -> Checked:
    """Validate (origin, data) pairs against the model and what the operator allows
    (source variables, call modules); an unset source variable is only a warning
    until run time."""
    from dbcron.validation import missing_env, not_allowed, parse_tasks

    items = list(items)
    tasks = parse_tasks(items)
    refused = not_allowed(items, tasks, settings.source_allowlist, settings.call_allowlist)
    if refused:
        raise InvalidTask(refused)
    warnings = [
        f"{t.name}: {var} is not set in this environment; the task fails at run time "
        "unless the daemon's environment sets it"
        for t in tasks
        for var in missing_env(t)
    ]
    return Checked([t.to_data() for t in tasks], warnings)


def check_paths(paths: Iterable[str], settings: Settings) -> Checked:
    from dbcron.services.task_files import expand, read_documents

    files = expand(paths)
    if not files:
        raise InvalidTask([f"no task files (*.yaml, *.yml) in {', '.join(map(str, paths))}"])
    return check_items(read_documents(files), settings)


def prune_candidates(store: Store, keep: Iterable[str]) -> list[str]:
    return sorted(set(store.tasks.names()) - set(keep))


def apply(store: Store, checked: Checked, now: datetime, prune: bool = False) -> ApplyResult:
    check_dependencies(store, checked.definitions, prune)
    return store.tasks.upsert(checked.definitions, now, prune=prune)


def check_dependencies(store: Store, definitions: list[dict[str, Any]], prune: bool = False
                       ) -> None:
    """`ready.after` must name tasks that exist (after this change) and make no cycle.

    Only a definition with `after` can add a cycle (the stored ones had none), so
    applying tasks without it costs no read of the store.
    """
    if not any(_after(d) for d in definitions):
        return
    graph = {} if prune else {row.name: _after(row.data) for row in store.tasks.all()}
    graph.update({d["name"]: _after(d) for d in definitions})
    problems = [
        f"task '{d['name']}': ready.after: '{up}' is not a task"
        + (f" (known: {', '.join(sorted(graph))})" if len(graph) < 20 else "")
        for d in definitions for up in _after(d) if up not in graph
    ]
    cycle = find_cycle(graph)
    if cycle:
        problems.append("ready.after makes a cycle, so none of these could ever run: "
                        + " -> ".join(cycle))
    if problems:
        raise InvalidTask(problems)


def _after(data: Mapping[str, Any]) -> list[str]:
    return list((data.get("ready") or {}).get("after") or [])


def find_cycle(graph: Mapping[str, list[str]]) -> list[str]:
    """A dependency cycle as a path that returns to its start, or [] when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for up in graph.get(node, []):
            if state.get(up) == 1:
                return [*path[path.index(up):], up]
            if up not in state and up in graph:
                found = visit(up)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def add(
    store: Store, data: Mapping[str, Any], origin: str, now: datetime, settings: Settings
) -> Checked:
    checked = check_items([(origin, data)], settings)
    name = checked.names[0]
    if store.tasks.get(name) is not None:
        raise DbcronError(
            f"a task named '{name}' exists already; use 'manage-tasks edit {name}' "
            "or 'manage-tasks apply' to change it"
        )
    check_dependencies(store, checked.definitions)
    store.tasks.upsert(checked.definitions, now)
    return checked


def replace(
    store: Store, name: str, data: Any, now: datetime, settings: Settings
) -> ApplyResult:
    """Save an edited definition of `name` (the name itself cannot change)."""
    get(store, name)
    checked = check_items([(f"edited task '{name}'", data)], settings)
    if checked.names[0] != name:
        raise InvalidTask(
            [f"name: renaming '{name}' to '{checked.names[0]}' is not supported; "
             "add the new task and delete the old one"]
        )
    check_dependencies(store, checked.definitions)
    return store.tasks.upsert(checked.definitions, now)


def get(store: Store, name: str) -> TaskRow:
    row = store.tasks.get(name)
    if row is None:
        raise TaskNotFound(name, store.tasks.names())
    return row


def load(store: Store, name: str) -> Task:
    """The stored task, validated once, for code that runs it (run now, dry run)."""
    from dbcron.model import Task

    return Task.model_validate(get(store, name).data)


def spec_of(row: TaskRow, settings: Settings) -> ScheduleSpec:
    return ScheduleSpec.from_dict(row.data["schedule"], settings.timezone)


@dataclass(frozen=True)
class Listed:
    """One line of `list`."""

    name: str
    kind: str
    enabled: bool
    schedule: str
    timezone: ZoneInfo
    next_run: datetime | None
    last_run: datetime | None
    last_status: str | None
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "description": self.description, "kind": self.kind,
            "enabled": self.enabled,
            "schedule": self.schedule, "timezone": self.timezone.key,
            "next_run": self.next_run.isoformat() if self.next_run else None,
            "last_run": self.last_run.isoformat() if self.last_run else None,
            "last_status": self.last_status,
        }


@lru_cache(maxsize=4096)
def spec_from_json(schedule_json: str, default_tz: str) -> ScheduleSpec:
    """Parsed once per distinct schedule: many tasks share one."""
    return ScheduleSpec.from_dict(json.loads(schedule_json), default_tz)


def listing(
    store: Store, settings: Settings, now: datetime, descriptions: bool = False
) -> list[Listed]:
    """What `list` shows; ``descriptions`` also reads each definition (for --json)."""
    latest = store.runs.latest_status()
    described = (
        {row.name: row.data.get("description", "") for row in store.tasks.all()}
        if descriptions else {}
    )
    result = []
    for name, kind, enabled, schedule in store.tasks.summaries():
        spec = spec_from_json(schedule, settings.timezone)
        last_run, last_status = latest.get(name, (None, None))
        result.append(
            Listed(
                name, kind, enabled, describe(spec), spec.tz,
                next_fire(spec, now) if enabled else None, last_run, last_status,
                described.get(name, ""),
            )
        )
    return result


def masked(data: Mapping[str, Any]) -> dict[str, Any]:
    """A task's data with any password in a URL masked, for show/export/logs."""
    return {k: _mask(v) for k, v in data.items()}


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, Mapping):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    return value


def detail(store: Store, name: str, settings: Settings, now: datetime) -> dict[str, Any]:
    row = get(store, name)
    spec = spec_of(row, settings)
    data = masked(row.data)
    upcoming = explained(spec, fire_times(spec, now, 5) if row.enabled else [], now)
    data["next_runs"] = [t.isoformat() for t, _ in upcoming]
    if spec.calendar is not None:
        # Why a run sits on its day (moved off a holiday, holidays skipped before it).
        data["calendar_notes"] = {t.isoformat(): notes for t, notes in upcoming if notes}
    recent = store.runs.history(task=name, limit=5)
    ledger = store.deliveries.of_runs([r.id for r in recent])
    data["recent_runs"] = [
        {**r.to_json(), "deliveries": [d.to_json() for d in ledger[r.id]]} for r in recent
    ]
    data["schedule_text"] = describe(spec)
    if row.imported:
        data["imported"] = row.imported
    return data


def upcoming(
    store: Store, name: str, count: int, start: datetime, settings: Settings
) -> list[tuple[datetime, list[str]]]:
    """The next fire times, each with what a business calendar did to get there."""
    spec = spec_of(get(store, name), settings)
    return explained(spec, fire_times(spec, start, count), start)


def explained(
    spec: ScheduleSpec, times: list[datetime], start: datetime
) -> list[tuple[datetime, list[str]]]:
    result = []
    previous = start
    for t in times:
        result.append((t, calendar_notes(spec, previous, t)))
        previous = t
    return result


def upcoming_all(
    store: Store, count: int, start: datetime, settings: Settings
) -> list[tuple[datetime, str]]:
    """Each enabled task's next ``count`` fire times, in the task's zone, in time order."""
    fires: list[tuple[datetime, str]] = []
    for name, _kind, enabled, schedule in store.tasks.summaries():
        if enabled:
            spec = spec_from_json(schedule, settings.timezone)
            fires += [(t.astimezone(spec.tz), name) for t in fire_times(spec, start, count)]
    return sorted(fires)


def set_enabled(store: Store, name: str, enabled: bool, now: datetime) -> bool:
    """False when the task was already in that state (nothing written).

    The new definition comes from the model, which alone knows that `enabled`
    defaults to true (and so is left out of the stored form).
    """
    task = load(store, name)
    if task.enabled == enabled:
        return False
    return store.tasks.upsert([task.model_copy(update={"enabled": enabled}).to_data()], now).changed


def delete(store: Store, name: str) -> None:
    get(store, name)
    store.tasks.delete(name)
    store.sent.forget(name)
    store.signals.forget(name)


def export_all(store: Store, default_tz: str) -> list[dict[str, Any]]:
    """Every task as a task file; a schedule without a zone gets the one it runs in
    (DBCRON_TIMEZONE here), so applying the file on another host keeps its times."""
    exported = []
    for row in store.tasks.all():
        data = masked(row.data)
        data["schedule"] = {**data["schedule"],
                            "timezone": data["schedule"].get("timezone") or default_tz}
        exported.append(data)
    return exported
