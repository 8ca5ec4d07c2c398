"""Opening a store: engine set-up per backend, read and write transactions.

SQLite is tuned so a CLI and a daemon writing at once never see "database is
locked": WAL lets readers run beside a writer, and write transactions begin
IMMEDIATE so they queue on the busy timeout at BEGIN instead of failing when a
deferred read lock cannot be upgraded.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from dbcron.errors import StoreError
from dbcron.secrets import mask_secrets

BUSY_TIMEOUT_MS = 30_000
# In WAL mode NORMAL syncs at checkpoints, not at every commit: a crash of the
# process loses nothing, a power cut may undo the last commits (see write()).
_SYNCHRONOUS = "NORMAL"


class Database:
    """An engine plus the two kinds of transaction the store uses."""

    def __init__(self, url: str, create: bool = True, check: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.engine = (_sqlite_engine(url, create, check) if self.is_sqlite
                       else _server_engine(url))

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self, durable: bool = False) -> Iterator[Connection]:
        """A write transaction. `durable`: on SQLite, its commit returns only once it is
        on disk (synchronous=FULL for this one), where the store's other commits may
        still be lost to a power cut (WAL with synchronous=NORMAL: never a damaged
        file, but the last commits undone). For what must hold before a side effect."""
        with self.engine.connect() as conn:
            raw = conn.connection.dbapi_connection if durable and self.is_sqlite else None
            if raw is not None:  # SQLite refuses to change it inside a transaction
                raw.cursor().execute("PRAGMA synchronous = FULL")
            try:
                conn = conn.execution_options(dbcron_write=True)
                with conn.begin():
                    yield conn
            finally:
                if raw is not None:
                    raw.cursor().execute(f"PRAGMA synchronous = {_SYNCHRONOUS}")

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_engine(url: str, create: bool, check: bool) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        refuse_damaged(Path(database), check)
        if create:
            _create_private_file(Path(database))
        elif not Path(database).exists():
            # A read command run from the wrong directory must not leave an empty store
            # behind and report "no tasks" as if that were the truth.
            raise StoreError(
                f"no store at {database}: set DBCRON_STATE_DIR (or --state-dir) to where the "
                "daemon keeps it, or create one with 'manage-tasks apply'"
            )
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin event below emit BEGIN itself (pysqlite's own is deferred).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute(f"PRAGMA synchronous = {_SYNCHRONOUS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("dbcron_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def refuse_damaged(path: Path, check: bool) -> None:
    """Refuse a store file that is not a sound SQLite database, before anything writes.

    A zero-length file (a failed copy, a full disk) would otherwise silently become
    a new, empty store, and the tasks seem gone; a damaged one would be written to
    and fail later with a long traceback. `check` adds SQLite's quick_check (a read
    of every page: the daemon pays it once at start, the CLI does not).
    """
    try:
        size = path.stat().st_size
    except OSError:
        return  # missing: created below, or refused as "no store"
    advice = ("stop every dbcron process using it and restore the file from your backup "
              "(or move it away to start a new, empty store)")
    if size == 0:
        raise StoreError(f"the store {path} is empty (0 bytes), not a dbcron store: {advice}")
    if not check:
        return
    import sqlite3

    try:
        conn = sqlite3.connect(path)
        try:
            found = [str(r[0]) for r in conn.execute("PRAGMA quick_check")]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        found = [str(exc)]
    if found != ["ok"]:
        first = " ".join(found[0].split())[:200]  # one line, whatever SQLite said
        raise StoreError(f"the store {path} is damaged (SQLite quick_check: {first}): {advice}")


def _create_private_file(path: Path) -> None:
    """Create the store file 0600 before SQLite does; its -wal and -shm files copy the mode."""
    if path.exists():
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    except OSError as exc:
        raise StoreError(f"cannot create the store {path}: {exc.strerror}") from None


def _server_engine(url: str) -> Engine:
    try:
        return create_engine(url, pool_pre_ping=True)
    except Exception as exc:  # bad URL or missing driver: say which, without the password
        raise StoreError(f"cannot open store {mask_secrets(url)}: {exc}") from None
