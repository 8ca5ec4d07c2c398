"""Change-aware delivery: `send: if_changed` and `only_new`, as the rows stream past.

A result's fingerprint ignores row order (a query without ORDER BY may return
the same rows in another order): it is a sum of per-row hashes, so memory stays
flat however many rows pass. `only_new` keeps a 64-bit hash per key in the
store and drops rows whose key is already there before any writer sees them.

The store is read before the query and written only after the mail went out;
a dry run reads and never writes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dbcron.jobs.types import JobError, JobRequest

if TYPE_CHECKING:
    from dbcron.store import SentResult

_MOD = 2**128


def row_hash(row: Sequence[Any]) -> int:
    """A row's 128-bit hash; `repr` tells 1 from '1' and keeps Decimal scale."""
    return int.from_bytes(hashlib.blake2b(repr(tuple(row)).encode(), digest_size=16).digest())


def key_hash(values: Sequence[Any]) -> int:
    """A key's hash as a signed 64-bit integer (what a BIGINT column holds)."""
    digest = hashlib.blake2b(repr(tuple(values)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, signed=True)


def fingerprint(columns: Sequence[str], row_sum: int, rows: int) -> str:
    head = json.dumps([list(columns), rows, row_sum])
    return hashlib.sha256(head.encode()).hexdigest()


@dataclass
class ChangeTracker:
    """One run's view of what its task delivered before, and what this run adds."""

    task: str
    if_changed: bool
    key: list[str]
    previous: SentResult | None
    known: set[int]
    columns: list[str] = field(default_factory=list)
    key_index: list[int] = field(default_factory=list)
    row_sum: int = 0
    rows: int = 0  # rows kept (all of them without only_new)
    seen: int = 0  # rows the query returned
    new_keys: set[int] = field(default_factory=set)

    @classmethod
    def for_request(cls, request: JobRequest) -> ChangeTracker | None:
        """None when the task uses neither `send: if_changed` nor `only_new`."""
        email = request.task.email
        if email is None or (email.send != "if_changed" and email.only_new is None):
            return None
        from dbcron.errors import StoreError
        from dbcron.store import open_store

        key = list(email.only_new.key) if email.only_new else []
        try:
            store = open_store(request.settings.store, create=not request.dry_run)
        except StoreError:
            if not request.dry_run:
                raise
            return cls(request.task.name, email.send == "if_changed", key, None, set())
        try:
            previous = store.sent.last(request.task.name)
            known = store.sent.known_keys(request.task.name) if key else set()
        finally:
            store.close()
        return cls(request.task.name, email.send == "if_changed", key, previous, known)

    def start(self, columns: Sequence[str]) -> None:
        self.columns = list(columns)
        missing = [k for k in self.key if k not in self.columns]
        if missing:
            raise JobError(
                f"email.only_new.key names {', '.join(repr(k) for k in missing)}, which the "
                f"query does not return (its columns: {', '.join(self.columns)})",
                retryable=False,
            )
        self.key_index = [self.columns.index(k) for k in self.key]

    def take(self, batch: list[Sequence[Any]]) -> list[Sequence[Any]]:
        """The batch less rows already delivered (only_new); every kept row is fingerprinted."""
        self.seen += len(batch)
        if self.key:
            kept = []
            for row in batch:
                h = key_hash([row[i] for i in self.key_index])
                if h not in self.known and h not in self.new_keys:
                    self.new_keys.add(h)
                    kept.append(row)
            batch = kept
        for row in batch:
            self.row_sum = (self.row_sum + row_hash(row)) % _MOD
        self.rows += len(batch)
        return batch

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.columns, self.row_sum, self.rows)

    def skip_reason(self) -> str:
        """Why this result is not mailed, or '' when it goes out."""
        if self.key and not self.rows:
            return f"no new rows (of {self.seen:,}): nothing sent (only_new)"
        if self.if_changed and self.previous and self.previous.fingerprint == self.fingerprint:
            sent = self.previous.scheduled_for
            return (f"same result as the mail for {sent:%Y-%m-%d %H:%M} UTC: nothing sent "
                    "(send: if_changed)")
        return ""

    def variables(self) -> dict[str, Any]:
        """For the subject and body: how many rows are new, and what changed since last time."""
        found: dict[str, Any] = {"new_rows": self.rows if self.key else None,
                                 "total_rows": self.seen}
        if self.if_changed:
            found["changed"] = self.previous is None or (
                self.previous.fingerprint != self.fingerprint)
            found["previous_rows"] = self.previous.rows if self.previous else None
        return found

    def remember(self, request: JobRequest) -> None:
        """After the mail went out: this result is the last delivered, its keys are known."""
        from dbcron.store import open_store

        now = datetime.now(UTC)
        store = open_store(request.settings.store)
        try:
            if self.if_changed:
                store.sent.record(self.task, self.fingerprint, self.rows, request.slot,
                                        now)
            if self.new_keys:
                store.sent.add_keys(self.task, self.new_keys, now)
        finally:
            store.close()
