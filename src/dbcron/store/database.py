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


class Database:
    """An engine plus the two kinds of transaction the store uses."""

    def __init__(self, url: str, create: bool = True) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.engine = _sqlite_engine(url, create) if self.is_sqlite else _server_engine(url)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn = conn.execution_options(dbcron_write=True)
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_engine(url: str, create: bool) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
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
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("dbcron_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


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
