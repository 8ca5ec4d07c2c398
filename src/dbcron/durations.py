"""Durations as people write them in task files: ``30s``, ``15m``, ``2h``, ``1d``, ``1h30m``."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+)\s*([smhdw])")
_WHOLE = re.compile(r"\s*(?:\d+\s*[smhdw]\s*)+")

VALID = "a number with a unit s, m, h, d or w, e.g. 30s, 15m, 2h, 1d, 1h30m"
# Past this, date arithmetic overflows somewhere (timedelta, or a fire time past
# year 9999); no schedule needs more than a century.
LONGEST = timedelta(days=36500)


def parse_duration(text: str | int | float | timedelta) -> timedelta:
    """Parse ``1h30m`` style text; a bare number counts seconds (JSON and YAML ints)."""
    if isinstance(text, timedelta):
        return text
    if isinstance(text, bool):
        raise ValueError(f"bad duration {text!r}: expected {VALID}")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError(f"bad duration {text!r}: must not be negative")
        seconds: float = text
    elif not isinstance(text, str) or not _WHOLE.fullmatch(text.lower()):
        raise ValueError(f"bad duration {text!r}: expected {VALID}")
    else:
        seconds = sum(int(n) * _UNITS[u] for n, u in _PART.findall(text.lower()))
    if not seconds <= LONGEST.total_seconds():  # also NaN
        shown = text if len(str(text)) <= 40 else str(text)[:37] + "..."
        raise ValueError(f"bad duration {shown!r}: at most {LONGEST.days}d (100 years)")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest canonical spelling, so a stored task prints as it was written."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit]
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
