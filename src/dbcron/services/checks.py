"""`test-email` and `test-source`: try the settings for real and say what is wrong.

Each check does the real thing once (sends a mail, connects and runs
``SELECT 1``) without retries, because the person at the terminal wants the
answer now, and turns the failure into a sentence naming the setting to fix.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbcron.errors import DbcronError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from dbcron.settings import Settings

# (what the error says, what to check): the first match adds its hint.
_MAIL_HINTS = [
    ("connection refused", "is an SMTP server listening there? (DBCRON_SMTP_HOST, _PORT)"),
    ("cannot resolve", "check DBCRON_SMTP_HOST"),
    ("no answer within", "a firewall, or the wrong port? (DBCRON_SMTP_PORT, _TIMEOUT)"),
    ("login as", "check DBCRON_SMTP_USER and DBCRON_SMTP_PASSWORD"),
    ("auth extension not supported", "the server offers no login: unset DBCRON_SMTP_USER"),
    ("starttls extension not supported", "the server has no STARTTLS: DBCRON_SMTP_SECURITY"),
    ("tls", "465 usually means ssl, 587 starttls (DBCRON_SMTP_SECURITY, _PORT)"),
    ("ssl", "465 usually means ssl, 587 starttls (DBCRON_SMTP_SECURITY, _PORT)"),
    ("connection closed", "465 usually means ssl, 587 starttls (DBCRON_SMTP_SECURITY, _PORT)"),
    ("sender", "check DBCRON_SMTP_FROM: the server does not accept it as sender"),
]
_SOURCE_HINTS = [
    ("connection refused", "is the database server running and listening there?"),
    ("can't connect", "is the database server running and listening there?"),
    ("password authentication failed", "check the user and password of the URL"),
    ("access denied", "check the user and password of the URL"),
    # Before "does not exist": PostgreSQL says 'role "x" does not exist' for a bad user.
    ('role "', "check the user name of the URL: the server has no such role (user)"),
    ("does not exist", "check the database name at the end of the URL"),
    ("unknown database", "check the database name at the end of the URL"),
    ("could not translate host name", "check the host name of the URL"),
    ("name or service not known", "check the host name of the URL"),
    ("timeout", "a firewall, or the wrong host or port?"),
]


class CheckFailed(DbcronError):
    """A check found a problem; the message says what to change."""


def check_email(settings: Settings, address: str, now: datetime) -> str:
    """Send one test mail to ``address`` with the current settings; say how it went."""
    from dbcron.jobs.mail.delivery import mailer_for
    from dbcron.jobs.mail.send import MailError, OutboxMailer, build_message, make_message_id
    from dbcron.jobs.mail.send import parse_address as parse

    host = socket.gethostname()
    where = _smtp_description(settings)
    try:
        domain = parse(settings.smtp_from).domain
        msg = build_message(
            sender=settings.smtp_from,
            to=[address],
            cc=[],
            subject=f"dbcron test mail from {host}",
            text=(
                f"This is a test mail from dbcron on {host}, sent {now.isoformat()}\n"
                f"through {where}.\n\nIf you can read it, report mails will arrive too.\n"
            ),
            html=None,
            attachments=[],
            message_id=make_message_id("test-email", now, domain),
            date=now,
        )
    except ValueError as exc:
        raise CheckFailed(str(exc)) from None
    mailer = mailer_for(settings)
    try:
        mailer.send(msg)
    except MailError as exc:
        message = f"test mail to {address} not sent: {exc}"
        raise CheckFailed(_with_hint(message, _MAIL_HINTS)) from None
    if isinstance(mailer, OutboxMailer):
        return (
            f"no SMTP host is set (DBCRON_SMTP_HOST), so mail goes to the outbox: "
            f"the test mail to {address} is in {mailer.path_for(msg)}"
        )
    return f"test mail sent to {address} through {where}"


def _smtp_description(settings: Settings) -> str:
    if not settings.smtp_host:
        return f"the outbox {settings.outbox_dir}"
    login = f", as {settings.smtp_user}" if settings.smtp_user else ""
    return f"{settings.smtp_host}:{settings.smtp_port} ({settings.smtp_security}{login})"


def check_source(target: str | Mapping[str, Any], settings: Settings) -> str:
    """Connect to a source URL (or a task's source), run ``SELECT 1``, name the server.

    ``settings`` is taken so the check runs where the settings (and the .env
    with the source's ``${VAR}``) have been loaded.
    """
    from sqlalchemy import create_engine
    from sqlalchemy.exc import SQLAlchemyError

    from dbcron.jobs.query import describe_error, expand_source, hide_password, unparsable
    from dbcron.jobs.types import JobError

    if isinstance(target, Mapping):
        if not target.get("source"):
            raise CheckFailed(f"{target['name']} is a {target['kind']} task: it has no source")
        template = str(target["source"])
    else:
        template = target
    try:
        url = expand_source(template)
        _refuse_new_sqlite_file(url)
        engine = create_engine(url)
    except JobError as exc:
        raise CheckFailed(str(exc)) from None
    except CheckFailed:
        raise
    except ValueError:
        raise CheckFailed(unparsable(url)) from None
    except Exception as exc:  # a bad URL or a driver that is not installed
        raise CheckFailed(hide_password(f"cannot use the source {url}: {exc}", url)) from None
    shown = hide_password(engine.url.render_as_string(hide_password=True), url)
    started = time.monotonic()
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1").scalar()
            server = _server(conn)
            took = (time.monotonic() - started) * 1000
            powers = _write_powers(conn)
    except SQLAlchemyError as exc:
        message = describe_error("connecting", exc, url)
        raise CheckFailed(_with_hint(message, _SOURCE_HINTS)) from None
    finally:
        engine.dispose()
    report = f"{shown}: connected to {server}, SELECT 1 in {took:.0f} ms"
    if powers:
        report += (
            f"\nwarning: this login can change the server ({'; '.join(powers)}); "
            "report and alert tasks are only as read-only as their login: give them a "
            "role that can only read (docs/security.md)"
        )
    return report


# PostgreSQL: what lets a login write, kill or reach files despite a read-only
# transaction (lo_export, pg_terminate_backend, pg_read_file need these).
_PG_POWERS = """
SELECT r.rolsuper,
       pg_has_role(current_user, 'pg_write_server_files', 'MEMBER'),
       pg_has_role(current_user, 'pg_read_server_files', 'MEMBER'),
       pg_has_role(current_user, 'pg_execute_server_program', 'MEMBER'),
       pg_has_role(current_user, 'pg_signal_backend', 'MEMBER'),
       has_database_privilege(current_database(), 'CREATE'),
       EXISTS (SELECT 1 FROM pg_namespace n WHERE has_schema_privilege(n.oid, 'CREATE')
               AND left(n.nspname, 3) <> 'pg_' AND n.nspname <> 'information_schema'),
       EXISTS (SELECT 1 FROM information_schema.table_privileges
               WHERE grantee IN (current_user, 'PUBLIC')
               AND table_schema NOT IN ('pg_catalog', 'information_schema')
               AND privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE'))
FROM pg_roles r WHERE r.rolname = current_user
"""
_PG_LABELS = (
    "superuser", "member of pg_write_server_files", "member of pg_read_server_files",
    "member of pg_execute_server_program", "member of pg_signal_backend",
    "CREATE on the database", "CREATE in a schema", "INSERT/UPDATE/DELETE/TRUNCATE on tables",
)
# MariaDB/MySQL privileges beyond reading (FILE: INTO OUTFILE; SUPER, CONNECTION
# ADMIN: KILL of other sessions).
_MYSQL_WRITE = frozenset({
    "ALL PRIVILEGES", "SUPER", "FILE", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP",
    "ALTER", "INDEX", "CREATE VIEW", "CREATE ROUTINE", "ALTER ROUTINE", "EXECUTE", "EVENT",
    "TRIGGER", "CREATE TEMPORARY TABLES", "LOCK TABLES", "CONNECTION ADMIN", "CREATE USER",
    "PROCESS", "RELOAD", "SHUTDOWN", "GRANT OPTION",
})


def _write_powers(conn: Connection) -> list[str]:
    """What the login may do beyond reading; SQLite reports are held read-only by
    an authorizer (jobs.query), so only the servers are asked."""
    import re

    dialect = conn.dialect.name
    if dialect == "postgresql":
        row = conn.exec_driver_sql(_PG_POWERS).one()
        if row[0]:
            return ["superuser"]
        return [label for label, held in zip(_PG_LABELS, row, strict=True) if held]
    if dialect == "mysql":
        found: list[str] = []
        for (grant,) in conn.exec_driver_sql("SHOW GRANTS"):
            match = re.match(r"GRANT (.+?) ON (\S+)", str(grant))
            if match:
                privileges = [p.strip().upper() for p in match.group(1).split(",")]
                found += [f"{p} on {match.group(2)}" for p in privileges if p in _MYSQL_WRITE]
            if "WITH GRANT OPTION" in str(grant).upper():
                found.append("GRANT OPTION")
        return list(dict.fromkeys(found))
    return []


def _refuse_new_sqlite_file(url: str) -> None:
    # Connecting to a missing SQLite file would create an empty database and
    # report success: the typo the check exists to catch.
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    database = parsed.database or ":memory:"
    if parsed.get_backend_name() != "sqlite" or database.startswith((":memory:", "file:")):
        return
    if not Path(database).is_file():
        raise CheckFailed(f"no SQLite database at {Path(database).resolve()}")


def _server(conn: Connection) -> str:
    dialect = conn.dialect
    names = {"postgresql": "PostgreSQL", "sqlite": "SQLite", "mysql": "MySQL"}
    name = names.get(dialect.name, dialect.name)
    if getattr(dialect, "is_mariadb", False):
        name = "MariaDB"
    version = ".".join(str(p) for p in (dialect.server_version_info or ()) if isinstance(p, int))
    return f"{name} {version}".strip()


def _with_hint(message: str, hints: list[tuple[str, str]]) -> str:
    lowered = message.lower()
    for needle, hint in hints:
        if needle in lowered:
            return f"{message}; {hint}"
    return message
