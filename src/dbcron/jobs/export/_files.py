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
