"""The temporary-file-then-rename discipline shared by every writer."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO


class AtomicFile:
    """A binary file written as ``.NAME.part`` beside ``path`` and renamed on commit.

    The rename is atomic on one file system, and the fsyncs of the file and of its
    directory make the new name survive a power cut once ``commit`` returns.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.part = path.with_name(f".{path.name}.part")
        self.file: BinaryIO = open(self.part, "wb")  # noqa: SIM115 (closed in commit/abort)

    def commit(self) -> Path:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self.part, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return self.path

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
        with contextlib.suppress(FileNotFoundError):
            self.part.unlink()


def check_widths(rows: Sequence[Sequence[object]], ncols: int) -> None:
    """Refuse ragged rows: the column-wise writers would silently drop cells."""
    widths = set(map(len, rows))
    if widths and widths != {ncols}:
        bad = next(w for w in widths if w != ncols)
        raise ValueError(f"a row has {bad} values but the export has {ncols} columns")


class Sampler:
    """Holds back the first rows until there are enough to size the columns from.

    The xlsx and pdf writers must fix their column widths before the first row
    goes out; `feed` counts and checks each batch, and hands back the sample
    once (to lay out) together with the rows that may now be written.
    """

    def __init__(self, ncols: int, size: int = 200) -> None:
        self.rows_written = 0
        self._ncols = ncols
        self._size = size
        self._held: list[Sequence[object]] | None = []

    def feed(
        self, rows: Sequence[Sequence[object]]
    ) -> tuple[list[Sequence[object]] | None, Sequence[Sequence[object]]]:
        """(sample to lay out, or None; rows to write now)."""
        if not rows:
            return None, ()
        check_widths(rows, self._ncols)
        self.rows_written += len(rows)
        if self._held is None:
            return None, rows
        self._held.extend(rows)
        if len(self._held) < self._size:
            return None, ()
        held, self._held = self._held, None
        return held[: self._size], held

    def rest(self) -> list[Sequence[object]] | None:
        """At close: the rows still held (all of them are the sample), or None."""
        held, self._held = self._held, None
        return held
