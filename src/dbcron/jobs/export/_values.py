"""How a database value reads as text, shared by the csv and pdf writers.

Conventions, kept here as their one source:
- ``None`` is empty text;
- datetimes are ISO 8601 (``2026-11-20T09:00:03``); timezone-aware ones are first
  converted to the report's timezone and keep their offset
  (``2026-11-20T09:00:03+05:30``), naive ones are written as stored;
- dates and times are ISO 8601, booleans ``true``/``false``, bytes lowercase hex;
- floats use Python's shortest round-trip form, Decimals their exact digits.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo


def iso_datetime(value: dt.datetime, tz: zoneinfo.ZoneInfo) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(tz)
    return value.isoformat()


def as_text(value: object, tz: zoneinfo.ZoneInfo) -> str:
    """The text of any driver value, following the module's conventions."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return iso_datetime(value, tz)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)
