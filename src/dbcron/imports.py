"""The import service: tasks.json -> validated tasks in the store + env lines on disk."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from dbcron import legacy
from dbcron.catalog import check_items
from dbcron.errors import ImportFileError, InvalidTask
from dbcron.secrets import mask_secrets
from dbcron.store import ApplyResult, Store


@dataclass
class ImportOutcome:
    result: ApplyResult
    renamed: list[tuple[str, str]]
    env_lines: list[tuple[str, str]]  # (VAR, masked URL)
    warnings: list[str]


def import_file(store: Store, path: Path, env_file: Path, now: datetime) -> ImportOutcome:
    """Validate everything first; only then write the env file and the store."""
    converted = legacy.convert(path, legacy.read(path))
    try:
        checked = check_items(converted.items)
    except InvalidTask as exc:
        raise ImportFileError("\n".join(exc.problems)) from None
    _append_env(env_file, converted.env)
    result = store.tasks.upsert(checked.definitions, now, imported=converted.facts)
    renamed = [
        (facts["original_name"], name)
        for name, facts in converted.facts.items()
        if facts["original_name"] != name
    ]
    # The URLs are now in env_file; those warnings would only confuse.
    warnings = [w for w in checked.warnings if not any(v in w for v in converted.env)]
    env_lines = [(var, mask_secrets(url)) for var, url in converted.env.items()]
    return ImportOutcome(result, renamed, env_lines, warnings)


def _append_env(env_file: Path, env: dict[str, str]) -> None:
    """Add VAR=url lines not already there; the file holds passwords, so it is 0600."""
    existing = env_file.read_text(encoding="utf-8") if env_file.exists() else ""
    present = {line.split("=", 1)[0].strip() for line in existing.splitlines() if "=" in line}
    lines = [f"{var}={_quote(url)}\n" for var, url in env.items() if var not in present]
    if not lines:
        return
    fd = os.open(env_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        if existing and not existing.endswith("\n"):
            handle.write("\n")
        handle.writelines(lines)


def _quote(value: str) -> str:
    """Double quotes with backslash escapes: both python-dotenv and systemd read them."""
    if not any(c in value for c in " #'\"\\"):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
