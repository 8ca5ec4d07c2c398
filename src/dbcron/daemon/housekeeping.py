"""Pruning: run history past DBCRON_KEEP_HISTORY_DAYS, exported files past _KEEP_OUTPUT_DAYS.

The daemon calls `prune` once a day and `manage-tasks prune` calls it now;
both pass the clock in. A setting of 0 (or less) keeps that kind forever.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dbcron.settings import Settings
    from dbcron.store import Store


# Heartbeats of stopped daemons and answered run-now requests: a week is plenty for
# `status` to say when the last daemon was seen.
_DAEMON_MEMORY = timedelta(days=7)


@dataclass(frozen=True)
class PruneReport:
    runs: int
    files: int
    bytes: int
    history_before: datetime | None  # None: history is kept forever
    output_before: datetime | None
    output_dir: Path

    def __str__(self) -> str:
        return self.describe()

    def describe(self) -> str:
        """One line for the CLI and the daemon's log: what went, and the cut-off."""
        parts = []
        if self.history_before is None:
            parts.append("run history kept (DBCRON_KEEP_HISTORY_DAYS=0)")
        else:
            parts.append(
                f"removed {self.runs} run{'' if self.runs == 1 else 's'} finished before "
                f"{self.history_before:%Y-%m-%d %H:%M %Z}"
            )
        if self.output_before is None:
            parts.append("files kept (DBCRON_KEEP_OUTPUT_DAYS=0)")
        else:
            parts.append(
                f"{self.files} file{'' if self.files == 1 else 's'} "
                f"({self.bytes / 1024 / 1024:.1f} MB) older than "
                f"{self.output_before:%Y-%m-%d %H:%M %Z} from {self.output_dir}"
            )
        return "; ".join(parts)


def prune(store: Store, settings: Settings, now: datetime) -> PruneReport:
    history_before = _cutoff(now, settings.keep_history_days)
    output_before = _cutoff(now, settings.keep_output_days)
    runs = store.runs.prune(history_before) if history_before else 0
    if history_before:
        store.deliveries.prune(history_before)  # the ledger goes with its runs
        store.sent.prune(history_before)  # only_new keys mailed that long ago
        store.signals.prune(history_before)  # ready signals of that time
    store.daemons.forget_before(now - _DAEMON_MEMORY)
    files = size = 0
    if output_before is not None:
        files, size = prune_files(settings.output_dir, output_before)
    return PruneReport(runs, files, size, history_before, output_before, settings.output_dir)


def _cutoff(now: datetime, days: int) -> datetime | None:
    return now - timedelta(days=days) if days > 0 else None


def prune_files(root: Path, before: datetime) -> tuple[int, int]:
    """Delete regular files under ``root`` last modified before ``before``: (count, bytes).

    Symbolic links are neither followed nor removed, so a link placed in the
    output directory cannot steer the pruning elsewhere. Directories stay:
    a run may be about to write into one.
    """
    cutoff = before.timestamp()
    count = total = 0
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = Path(folder, name)
            try:
                info = path.lstat()
                if stat.S_ISREG(info.st_mode) and info.st_mtime < cutoff:
                    path.unlink()
                    count += 1
                    total += info.st_size
            except FileNotFoundError:  # removed meanwhile (a retry replaced it)
                continue
    return count, total
