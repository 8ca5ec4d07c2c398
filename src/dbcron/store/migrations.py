"""Schema versions and the steps between them, run on open.

Hand-written rather than Alembic: the schema is small, the steps are plain
SQLAlchemy Core in this file, and opening the store on every CLI call must not
pay Alembic's import. Each step runs in one write transaction together with the
version bump, so a crash mid-upgrade leaves the previous version intact.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, inspect, select, text

from dbcron.errors import StoreError
from dbcron.store.database import Database
from dbcron.store.tables import metadata, store_state


def _v1(conn: Connection) -> None:
    metadata.create_all(conn)
    conn.execute(store_state.insert().values(id=1, schema_version=0, revision=0))


STEPS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "tasks, runs, run requests, daemons, store state", _v1),
]
LATEST = STEPS[-1][0]


def current_version(conn: Connection) -> int:
    if not inspect(conn).has_table("store_state"):
        return 0
    return int(conn.execute(select(store_state.c.schema_version)).scalar_one())


def migrate(db: Database) -> int:
    """Bring the store to the latest version; returns the version it was at."""
    with db.read() as conn:
        found = current_version(conn)
    if found == LATEST:
        return found
    if found > LATEST:
        raise StoreError(
            f"the store is at schema version {found}, newer than this dbcron knows "
            f"({LATEST}): upgrade dbcron"
        )
    with db.write() as conn:
        if db.engine.dialect.name == "postgresql":
            # Two processes opening a fresh store at once: the second waits, then sees v1.
            conn.execute(text("SELECT pg_advisory_xact_lock(727100)"))
        found = current_version(conn)
        for version, _about, step in STEPS:
            if version > found:
                step(conn)
                conn.execute(store_state.update().values(schema_version=version))
    return found
