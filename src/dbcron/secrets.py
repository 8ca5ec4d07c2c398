"""Mask passwords in free text before it reaches a log line, an error row or the screen.

Task sources are SQLAlchemy URLs and DSNs; drivers and our own messages quote
them back in errors. One function, applied at every exit (logs, ``show``,
``config``, run errors), is simpler to trust than masking at each call site.
"""

from __future__ import annotations

import re

MASK = "***"

# scheme://user:password@host -> the password runs to the last "@" before the
# next whitespace, so an unescaped "@", "/", "?" or "#" inside it (SQLAlchemy
# accepts them) is still masked whole. Over-masking a rare odd URL (an "@" in
# its path) is acceptable; leaking part of a password is not.
_URL_USERINFO = re.compile(
    r"(?P<prefix>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)(?P<password>\S*)@"
)

# password=..., PWD=...; (ODBC), ?password=...& (URL query), DBCRON_SMTP_PASSWORD=...
# The value is a quoted string (quotes kept) or runs to whitespace, "&", ";" or ",".
_KEY_VALUE = re.compile(
    r"(?i)(?P<key>\b\w*(?:password|passwd|pwd))(?P<sep>\s*=\s*)"
    r"(?:(?P<quote>['\"])(?:\\.|(?!(?P=quote)).)*(?P=quote)|[^\s&;,'\"]+)"
)


def _mask_key_value(match: re.Match[str]) -> str:
    quote = match.group("quote") or ""
    return f"{match.group('key')}{match.group('sep')}{quote}{MASK}{quote}"


def mask_secrets(text: str) -> str:
    """Replace every password found in ``text`` with ``***``; idempotent."""
    text = _URL_USERINFO.sub(lambda m: f"{m.group('prefix')}{MASK}@", text)
    return _KEY_VALUE.sub(_mask_key_value, text)
