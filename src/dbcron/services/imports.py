"""The import service: tasks.json -> validated tasks in the store + env lines on disk."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from dbcron.errors import ImportFileError, InvalidTask
from dbcron.secrets import mask_secrets
from dbcron.services import legacy
from dbcron.services.tasks import check_items
from dbcron.store import ApplyResult, Store


@dataclass
class ImportOutcome:
    result: ApplyResult
    renamed: list[tuple[str, str]]
    env_lines: list[tuple[str, str]]  # (VAR, masked URL)
    warnings: list[str]


def import_file(
    store: Callable[[], Store], path: Path, env_file: Path, now: datetime
) -> ImportOutcome:
    """Validate everything first; only then write the env file and open the store
    (`store` is called then, so bad input does not even create one)."""
    converted = legacy.convert(path, legacy.read(path))
    try:
        # Imported tasks use named sources only, which need no allowlist.
        checked = check_items(converted.items, ())
    except InvalidTask as exc:
        raise ImportFileError("\n".join(exc.problems)) from None
    written = _append_env(env_file, converted.env)
    result = store().tasks.upsert(checked.definitions, now, imported=converted.facts)
    renamed = [
        (facts["original_name"], name)
        for name, facts in converted.facts.items()
        if facts["original_name"] != name
    ]
    # The URLs are now in env_file; those warnings would only confuse.
    warnings = [w for w in checked.warnings if not any(v in w for v in converted.env)]
    env_lines = [(var, mask_secrets(url)) for var, url in converted.env.items() if var in written]
    return ImportOutcome(result, renamed, env_lines, warnings)


def _append_env(env_file: Path, env: dict[str, str]) -> list[str]:
    """Add the VAR=url lines not there yet; returns the variables written.

    A variable the file already sets to another value is an error, raised before
    anything is written: the task would otherwise read some other database.
    The file holds passwords, so it is created 0600.
    """
    existing = env_file.read_text(encoding="utf-8") if env_file.exists() else ""
    present: dict[str, str | None] = {}
    if existing:
        from dotenv import dotenv_values

        present = dict(dotenv_values(env_file))
    clashes = [var for var, url in env.items() if var in present and present[var] != url]
    if clashes:
        raise ImportFileError(
            f"{env_file} already sets {', '.join(clashes)} to another value; remove or rename "
            "it there (or pass --env-file) and import again; nothing was changed"
        )
    lines = [f"{var}={_quote(url)}\n" for var, url in env.items() if var not in present]
    if not lines:
        return []
    fd = os.open(env_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        if existing and not existing.endswith("\n"):
            handle.write("\n")
        handle.writelines(lines)
    return [var for var in env if var not in present]


def _quote(value: str) -> str:
    """Double quotes with backslash escapes: both python-dotenv and systemd read them."""
    if not any(c in value for c in " #'\"\\"):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
