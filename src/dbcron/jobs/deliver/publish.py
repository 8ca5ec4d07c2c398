"""Large results published to a directory the operator names, instead of only a note.

When a run's files are too large to mail (even zipped, the mail then leaves
them out), a recipient cannot reach the daemon's private output directory.
With DBCRON_PUBLISH_DIR set (a directory a web server or a file share
exposes, DBCRON_PUBLISH_URL its address), such files are copied to
``<publish dir>/<task>/<slot>/`` and the mail's note points there instead.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from dbcron.jobs.types import JobError
from dbcron.settings import Settings


def too_large(files: Sequence[Path], settings: Settings) -> bool:
    """Whether the files may not fit as they are (base64, the way the mail counts them)."""
    from dbcron.jobs.mail.message import base64_size

    return sum(base64_size(p.stat().st_size) for p in files) > settings.max_attachment_bytes


def publish(files: Sequence[Path], settings: Settings, task: str, local: datetime
            ) -> str | None:
    """Copy the files out when they may not fit in the mail; returns where (URL or path)."""
    if settings.publish_dir is None or not files or not too_large(files, settings):
        return None
    stamp = f"{local:%Y-%m-%dT%H%M}"
    folder = settings.publish_dir / task / stamp
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for path in files:
            shutil.copyfile(path, folder / path.name)
    except OSError as exc:
        raise JobError(f"cannot publish the files to {folder}: {exc.strerror}") from None
    if settings.publish_url:
        return f"{settings.publish_url.rstrip('/')}/{task}/{stamp}/"
    return str(folder)
