"""Logging set up once at the process edge: journald priorities, text or JSON, no secrets.

Modules only do ``log = logging.getLogger(__name__)`` (``dbcron.runner`` ...) with
``%``-style arguments; ``configure_logging`` decides what a line looks like.

Three shapes, one line per record:

- text, on a terminal or a file:  ``2026-11-20T09:00:00+0000 INFO dbcron.runner: message``
- text, under journald:            ``<6>INFO dbcron.runner: message`` (journald stamps time)
- JSON (``DBCRON_LOG_FORMAT=json``): ``{"ts": ..., "level": ..., "logger": ..., "message": ...,
  plus the record's ``extra`` fields}``; under journald also prefixed with ``<N>``.

Why JSON gets the prefix too: journald strips a leading ``<N>`` from each stderr
line and stores it as the entry's PRIORITY (``SyslogLevelPrefix=yes``, the
default), so MESSAGE still holds the bare JSON document while ``journalctl -p err``
keeps working. Without the prefix every JSON line would be stored at the
default priority (info) and error filtering would be lost. JSON keeps its own
``ts`` even under journald: whoever ships MESSAGE elsewhere needs the time in it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from datetime import datetime
from typing import TextIO

from dbcron.secrets import mask_secrets

FORMATS = ("text", "json")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


def syslog_priority(levelno: int) -> int:
    """Syslog priority for journald: 3 err, 4 warning, 6 info, 7 debug."""
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


def under_journald(environ: Mapping[str, str], stream: TextIO) -> bool:
    """True when ``stream`` is the journald stream systemd announced.

    ``$JOURNAL_STREAM`` is ``device:inode`` of the stream systemd connected;
    a child whose stderr was redirected inherits the variable but not the
    stream, so the fstat must match too (systemd.exec(5)).
    """
    device, _, inode = environ.get("JOURNAL_STREAM", "").partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        stat = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return False
    return (stat.st_dev, stat.st_ino) == (int(device), int(inode))


def _prefix_lines(text: str, priority: int) -> str:
    # journald makes one entry per line: a traceback's lines need the prefix
    # too, or they land at info and vanish from `journalctl -p err`.
    return "\n".join(f"<{priority}>{line}" for line in text.split("\n"))


class TextFormatter(logging.Formatter):
    """``TIME LEVEL logger: message``; under journald ``<N>LEVEL logger: message``."""

    def __init__(self, journald: bool) -> None:
        self.journald = journald
        fmt = "%(levelname)s %(name)s: %(message)s"
        super().__init__(fmt if journald else "%(asctime)s " + fmt)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        # Local time with its offset, so a line is unambiguous across DST changes.
        return datetime.fromtimestamp(record.created).astimezone().strftime("%Y-%m-%dT%H:%M:%S%z")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return _prefix_lines(text, syslog_priority(record.levelno)) if self.journald else text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, ``extra`` fields, exc."""

    def __init__(self, journald: bool) -> None:
        super().__init__()
        self.journald = journald

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created)
            .astimezone()
            .isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        doc.update((k, v) for k, v in vars(record).items() if k not in _RECORD_ATTRS)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            doc["exc"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        # default=str: an extra such as a datetime or a Path must not lose the line.
        line = json.dumps(doc, default=str, ensure_ascii=False)
        return f"<{syslog_priority(record.levelno)}>{line}" if self.journald else line


class SecretFilter(logging.Filter):
    """Masks passwords in the final message, the traceback and string extras.

    Sits on the handler, not a logger, so records propagated from every logger
    (ours and the libraries') pass through it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            # Bad %-args: a filter's exception would reach the caller; leave the
            # record alone so the handler reports it as a logging error instead.
            return True
        record.msg = mask_secrets(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_secrets(record.exc_text)
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and isinstance(value, str):
                setattr(record, key, mask_secrets(value))
        return True


class _DbcronHandler(logging.StreamHandler[TextIO]):
    """Marks the handler we installed, so a second call replaces it."""


def configure_logging(
    environ: Mapping[str, str], level: str = "INFO", fmt: str | None = None
) -> None:
    """Install the one stderr handler; call once at the process edge.

    ``fmt`` None means ``$DBCRON_LOG_FORMAT`` (default ``text``). ``level``
    applies to ``dbcron.*``; other libraries stay at WARNING unless a stricter
    level is asked for, because APScheduler and SQLAlchemy log every job and
    statement at INFO/DEBUG, which would drown our lines.
    """
    chosen = (fmt if fmt is not None else environ.get("DBCRON_LOG_FORMAT", "text")).lower()
    if chosen not in FORMATS:
        raise ValueError(f"log format {chosen!r} is not one of: {', '.join(FORMATS)}")
    level_name = level.upper()
    if level_name not in LEVELS:
        raise ValueError(f"log level {level!r} is not one of: {', '.join(LEVELS)}")
    levelno = logging.getLevelName(level_name)

    stream = sys.stderr
    journald = under_journald(environ, stream)
    handler = _DbcronHandler(stream)
    handler.setFormatter(JsonFormatter(journald) if chosen == "json" else TextFormatter(journald))
    handler.addFilter(SecretFilter())

    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _DbcronHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(levelno, logging.WARNING))
    logging.getLogger("dbcron").setLevel(levelno)
    # Python warnings (deprecations in drivers...) become log records with priorities.
    logging.captureWarnings(True)
