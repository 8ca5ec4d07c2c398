"""The temporary-file-then-rename discipline shared by every writer."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

# Reports hold query results: readable by the daemon's group (the operator's
# readers) at most, never by others, and never more than the umask allows.
FILE_MODE = 0o640
DIR_MODE = 0o750


def open_private(path: Path, exclusive: bool = False) -> int:
    """Open ``path`` for writing with at most FILE_MODE (and the umask): a new file
    gets FILE_MODE less the umask from the kernel; one left over (by a crash) is
    truncated and narrowed to FILE_MODE, so it cannot stay 0644."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | (os.O_EXCL if exclusive else 0)
    fd = os.open(path, flags, FILE_MODE)
    mode = stat.S_IMODE(os.fstat(fd).st_mode)
    if mode & ~FILE_MODE:
        os.fchmod(fd, mode & FILE_MODE)
    return fd


class AtomicFile:
    """A binary file written as ``.NAME.part`` beside ``path`` and renamed on commit.

    The rename is atomic on one file system, and the fsyncs of the file and of its
    directory make the new name survive a power cut once ``commit`` returns.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.part = path.with_name(f".{path.name}.part")
        self.file: BinaryIO = os.fdopen(open_private(self.part), "wb")

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
