"""Schema versions and the steps between them, run on open.

Hand-written rather than Alembic: the schema is small, the steps are plain
SQLAlchemy Core in this file, and opening the store on every CLI call must not
pay Alembic's import. Each step runs in one write transaction together with the
version bump, so a crash mid-upgrade leaves the previous version intact.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from sqlalchemy import Connection, inspect, select, text, update

from dbcron.errors import StoreError
from dbcron.store.database import Database
from dbcron.store.tables import (
    api_tokens,
    deliveries,
    metadata,
    ready_signals,
    sent_keys,
    sent_results,
    sent_rows,
    store_state,
    tasks,
)


def _create(conn: Connection) -> None:
    """A new store gets the current schema at once; the steps below are for upgrades."""
    metadata.create_all(conn)
    conn.execute(store_state.insert().values(id=1, schema_version=LATEST, revision=0))


def _v2(conn: Connection) -> None:
    # `list` reads only the schedule of 10,000 tasks, not whole definitions.
    conn.execute(text("ALTER TABLE tasks ADD COLUMN schedule TEXT"))
    for name, definition in conn.execute(select(tasks.c.name, tasks.c.definition)).all():
        schedule = json.dumps(json.loads(definition)["schedule"], separators=(",", ":"))
        conn.execute(update(tasks).where(tasks.c.name == name).values(schedule=schedule))


def _v3(conn: Connection) -> None:
    # Only these tables are new: create_all with `tables=` leaves the others alone.
    metadata.create_all(conn, tables=[api_tokens, deliveries])


def _v4(conn: Connection) -> None:
    # New tables only: nothing existing changes, so an older store keeps all it has.
    # checkfirst: a store rolled back to an older version by hand may still hold them.
    sent_results.create(conn, checkfirst=True)
    sent_keys.create(conn, checkfirst=True)
    # A backfill request names its slot and trigger; run-now requests leave them NULL.
    _add_column(conn, "run_requests", "scheduled_for", "TIMESTAMP")
    _add_column(conn, "run_requests", "trigger", "VARCHAR(16)")


def _add_column(conn: Connection, table: str, column: str, sql_type: str) -> None:
    if column not in {c["name"] for c in inspect(conn).get_columns(table)}:
        conn.execute(text(f'ALTER TABLE {table} ADD COLUMN "{column}" {sql_type}'))


def _timestamp(conn: Connection) -> str:
    """The column type UtcDateTime gets from create_all on this backend."""
    return "DATETIME" if conn.dialect.name == "sqlite" else "TIMESTAMP WITHOUT TIME ZONE"


def _v5(conn: Connection) -> None:
    # Fencing: an owner cut off by a pause or a partition must not write or send.
    _add_column(conn, "runs", "fence", "BIGINT NOT NULL DEFAULT 0")
    _add_column(conn, "runs", "effect_at", _timestamp(conn))


def _v6(conn: Connection) -> None:
    # A new table only: a task mailed before it has a fingerprint and no rows, and its
    # next mail says the result changed without counts (SentResultRepo.last_rows).
    sent_rows.create(conn, checkfirst=True)


def _v7(conn: Connection) -> None:
    # A new table only; checkfirst keeps the step idempotent.
    ready_signals.create(conn, checkfirst=True)


# (version, what it changes, step); version 1 was the first schema.
STEPS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (2, "tasks.schedule: the schedule alone, for list and status", _v2),
    (3, "api_tokens: hashed tokens of the HTTP API; deliveries: the delivery ledger", _v3),
    (4, "sent_results, sent_keys: what was mailed, for send: if_changed and only_new; "
        "run_requests.scheduled_for, trigger: backfill requests", _v4),
    (5, "runs.fence, runs.effect_at: fencing of claims and side effects", _v5),
    (6, "sent_rows: the rows of the last mail, for if_changed to count what changed", _v6),
    (7, "ready_signals: ready signals received, for ready: {signal: true}", _v7),
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
        if found == 0:
            _create(conn)
            return found
        for version, _about, step in STEPS:
            if version > found:
                step(conn)
                conn.execute(store_state.update().values(schema_version=version))
    return found
