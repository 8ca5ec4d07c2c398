"""The store: the truth about tasks and runs, behind one small interface.

SQLite (default) or PostgreSQL (several hosts sharing one store), chosen by URL.
"""

from __future__ import annotations

from dbcron.store.daemons import DaemonRepo, DaemonRow, RunRequest
from dbcron.store.database import Database
from dbcron.store.deliveries import DeliveryRepo, DeliveryRow
from dbcron.store.migrations import migrate
from dbcron.store.runs import Claim, RunRepo, RunRow
from dbcron.store.sent_results import SentResult, SentResultRepo
from dbcron.store.signals import SignalRepo, SignalRow
from dbcron.store.tasks import ApplyResult, TaskRepo, TaskRow
from dbcron.store.tokens import TokenRepo, TokenRow

__all__ = [
    "ApplyResult", "Claim", "DaemonRow", "DeliveryRow", "RunRequest", "RunRow", "SentResult",
    "SignalRow", "Store", "TaskRow", "TokenRow", "open_store",
]


class Store:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.tasks = TaskRepo(db)
        self.runs = RunRepo(db)
        self.daemons = DaemonRepo(db)
        self.tokens = TokenRepo(db)
        self.sent = SentResultRepo(db)
        self.deliveries = DeliveryRepo(db)
        self.signals = SignalRepo(db)

    def close(self) -> None:
        self.db.dispose()


def open_store(url: str, create: bool = True, check: bool = False) -> Store:
    """Open (creating or upgrading as needed) the store at `url`.

    With create=False a missing SQLite file is an error instead of a new empty store;
    with check=True a SQLite file must pass quick_check (a zero-length one never opens).
    """
    db = Database(url, create, check)
    migrate(db)
    return Store(db)
