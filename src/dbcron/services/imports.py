"""The import service: tasks.json -> validated tasks in the store + env lines on disk."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from dbcron.errors import ImportFileError, InvalidTask
from dbcron.secrets import mask_secrets
from dbcron.services import legacy
from dbcron.services.tasks import check_items
from dbcron.settings import Settings
from dbcron.store import ApplyResult, Store


@dataclass
class ImportOutcome:
    result: ApplyResult
    renamed: list[tuple[str, str]]
    env_lines: list[tuple[str, str]]  # (VAR, masked URL)
    warnings: list[str]


def host_timezone(environ: Mapping[str, str], localtime: Path = Path("/etc/localtime")) -> str:
    """The IANA name of this host's zone: $TZ, else where /etc/localtime points, else UTC."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    candidates = [environ.get("TZ", "").removeprefix(":")]
    target = os.path.realpath(localtime)
    if "/zoneinfo/" in target:
        candidates.append(target.split("/zoneinfo/", 1)[1])
    for name in candidates:
        if name and not name.startswith("/"):
            try:
                ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
            return name
    return "UTC"


def import_file(
    store: Callable[[], Store], path: Path, env_file: Path, now: datetime, timezone: str,
    settings: Settings,
) -> ImportOutcome:
    """Validate everything first; only then write the env file and open the store
    (`store` is called then, so bad input does not even create one)."""
    converted = legacy.convert(path, legacy.read(path), timezone)
    try:
        checked = check_items(converted.items, settings)
    except InvalidTask as exc:
        raise ImportFileError("\n".join(exc.problems)) from None
    written, narrowed = _append_env(env_file, converted.env)
    opened = store()
    # A task already in the store keeps its enabled flag: importing the file again
    # must not switch on a task someone disabled by hand (nor off one enabled).
    kept = {row.name: row.enabled for row in opened.tasks.get_many(checked.names)}
    for definition in checked.definitions:
        if definition["name"] in kept:
            definition.pop("enabled", None)
            if not kept[definition["name"]]:
                definition["enabled"] = False
    result = opened.tasks.upsert(checked.definitions, now, imported=converted.facts)
    renamed = [
        (facts["original_name"], name)
        for name, facts in converted.facts.items()
        if facts["original_name"] != name
    ]
    # The URLs are now in env_file; those warnings would only confuse.
    warnings = [w for w in checked.warnings if not any(v in w for v in converted.env)]
    if narrowed:
        warnings.append(
            f"{env_file} was open to {narrowed}; it now holds passwords, so its mode "
            f"is now {oct(ENV_MODE_MAX)[2:].zfill(4)} at most"
        )
    env_lines = [(var, mask_secrets(url)) for var, url in converted.env.items() if var in written]
    return ImportOutcome(result, renamed, env_lines, warnings)


# An env file may be shared with the daemon's group (root:dbcron 0640, as
# systemd's EnvironmentFile= wants), never with other users, never writable by
# the group.
ENV_MODE_MAX = 0o640


def _append_env(env_file: Path, env: dict[str, str]) -> tuple[list[str], str]:
    """Add the VAR=url lines not there yet; returns the variables written and, when
    an existing file was open to more than ENV_MODE_MAX, to whom ("others").

    A variable the file already sets to another value is an error, raised before
    anything is written: the task would otherwise read some other database.
    The file holds passwords, so it is created 0600, and an existing one is
    narrowed to ENV_MODE_MAX before a password goes in.
    """
    existing = env_file.read_text(encoding="utf-8") if env_file.exists() else ""
    present: dict[str, str | None] = {}
    if existing:
        from dotenv import dotenv_values

        present = dict(dotenv_values(env_file))
    clashes = [
        var for var, url in env.items()
        if var in present and present[var] not in (url, url.replace("'", "%27"))
    ]
    if clashes:
        raise ImportFileError(
            f"{env_file} already sets {', '.join(clashes)} to another value; remove or rename "
            "it there (or pass --env-file) and import again; nothing was changed"
        )
    lines = [f"{var}={_quote(url)}\n" for var, url in env.items() if var not in present]
    if not lines:
        return [], ""
    fd = os.open(env_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    mode = stat.S_IMODE(os.fstat(fd).st_mode)
    narrowed = ""
    if mode & ~ENV_MODE_MAX:
        os.fchmod(fd, mode & ENV_MODE_MAX)
        narrowed = "other users" if mode & 0o007 else "its group for writing"
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        if existing and not existing.endswith("\n"):
            handle.write("\n")
        handle.writelines(lines)
    return [var for var in env if var not in present], narrowed


_PLAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-./:,+=%")


def _quote(value: str) -> str:
    """A value python-dotenv, systemd's EnvironmentFile= and sh (`. .env`) all read alike.

    Single quotes: none of the three expands ``$`` inside them (python-dotenv and sh
    expand ``${X}`` or ``$X`` in double quotes), and ``#`` or ``@`` stay text. A single
    quote cannot be escaped the same way in all three, but the values are URLs, where
    ``%27`` stands for the same character.
    """
    if set(value) <= _PLAIN:
        return value
    return "'" + value.replace("'", "%27") + "'"
