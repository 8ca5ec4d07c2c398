"""Mask passwords in free text before it reaches a log line, an error row or the screen.

Task sources are SQLAlchemy URLs and DSNs; drivers, SMTP servers and our own
messages quote them back in errors. One function, applied at every exit
(logs, ``show``, ``config``, run errors, mails), is simpler to trust than
masking at each call site.

Masking goes by structure, not by replacing a password string wherever it
occurs (which turned ``mssql+pyodbc`` into ``mssql+***yodbc`` when the
password was ``p``): URL userinfo, ``key=value`` pairs (also URL-encoded, as
in ``odbc_connect``), JSON/dict entries whose key names a password, and the
exact secrets this process was configured with (SMTP password, source
passwords) and their base64 forms, which an SMTP server may echo from an
AUTH exchange, each only where it stands as a whole token.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

MASK = "***"
_KEY = r"\w*(?:password|passwd|pwd|secret)"

# scheme://user:password@host -> the password runs to the last "@" before the
# next whitespace, so an unescaped "@", "/", "?" or "#" inside it (SQLAlchemy
# accepts them) is still masked whole. Over-masking a rare odd URL (an "@" in
# its path) is acceptable; leaking part of a password is not.
_URL_USERINFO = re.compile(
    r"(?P<prefix>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)(?P<password>\S*)@"
)

# password=..., PWD=...; (ODBC), ?password=...& (URL query), PWD%3D...%3B (an
# URL-encoded odbc_connect), DBCRON_SMTP_PASSWORD=... The value is a quoted
# string (quotes kept), an ODBC {braced} value, or runs to whitespace, "&",
# ";", "," or their URL encodings.
_KEY_VALUE = re.compile(
    rf"(?i)(?P<key>\b{_KEY})(?P<sep>\s*=\s*|%3D)"
    r"(?:(?P<quote>['\"])(?:\\.|(?!(?P=quote)).)*(?P=quote)|\{[^}]*\}|(?:(?!%3B|%26)[^\s&;,'\"])+)"
)

# {"password": "x"} (JSON) and {'db_password': 'x'} (a dict's repr in an exception).
_MAPPING = re.compile(
    rf"(?i)(?P<head>(?P<kq>['\"]){_KEY}(?P=kq)\s*:\s*)"
    r"(?P<vq>['\"])(?:\\.|(?!(?P=vq)).)*(?P=vq)"
)

# Secrets shorter than this are left to the structural rules: masking "pw"
# wherever it stands alone would garble ordinary text.
_MIN_EXACT = 4
_known: set[str] = set()
_exact: re.Pattern[str] | None = None


def remember(*secrets: str | None) -> None:
    """Mask these exact values (and their base64 forms) from now on, in this process.

    Called where a secret enters the process (settings, a resolved source, an
    SMTP login), so a driver or server quoting it bare cannot leak it.
    """
    global _exact
    for secret in secrets:
        if secret and len(secret) >= _MIN_EXACT:
            new = {secret, _b64(secret)}
            if not new <= _known:
                _known.update(new)
                _exact = None


def remember_login(user: str | None, password: str | None) -> None:
    """An SMTP login: the password, and the AUTH PLAIN blob a server may echo back."""
    remember(password)
    if password:
        remember(_b64(f"\0{user or ''}\0{password}"))


def remember_url(url: str) -> None:
    """The password of a URL or DSN, as written and URL-decoded (drivers print either)."""
    for password in url_passwords(url):
        remember(password, unquote(password))


def url_passwords(url: str) -> list[str]:
    found = [m.group("password") for m in _URL_USERINFO.finditer(url)]
    for match in _KEY_VALUE.finditer(url):
        value = match.group(0)[len(match.group("key")) + len(match.group("sep")):]
        found.append(value.strip("'\"{}"))
    return [p for p in found if p]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _exact_pattern() -> re.Pattern[str] | None:
    global _exact
    if _exact is None and _known:
        # Longest first, so a secret containing another is masked whole; a match
        # must not touch a letter, digit or base64 character on either side.
        body = "|".join(re.escape(s) for s in sorted(_known, key=len, reverse=True))
        _exact = re.compile(rf"(?<![A-Za-z0-9+/=])(?:{body})(?![A-Za-z0-9+/=])")
    return _exact


def _mask_key_value(match: re.Match[str]) -> str:
    quote = match.group("quote") or ""
    value = match.group(0)[len(match.group("key")) + len(match.group("sep")):]
    if value.startswith("{"):
        return f"{match.group('key')}{match.group('sep')}{{{MASK}}}"
    return f"{match.group('key')}{match.group('sep')}{quote}{MASK}{quote}"


def mask_secrets(text: str) -> str:
    """Replace every password found in ``text`` with ``***``; idempotent."""
    text = _URL_USERINFO.sub(lambda m: f"{m.group('prefix')}{MASK}@", text)
    text = _KEY_VALUE.sub(_mask_key_value, text)
    text = _MAPPING.sub(lambda m: f"{m.group('head')}{m.group('vq')}{MASK}{m.group('vq')}", text)
    exact = _exact_pattern()
    return exact.sub(MASK, text) if exact else text


def mask_value(value: Any) -> Any:
    """A JSON-like value with passwords masked: string leaves by ``mask_secrets``,
    and the whole value of any key that names a password (a `call` task's result)."""
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, Mapping):
        return {
            k: MASK if isinstance(k, str) and re.fullmatch(f"(?i){_KEY}", k) and v
            else mask_value(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [mask_value(v) for v in value]
    return value
