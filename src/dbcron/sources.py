"""Which databases a task may reach: only the sources the operator configured.

A task author writes the store; the operator owns the daemon's environment.
The environment also holds the SMTP password and whatever else the daemon
was started with, so a task must not be able to name any variable it likes
(``${DBCRON_SMTP_PASSWORD}`` in a URL's query string would read it out). A
task's ``source`` is therefore one of:

- a *named source*, ``sales``, read from ``DBCRON_SOURCE_SALES``;
- a URL whose ``${VAR}`` references all name variables the operator allowed:
  ``DBCRON_SOURCE_*`` always, others listed in ``DBCRON_ALLOWED_SOURCE_VARS``
  (names, or prefixes ending in ``*``), never another ``DBCRON_*`` setting;
- a literal URL without a password (a password would be stored in clear).

The same rules run at ``validate``/``apply`` time and again when a run
resolves the source, so a row written into the store some other way is held
to them too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

SOURCE_PREFIX = "DBCRON_SOURCE_"
# Webhook URLs, headers, signing keys and monitor URLs: their own variables, never a source's.
SECRET_PREFIX = "DBCRON_SECRET_"
ALLOW_SETTING = "DBCRON_ALLOWED_SOURCE_VARS"
NAME = re.compile(r"^[a-z][a-z0-9_]*$")
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ALLOW_ENTRY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\*?$")
# scheme://user:PASSWORD@ and password=/pwd= in a query string or ODBC string.
_USERINFO_PASSWORD = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:(?P<pw>[^\s]*)@")
_KEY_PASSWORD = re.compile(r"(?i)(?:^|[?&;])\w*(?:password|passwd|pwd)=(?P<pw>[^&;]*)")


class SourceError(ValueError):
    """A source the rules refuse; the message says how the operator can allow it."""


def parse_allowlist(text: str | None) -> tuple[str, ...]:
    """``DBCRON_ALLOWED_SOURCE_VARS``: comma-separated names or ``PREFIX*``."""
    entries = tuple(e.strip() for e in (text or "").split(",") if e.strip())
    for entry in entries:
        if not _ALLOW_ENTRY.match(entry):
            raise SourceError(
                f"{ALLOW_SETTING}: {entry!r} is not a variable name or a prefix ending in '*' "
                "(e.g. SALES_DB_URL,REPORTING_*)"
            )
        if entry.upper().startswith("DBCRON_"):
            raise SourceError(
                f"{ALLOW_SETTING}: {entry!r} would let tasks read dbcron's own settings "
                "(such as DBCRON_SMTP_PASSWORD); DBCRON_SOURCE_* is always allowed, "
                "name other variables"
            )
    return entries


def source_variable(name: str) -> str:
    """The environment variable behind a named source: sales -> DBCRON_SOURCE_SALES."""
    return SOURCE_PREFIX + name.upper()


def is_allowed(var: str, allowlist: tuple[str, ...]) -> bool:
    if var.startswith(SOURCE_PREFIX):
        return True
    if var.upper().startswith("DBCRON_"):
        return False
    return any(
        var.startswith(entry[:-1]) if entry.endswith("*") else var == entry
        for entry in allowlist
    )


def variables(source: str) -> list[str]:
    """The environment variables a source reads at run time."""
    if NAME.match(source):
        return [source_variable(source)]
    return list(dict.fromkeys(ENV_REF.findall(source)))


def problems(source: str, allowlist: tuple[str, ...]) -> list[str]:
    """Why a task may not read the variables ``source`` names (empty when it may)."""
    if NAME.match(source):
        return []
    found = []
    refused = [v for v in variables(source) if not is_allowed(v, allowlist)]
    for var in refused:
        if var.upper().startswith("DBCRON_"):
            found.append(
                f"${{{var}}} is one of dbcron's own settings, which tasks may not read; "
                f"define the source as {SOURCE_PREFIX}<NAME>=<url> and write the name"
            )
        else:
            found.append(
                f"${{{var}}} is not an allowed source variable; the operator can move the URL "
                f"to {SOURCE_PREFIX}{_suggested_name(var).upper()} and the task says "
                f"'source: {_suggested_name(var)}', or allow the variable with "
                f"{ALLOW_SETTING}={var} in the daemon's environment"
            )
    return found


def literal_password(source: str) -> bool:
    """Does the URL carry a password written out, rather than a ``${VAR}`` reference?"""
    for pattern in (_USERINFO_PASSWORD, _KEY_PASSWORD):
        for match in pattern.finditer(source):
            if ENV_REF.sub("", match.group("pw")):
                return True
    return False


def literal_password_message() -> str:
    return (
        "the URL holds a password, which would be stored in clear; put the URL in the "
        f"daemon's environment (.env or /etc/dbcron/dbcron.env) as {SOURCE_PREFIX}<NAME>=<url> "
        "and write 'source: <name>' (lower case), e.g. DBCRON_SOURCE_SALES and 'source: sales'"
    )


def resolve(source: str, environ: Mapping[str, str]) -> str:
    """The URL a run connects to; the allowlist is read from the same environment."""
    allowlist = parse_allowlist(environ.get(ALLOW_SETTING))
    refused = problems(source, allowlist)
    if refused:
        raise SourceError("; ".join(refused))
    missing = [var for var in variables(source) if var not in environ]
    if missing:
        raise SourceError(
            f"the source needs the environment variable {', '.join(missing)}, which is not set "
            "(set it in the daemon's environment or .env)"
        )
    if NAME.match(source):
        return environ[source_variable(source)]
    return ENV_REF.sub(lambda m: environ[m.group(1)], source)


def secret_problem(text: str) -> str | None:
    """Why a channel's or monitor's ``${VAR}`` may not be read, or None when it may.

    Those values go to a URL the task author chose: were any variable readable, a
    header of ``${DBCRON_SMTP_PASSWORD}`` or ``${DBCRON_SOURCE_SALES}`` would post the
    daemon's own secrets there. So they read only variables named for the purpose.
    """
    refused = [var for var in ENV_REF.findall(text) if not var.startswith(SECRET_PREFIX)]
    if not refused:
        return None
    var = refused[0]
    return (
        f"${{{var}}} cannot be read here: webhook and monitor secrets come only from "
        f"{SECRET_PREFIX}* variables, so a task cannot post the daemon's other settings "
        f"to a URL of its choosing; name it e.g. {SECRET_PREFIX}{var.upper()}"
    )


def _suggested_name(var: str) -> str:
    name = re.sub(r"[^a-z0-9]+", "_", var.lower()).strip("_")
    name = re.sub(r"_(db_)?url$", "", name) or "db"
    return name if NAME.match(name) else f"db_{name}"
