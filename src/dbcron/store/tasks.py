"""Task rows: the validated definitions, keyed by name, and the store revision."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, select, update

from dbcron.store.database import Database
from dbcron.store.tables import store_state, tasks


@dataclass(frozen=True)
class TaskRow:
    name: str
    kind: str
    enabled: bool
    data: dict[str, Any]
    digest: str
    created_at: datetime
    updated_at: datetime
    imported: dict[str, Any] | None = None


@dataclass
class ApplyResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.removed)


def canonical(data: Mapping[str, Any]) -> str:
    """Stored as the model orders fields, so `show` and `export` read like a task file."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def digest_of(data: Mapping[str, Any]) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _row(r: Any) -> TaskRow:
    return TaskRow(
        name=r.name,
        kind=r.kind,
        enabled=r.enabled,
        data=json.loads(r.definition),
        digest=r.digest,
        created_at=r.created_at,
        updated_at=r.updated_at,
        imported=json.loads(r.imported) if r.imported else None,
    )


def bump_revision(conn: Connection) -> None:
    conn.execute(update(store_state).values(revision=store_state.c.revision + 1))


class TaskRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def revision(self) -> int:
        with self.db.read() as conn:
            return int(conn.execute(select(store_state.c.revision)).scalar_one())

    def all(self, enabled_only: bool = False) -> list[TaskRow]:
        query = select(tasks).order_by(tasks.c.name)
        if enabled_only:
            query = query.where(tasks.c.enabled.is_(True))
        with self.db.read() as conn:
            return [_row(r) for r in conn.execute(query)]

    def summaries(self) -> list[tuple[str, str, bool, str]]:
        """(name, kind, enabled, schedule as JSON) of every task, by name: what `list` shows.

        Skips the timestamps and builds no TaskRow: with 10,000 tasks those cost
        more than the query.
        """
        query = select(tasks.c.name, tasks.c.kind, tasks.c.enabled, tasks.c.schedule)
        with self.db.read() as conn:
            return [
                (r.name, r.kind, r.enabled, r.schedule)
                for r in conn.execute(query.order_by(tasks.c.name))
            ]

    def names(self) -> list[str]:
        with self.db.read() as conn:
            return list(conn.execute(select(tasks.c.name).order_by(tasks.c.name)).scalars())

    def digests(self) -> dict[str, str]:
        """name -> digest of enabled tasks: what a reload compares before reading definitions."""
        query = select(tasks.c.name, tasks.c.digest).where(tasks.c.enabled.is_(True))
        with self.db.read() as conn:
            return {r.name: r.digest for r in conn.execute(query)}

    def get(self, name: str) -> TaskRow | None:
        with self.db.read() as conn:
            r = conn.execute(select(tasks).where(tasks.c.name == name)).first()
        return _row(r) if r is not None else None

    def get_many(self, names: Iterable[str]) -> list[TaskRow]:
        wanted = list(names)
        found: list[TaskRow] = []
        with self.db.read() as conn:
            # Chunked: SQLite limits bound parameters per statement.
            for i in range(0, len(wanted), 500):
                query = select(tasks).where(tasks.c.name.in_(wanted[i : i + 500]))
                found.extend(_row(r) for r in conn.execute(query))
        return found

    def upsert(
        self,
        definitions: Iterable[Mapping[str, Any]],
        now: datetime,
        imported: Mapping[str, Mapping[str, Any]] | None = None,
        prune: bool = False,
    ) -> ApplyResult:
        """Insert new tasks, replace changed ones, optionally remove the rest; one transaction."""
        result = ApplyResult()
        imported = imported or {}
        incoming = {d["name"]: d for d in definitions}
        with self.db.write() as conn:
            existing = {
                r.name: r.digest for r in conn.execute(select(tasks.c.name, tasks.c.digest))
            }
            inserts, updates = [], []
            for name, data in incoming.items():
                values = {
                    "name": name,
                    "kind": data["kind"],
                    "enabled": bool(data.get("enabled", True)),
                    "definition": canonical(data),
                    "schedule": canonical(data["schedule"]),
                    "digest": digest_of(data),
                    "updated_at": now,
                }
                if name in imported:
                    values["imported"] = canonical(imported[name])
                if name not in existing:
                    inserts.append(values | {"created_at": now})
                    result.created.append(name)
                elif existing[name] != values["digest"]:
                    updates.append(values)
                    result.updated.append(name)
                else:
                    result.unchanged.append(name)
            if inserts:
                conn.execute(tasks.insert(), inserts)
            for values in updates:
                conn.execute(update(tasks).where(tasks.c.name == values["name"]).values(values))
            if prune:
                result.removed = sorted(set(existing) - set(incoming))
                for i in range(0, len(result.removed), 500):
                    conn.execute(delete(tasks).where(tasks.c.name.in_(result.removed[i : i + 500])))
            if result.changed:
                bump_revision(conn)
        return result

    def delete(self, name: str) -> bool:
        with self.db.write() as conn:
            gone = conn.execute(delete(tasks).where(tasks.c.name == name)).rowcount
            if gone:
                bump_revision(conn)
        return bool(gone)
