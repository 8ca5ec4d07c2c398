"""Run a task's SQL against its source: streamed reads, guarded writes.

- The source URL is resolved at run time from what the operator configured
  (``dbcron.sources``), so secrets never enter the store; every message is
  password-masked.
- Parameters are rendered by the templating sandbox and *bound*, never pasted.
- ``report``/``alert`` queries run read-only where the database enforces it
  (PostgreSQL and MariaDB read-only transactions, SQLite ``query_only``).
- The task's timeout becomes a statement timeout in the database, so a run
  that is stopped does not leave a query burning on the server.
- Rows come from a server-side cursor in batches: memory is one batch,
  whatever the size of the result.

SQLAlchemy is imported here only, and this module only by the worker.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dbcron.jobs.types import JobError
from dbcron.secrets import mask_secrets, remember, remember_url
from dbcron.templating import render_params

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from dbcron.model import Task

BATCH_ROWS = 5000
# How each database words "you may not write here" and "your time is up".
_READ_ONLY = re.compile(r"read[- ]?only|not authorized|authorization denied", re.IGNORECASE)
_TIMED_OUT = re.compile(
    r"statement timeout|max_statement_time|max_execution_time|interrupted", re.IGNORECASE
)
_CURSOR = re.compile(r"CURSOR FOR", re.IGNORECASE)
# Engines are not fork-safe: the key holds the pid, so a worker process forked
# from a parent that already had one builds its own pool.
_ENGINES: dict[tuple[int, str], Engine] = {}

Row = Sequence[Any]


@dataclass
class QueryStream:
    """What `stream_query` yields: the column names and the row batches, read once."""

    columns: list[str]
    batches: Iterator[list[Row]]


def expand_source(source: str, environ: Mapping[str, str] | None = None) -> str:
    """The task's source as a URL (see dbcron.sources); a refused or missing variable
    is a non-retryable JobError saying what to set."""
    from dbcron.sources import SourceError, resolve

    try:
        url = resolve(source, os.environ if environ is None else environ)
    except SourceError as exc:
        raise JobError(str(exc), retryable=False) from None
    remember_url(url)
    return url


def engine_for(url: str) -> Engine:
    """One engine (and connection pool) per source URL in this process."""
    key = (os.getpid(), url)
    engine = _ENGINES.get(key)
    if engine is None:
        engine = _create_engine(url)
        _ENGINES[key] = engine
    return engine


def _create_engine(url: str) -> Engine:
    from sqlalchemy import create_engine
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        # pre_ping: a pooled connection the server closed overnight is replaced
        # instead of failing the morning's report.
        return create_engine(url, pool_pre_ping=True)
    except ValueError:
        raise JobError(unparsable(url), retryable=False) from None
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise JobError(
            mask_secrets(f"cannot use the source {url}: {exc}"), retryable=False
        ) from None


def unparsable(url: str) -> str:
    """The URL parser's own message quotes a piece of the URL (part of a password
    holding an unescaped "@" or ":"), which no mask can recognise: say what to fix."""
    return mask_secrets(
        f"cannot parse the source URL {url}: characters such as @ : / # in the user "
        "or password must be URL-encoded (%40 %3A %2F %23)"
    )


def dispose_engines() -> None:
    """Close every pooled connection of this process (worker shutdown, tests)."""
    for key in [k for k in _ENGINES if k[0] == os.getpid()]:
        _ENGINES.pop(key).dispose()


@contextlib.contextmanager
def stream_query(
    task: Task,
    variables: Mapping[str, Any],
    timeout: float,
    batch_rows: int = BATCH_ROWS,
) -> Iterator[QueryStream]:
    """Run the task's query read-only and yield its columns and row batches.

    The batches must be consumed inside the ``with`` block: the cursor, the
    read-only transaction and the statement timeout live exactly that long.
    ``row_limit`` caps the rows read (the cursor is closed early).
    """
    from sqlalchemy import text

    url = expand_source(task.source or "")
    params = render_params(task.params, variables)
    limit = task.row_limit
    with (
        _errors("query", url, timeout),
        _connection(url) as conn,
        _guard(conn, timeout, read_only=True),
    ):
        result = conn.execution_options(yield_per=batch_rows).execute(
            text(task.query or ""), params
        )
        if not result.returns_rows:
            raise JobError("the query returned no result set (is it a SELECT?)", retryable=False)
        stream = _Batches(result.partitions(batch_rows), limit)
        try:
            columns = list(map(str, result.keys()))
            yield QueryStream(columns, iter(stream))
        finally:
            if stream.cut and conn.dialect.name == "mysql":
                # pymysql's streaming cursor reads every remaining row on close: a
                # row_limit of 10 over 20 million rows would still fetch them all.
                # Drop the connection instead, telling the cursor there is nothing to
                # drain (else its __del__ reads from the closed socket and complains).
                pending = getattr(getattr(result, "cursor", None), "_result", None)
                if pending is not None:
                    pending.unbuffered_active = False
                conn.invalidate()
            else:
                result.close()


class _Batches:
    """Batches up to the row limit; `cut` tells whether rows were left unread."""

    def __init__(self, partitions: Iterator[Sequence[Row]], limit: int | None) -> None:
        self._partitions = partitions
        self._limit = limit
        self.cut = False

    def __iter__(self) -> Iterator[list[Row]]:
        seen = 0
        for part in self._partitions:
            batch = list(part)
            if self._limit is not None and seen + len(batch) >= self._limit:
                self.cut = True
                yield batch[: self._limit - seen]
                return
            seen += len(batch)
            yield batch


def run_statements(
    task: Task,
    variables: Mapping[str, Any],
    timeout: float,
    commit: bool = True,
    before_commit: Callable[[], None] | None = None,
) -> list[int]:
    """Run a ``sql`` task's statements in one transaction; return each one's rowcount.

    Past ``max_rows_affected`` (all statements together) everything is rolled
    back and the run fails. ``commit=False`` (dry run) rolls back in any case,
    so a preview reports what would change without changing it. A rowcount of
    -1 means the driver does not know (DDL). ``before_commit`` may still refuse the
    commit by raising (the run's claim was taken over): then it is rolled back.
    """
    from sqlalchemy import text

    url = expand_source(task.source or "")
    params = render_params(task.params, variables)
    cap = task.max_rows_affected
    statements = task.statements or []
    if url.startswith("mysql") and (cap is not None or not commit):
        _refuse_implicit_commits(statements, "a dry run" if not commit
                                 else "max_rows_affected")
    counts: list[int] = []
    with (
        _errors("statement", url, timeout),
        _connection(url) as conn,
        _guard(conn, timeout, read_only=False),
    ):
        # The guard's SET already began the transaction (SQLAlchemy autobegin):
        # every statement joins it, and it ends in one commit or one rollback.
        try:
            for number, statement in enumerate(statements, start=1):
                if not statement.strip():
                    continue
                counts.append(conn.execute(text(statement), params).rowcount)
                total = sum(n for n in counts if n > 0)
                if cap is not None and total > cap:
                    raise JobError(
                        f"statement {number} brought the rows affected to {total}, over "
                        f"max_rows_affected {cap}: rolled back, nothing was changed",
                        retryable=False,
                    )
            if commit and before_commit is not None:
                before_commit()
        except BaseException:
            conn.rollback()
            raise
        if commit:
            conn.commit()
        else:
            conn.rollback()
    return counts


_ROLLBACKABLE = ("insert", "update", "delete", "replace", "select", "with")


def _refuse_implicit_commits(statements: Sequence[str], needs: str) -> None:
    """MariaDB/MySQL commit before and after DDL, OPTIMIZE, TRUNCATE...: a rollback
    cannot undo what came before them, so promising one would be a lie."""
    for number, statement in enumerate(statements, start=1):
        words = statement.split(None, 1)
        if words and words[0].lower() not in _ROLLBACKABLE:
            raise JobError(
                f"statement {number} ({words[0].upper()}) commits implicitly on "
                f"MariaDB/MySQL, so {needs} cannot roll the statements back; "
                f"only {', '.join(w.upper() for w in _ROLLBACKABLE)} can be rolled back",
                retryable=False,
            )


@contextlib.contextmanager
def _connection(url: str) -> Iterator[Connection]:
    with engine_for(url).connect() as conn:
        yield conn


@contextlib.contextmanager
def _guard(conn: Connection, timeout: float, read_only: bool) -> Iterator[None]:
    """Read-only mode and statement timeout for the database behind ``conn``.

    Session-level settings are put back afterwards, because the connection
    returns to a pool that the next task (maybe a ``sql`` task) shares.
    """
    dialect = conn.dialect.name
    if dialect == "postgresql":
        guard = _postgresql
    elif dialect in ("mysql", "mariadb"):
        guard = _mysql
    elif dialect == "sqlite":
        guard = _sqlite
    else:
        guard = _unguarded
    with guard(conn, timeout, read_only):
        yield


@contextlib.contextmanager
def _postgresql(conn: Connection, timeout: float, read_only: bool) -> Iterator[None]:
    # Both are transaction-scoped (LOCAL), so they end with the transaction and
    # nothing needs resetting; autobegin puts the BEGIN in front of them.
    if read_only:
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
    conn.exec_driver_sql(f"SET LOCAL statement_timeout = {_millis(timeout)}")
    try:
        yield
    finally:
        if conn.in_transaction() and read_only:
            conn.rollback()


@contextlib.contextmanager
def _mysql(conn: Connection, timeout: float, read_only: bool) -> Iterator[None]:
    is_mariadb = bool(getattr(conn.dialect, "is_mariadb", False))
    if is_mariadb:
        # MariaDB: seconds, any statement.
        variable, value = "max_statement_time", f"{max(timeout, 0.001):.3f}"
    else:
        # MySQL: milliseconds, SELECT only.
        variable, value = "max_execution_time", str(_millis(timeout))
    conn.exec_driver_sql(f"SET SESSION {variable} = {value}")
    try:
        if read_only:
            # DDL commits the current transaction implicitly and runs in a new one, so
            # a read-only transaction alone lets DROP TABLE through: the session's
            # next transactions are made read-only too (error 1792 for any write).
            conn.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
            conn.exec_driver_sql("START TRANSACTION READ ONLY")
        yield
    finally:
        with _invalidate_on_error(conn):
            if conn.in_transaction() and read_only:
                conn.rollback()
            if read_only:
                conn.exec_driver_sql("SET SESSION TRANSACTION READ WRITE")
            conn.exec_driver_sql(f"SET SESSION {variable} = DEFAULT")


@contextlib.contextmanager
def _sqlite(conn: Connection, timeout: float, read_only: bool) -> Iterator[None]:
    # SQLite has no statement timeout: a progress handler, called every N
    # virtual machine steps, interrupts the statement once the deadline passed.
    raw: Any = conn.connection.dbapi_connection
    deadline = time.monotonic() + timeout
    raw.set_progress_handler(_past(deadline), 10_000)
    if read_only:
        conn.exec_driver_sql("PRAGMA query_only = ON")
        raw.set_authorizer(_only_reading)
    try:
        yield
    finally:
        with _invalidate_on_error(conn):
            if read_only:
                raw.set_authorizer(None)  # before our own PRAGMA; the connection is pooled
            if conn.in_transaction() and read_only:
                conn.rollback()
            raw.set_progress_handler(None, 0)
            if read_only:
                conn.exec_driver_sql("PRAGMA query_only = OFF")
                conn.commit()


def _only_reading(action: int, *_: object) -> int:
    """SQLite authorizer for report and alert queries: reading and functions only.

    query_only stops writes to the database, but not PRAGMA journal_mode=WAL
    (changes the file's mode for every user), ATTACH (opens or creates any file
    the daemon's user can reach) or VACUUM INTO (writes one): each is denied
    when the statement is prepared.
    """
    import sqlite3

    allowed = (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
               sqlite3.SQLITE_RECURSIVE)
    return sqlite3.SQLITE_OK if action in allowed else sqlite3.SQLITE_DENY


@contextlib.contextmanager
def _unguarded(conn: Connection, timeout: float, read_only: bool) -> Iterator[None]:
    # Another database: no enforced read-only mode or timeout here; the
    # runner's own timeout still stops the run.
    try:
        yield
    finally:
        if conn.in_transaction() and read_only:
            conn.rollback()


def _past(deadline: float) -> Callable[[], int]:
    def handler() -> int:
        return 1 if time.monotonic() > deadline else 0

    return handler


def _millis(seconds: float) -> int:
    return max(1, round(seconds * 1000))


@contextlib.contextmanager
def _invalidate_on_error(conn: Connection) -> Iterator[None]:
    """A connection whose settings cannot be put back must not return to the pool."""
    try:
        yield
    except Exception:
        conn.invalidate()


@contextlib.contextmanager
def _errors(what: str, url: str, timeout: float) -> Iterator[None]:
    """Database errors -> JobError with the driver's message, passwords masked."""
    from sqlalchemy.exc import DBAPIError, ProgrammingError, SQLAlchemyError, StatementError

    try:
        yield
    except DBAPIError as exc:
        message = describe_error(what, exc, url)
        refused = _READ_ONLY.search(message) is not None
        if refused:
            message += " (report and alert queries run read-only; a sql task may write)"
        elif _CURSOR.search(message):
            # PostgreSQL streams through DECLARE ... CURSOR FOR <query>, which
            # only takes a query: an INSERT or DELETE fails as a syntax error.
            message += " (report and alert queries must return rows; a sql task may write)"
        elif _TIMED_OUT.search(message):
            message += f" (stopped by the task's timeout of {timeout:g}s)"
        # Syntax errors, unknown tables and writes in a report fail the same way
        # on every attempt; a lost connection or a timeout may not.
        retryable = not (refused or isinstance(exc, ProgrammingError))
        raise JobError(message, retryable=retryable) from None
    except StatementError as exc:  # e.g. a parameter the query names is not given
        raise JobError(describe_error(what, exc, url), retryable=False) from None
    except SQLAlchemyError as exc:
        raise JobError(describe_error(what, exc, url)) from None


def describe_error(what: str, exc: Exception, url: str) -> str:
    """One readable line from a SQLAlchemy error: the driver's message, masked.

    SQLAlchemy's own text repeats the SQL and the parameters and ends with a
    link; the driver's message (``exc.orig``) is what says what went wrong.
    """
    orig = getattr(exc, "orig", None)
    if orig is not None:
        detail = f"{type(orig).__name__}: {orig}"
    else:
        detail = str(exc).split("\n(Background on this error")[0]
    detail = " ".join(line.strip() for line in detail.strip().splitlines() if line.strip())
    text = f"{what} failed on {_host(url)}: {detail}"
    return hide_password(text, url)


def hide_password(text: str, url: str) -> str:
    """Mask URL passwords and, where a driver quoted it bare, the source's password itself."""
    from sqlalchemy.engine import make_url

    remember_url(url)
    with contextlib.suppress(Exception):
        remember(str(make_url(url).password or ""))
    return mask_secrets(text)


def _host(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        return "the source"
    if parsed.get_backend_name() == "sqlite":
        return f"sqlite {parsed.database or ':memory:'}"
    where = parsed.host or "localhost"
    if parsed.port:
        where += f":{parsed.port}"
    return f"{parsed.get_backend_name()} {where}/{parsed.database or ''}"
