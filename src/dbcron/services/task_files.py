"""Reading task files: one task per YAML file, or a list under `tasks:`."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from dbcron.errors import InvalidTask

SUFFIXES = (".yaml", ".yml")
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 10x faster


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
            doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            problems.append(f"{path}: {where}invalid YAML: {exc.problem}")
            continue
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            problems.append(f"{path}: cannot read: {exc}")
            continue
        if isinstance(doc, dict) and set(doc) == {"tasks"}:
            if not isinstance(doc["tasks"], list):
                problems.append(f"{path}: 'tasks' must be a list of tasks")
                continue
            items.extend((f"{path} (tasks[{i}])", t) for i, t in enumerate(doc["tasks"]))
        elif doc is None:
            problems.append(f"{path}: the file is empty; expected a task or 'tasks:' list")
        else:
            items.append((str(path), doc))
    if problems:
        raise InvalidTask(problems)
    return items


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
