"""The store's tables (SQLAlchemy Core): tasks, runs, run requests, daemons, store state,
what was delivered (change-aware mail) and the ready signals received."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC out; stored naive UTC on every backend."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass aware UTC")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]


# SQLite only makes INTEGER PRIMARY KEY an alias of the rowid (autoincrementing).
BigId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

store_state = Table(
    "store_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("schema_version", Integer, nullable=False),
    # Bumped by every change to tasks; the daemon polls it to notice edits it was not told of.
    Column("revision", BigInteger, nullable=False),
)

tasks = Table(
    "tasks",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("definition", Text, nullable=False),
    Column("schedule", Text),  # the definition's schedule alone (v2), for cheap listing
    # sha256 of the canonical definition: reload compares it instead of whole definitions.
    Column("digest", String(64), nullable=False),
    Column("imported", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("task", String(64), nullable=False),
    Column("scheduled_for", UtcDateTime, nullable=False),
    Column("trigger", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("started_at", UtcDateTime),
    Column("finished_at", UtcDateTime),
    Column("rows", BigInteger),
    Column("bytes", BigInteger),
    Column("artifacts", Text),
    Column("result", Text),
    Column("error", Text),
    Column("host", String(255)),
    Column("pid", Integer),
    Column("daemon_id", String(36)),
    # A running run whose lease passed belongs to a dead daemon and becomes interrupted.
    Column("lease_until", UtcDateTime),
    # The claim's fencing number (v3): bumped whenever the row changes hands (an interrupt,
    # a retry's take-over), so a paused or cut-off owner's writes and side effects match
    # no row. daemon_id is the claim's owner.
    Column("fence", BigInteger, nullable=False, server_default="0"),
    # When the current attempt passed its side-effect gate (v3): past it, a mail may be
    # out or a commit made, so an interrupted attempt is not retried.
    Column("effect_at", UtcDateTime),
    # The slot's claim: a retry, a restart or a second daemon cannot run it again.
    UniqueConstraint("task", "scheduled_for", name="uq_runs_task_slot"),
    Index("ix_runs_status", "status"),
    Index("ix_runs_finished_at", "finished_at"),
)

run_requests = Table(
    "run_requests",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("task", String(64), nullable=False),
    Column("requested_at", UtcDateTime, nullable=False),
    Column("daemon_id", String(36)),
    Column("run_id", BigInteger),
    # A backfill asks for a past slot (v3); a plain run-now leaves both empty.
    Column("scheduled_for", UtcDateTime),
    Column("trigger", String(16)),
)

daemons = Table(
    "daemons",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("heartbeat_at", UtcDateTime, nullable=False),
    Column("last_reload_at", UtcDateTime),
    Column("tasks_loaded", Integer, nullable=False),
    Column("status", String(255), nullable=False),
    Column("stopped_at", UtcDateTime),
    Column("heartbeat_seconds", Float, nullable=False),
)

# HTTP API tokens (v3): the SHA-256 of each token, never the token itself.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("scope", String(8), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime),
)

# The delivery ledger (v3): one row per run, channel and recipient, written when the run
# ends and again by each `resend`.
deliveries = Table(
    "deliveries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("run_id", BigInteger, nullable=False),
    Column("task", String(64), nullable=False),
    Column("channel", String(64), nullable=False),  # "mail" or a deliver: channel's label
    Column("type", String(16), nullable=False),  # mail | webhook | slack | teams
    Column("recipient", String(320), nullable=False),  # an address, or the URL's ${VAR}/host
    Column("status", String(8), nullable=False),  # sent | failed | skipped
    Column("detail", Text, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("resend", Boolean, nullable=False),
    Index("ix_deliveries_run", "run_id"),
)

# What the last mail of a task carried (v4), for `send: if_changed`: one row per task.
sent_results = Table(
    "sent_results",
    metadata,
    Column("task", String(64), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("scheduled_for", UtcDateTime, nullable=False),
    Column("delivered_at", UtcDateTime, nullable=False),
)

# Row keys already mailed (v4), for `only_new`: a 64-bit hash of each key, 8 bytes
# a row instead of the key itself; pruned with the run history.
sent_keys = Table(
    "sent_keys",
    metadata,
    Column("task", String(64), primary_key=True),
    Column("key_hash", BigInteger, primary_key=True, autoincrement=False),
    Column("delivered_at", UtcDateTime, nullable=False),
    Index("ix_sent_keys_delivered_at", "delivered_at"),
)

# The rows of a task's last mail (v6), for `send: if_changed` to say what changed: one row
# per distinct result row, its 64-bit hash, how often it came (a result may repeat a row),
# and its key's hash when the task names email.changes.key. Empty when the mail had more
# rows than dbcron counts one by one (jobs/changes.py MAX_TRACKED_ROWS).
sent_rows = Table(
    "sent_rows",
    metadata,
    Column("task", String(64), primary_key=True),
    Column("row_hash", BigInteger, primary_key=True, autoincrement=False),
    Column("key_hash", BigInteger),
    Column("copies", Integer, nullable=False),
)

# Ready signals received (v7), for `ready: {signal: true}`: one row per signal, for the
# business date it opens; pruned with the run history.
ready_signals = Table(
    "ready_signals",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("task", String(64), nullable=False),
    Column("business_date", Date, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("sender", String(80), nullable=False),  # "cli" or "http token <name>"
    Index("ix_ready_signals_task_date", "task", "business_date"),
)
