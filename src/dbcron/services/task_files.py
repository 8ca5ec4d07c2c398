"""Reading task files: one task per YAML file, or a list under `tasks:`.

A task's `schedule.calendar` may name a calendar file shared by many tasks,
`calendars/NAME.yaml` beside the task file; it is read here and stored inline,
so the daemon needs no files (apply again after editing the calendar).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from dbcron.errors import InvalidTask

SUFFIXES = (".yaml", ".yml")
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 10x faster
# Values that aliases may add beyond those written: plenty for sharing a block
# of params between tasks, far below the billions a 600-byte alias bomb makes.
MAX_ALIAS_EXPANSION = 100_000
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _TaskLoader(_Loader):  # type: ignore[misc,valid-type]
    """Safe loading that refuses duplicate keys (YAML says last wins: a second
    `kind:` silently changed what a task does), naming both lines."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            lines: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = self.construct_object(key_node)
                line = key_node.start_mark.line + 1
                if key in lines:
                    raise yaml.constructor.ConstructorError(
                        None, None,
                        f"duplicate key {key!r} (first on line {lines[key]}); "
                        "a key may appear once in a mapping",
                        key_node.start_mark,
                    )
                lines[key] = line
        result: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return result


def _expanded(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many values ``node`` stands for once every alias is expanded (memoised on
    the shared nodes, so the count itself costs only the nodes written)."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    sizes[id(node)] = 1  # a recursive alias counts once instead of looping
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded(child, sizes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded(k, sizes) + _expanded(v, sizes) for k, v in node.value)
    sizes[id(node)] = size
    return size


def load_yaml(text: str) -> Any:
    """yaml.safe_load, refusing alias bombs and duplicate keys (yaml.YAMLError)."""
    loader = _TaskLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        sizes: dict[int, int] = {}
        extra = _expanded(node, sizes) - len(sizes)
        if extra > MAX_ALIAS_EXPANSION:
            raise yaml.YAMLError(
                f"aliases (*name) expand to more than {MAX_ALIAS_EXPANSION:,} extra values; "
                "write the values out or use fewer nested aliases"
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()


def expand(paths: Iterable[str | Path]) -> list[Path]:
    """Files named, plus the *.yaml/*.yml files of directories named (sorted, not recursive)."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            raise InvalidTask([f"{path}: no such file or directory"])
    return files


def read_documents(files: Iterable[Path]) -> list[tuple[str, Any]]:
    """(origin, task data) for every task in the files; every file's syntax error at once."""
    items: list[tuple[str, Any]] = []
    problems: list[str] = []
    for path in files:
        try:
            doc = load_yaml(path.read_text(encoding="utf-8"))
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            problems.append(f"{path}: {where}invalid YAML: {exc.problem}")
            continue
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{path}: cannot read: {exc}")
            continue
        except yaml.YAMLError as exc:
            problems.append(f"{path}: invalid YAML: {exc}")
            continue
        if isinstance(doc, dict) and set(doc) == {"tasks"}:
            if not isinstance(doc["tasks"], list):
                problems.append(f"{path}: 'tasks' must be a list of tasks")
                continue
            found = [(f"{path} (tasks[{i}])", t) for i, t in enumerate(doc["tasks"])]
        elif doc is None:
            problems.append(f"{path}: the file is empty; expected a task or 'tasks:' list")
            continue
        else:
            found = [(str(path), doc)]
        for origin, task in found:
            try:
                items.append((origin, _with_calendar(task, path.parent, origin)))
            except InvalidTask as exc:
                problems.extend(exc.problems)
    if problems:
        raise InvalidTask(problems)
    return items


def _with_calendar(task: Any, folder: Path, origin: str) -> Any:
    """The task with a named calendar (`calendar: uk`) replaced by its file's contents."""
    if not isinstance(task, dict) or not isinstance(task.get("schedule"), dict):
        return task
    schedule: dict[str, Any] = task["schedule"]
    name = schedule.get("calendar")
    if not isinstance(name, str):
        return task
    import re

    from dbcron.model import NAME_PATTERN  # here: `show` reads this module without pydantic

    where = folder / "calendars"
    if not re.match(NAME_PATTERN, name):
        raise InvalidTask([f"{origin}: schedule.calendar: {name!r} is not a calendar name "
                           "(lower-case letters, digits, '-', '_'), nor a mapping"])
    path = next((p for p in (where / f"{name}{s}" for s in SUFFIXES) if p.is_file()), None)
    if path is None:
        raise InvalidTask([f"{origin}: schedule.calendar: no calendar file {name}.yaml in "
                           f"{where}"])
    try:
        calendar = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InvalidTask([f"{path}: cannot read: {exc}"]) from None
    if not isinstance(calendar, dict):
        raise InvalidTask([f"{path}: a calendar file holds a mapping (country, subdivision, "
                           "holidays, weekend)"])
    return {**task, "schedule": {**schedule, "calendar": calendar}}


class _Dumper(yaml.SafeDumper):
    """Multi-line text (queries) as `|` blocks, as people write them in task files."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def dump_yaml(data: Any) -> str:
    """Task data as a person would write it: block style, keys in model order."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                     default_flow_style=False)
