"""The delivery ledger: what each run sent where, to whom, and why not."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select

from dbcron.store.database import Database
from dbcron.store.runs import printable
from dbcron.store.tables import deliveries


@dataclass(frozen=True)
class DeliveryRow:
    id: int
    run_id: int
    task: str
    channel: str
    type: str
    recipient: str
    status: str
    detail: str
    at: datetime
    resend: bool

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = self.at.isoformat()
        return data


class DeliveryRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, run_id: int, task: str, items: Iterable[Mapping[str, str]], now: datetime,
               resend: bool = False) -> None:
        """`items` as jobs report them: {channel, type, recipient, status, detail}."""
        rows = [{
            "run_id": run_id, "task": task, "channel": i["channel"], "type": i["type"],
            "recipient": i["recipient"][:320], "status": i["status"],
            "detail": printable(i["detail"]) or "", "at": now, "resend": resend,
        } for i in items]
        if rows:
            with self.db.write() as conn:
                conn.execute(insert(deliveries), rows)

    def of_runs(self, run_ids: Sequence[int]) -> dict[int, list[DeliveryRow]]:
        """The ledger of each run, in the order written (a resend after the original)."""
        found: dict[int, list[DeliveryRow]] = {r: [] for r in run_ids}
        if not run_ids:
            return found
        query = select(deliveries).where(deliveries.c.run_id.in_(list(run_ids))).order_by(
            deliveries.c.id)
        with self.db.read() as conn:
            for r in conn.execute(query):
                found[r.run_id].append(DeliveryRow(**r._mapping))
        return found

    def prune(self, before: datetime) -> int:
        with self.db.write() as conn:
            return conn.execute(delete(deliveries).where(deliveries.c.at < before)).rowcount
