"""API token services behind `manage-tasks token`: create, list, revoke."""

from __future__ import annotations

import re
from datetime import datetime

from dbcron.errors import DbcronError
from dbcron.store import Store, TokenRow
from dbcron.vocabulary import TokenScope

NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


def create(store: Store, name: str, scope: TokenScope, now: datetime) -> str:
    """A new token of `scope`; the caller shows it once (only its hash is kept)."""
    if not NAME.fullmatch(name):
        raise DbcronError(
            f"token name {name!r}: use 1-64 of a-z, 0-9, '_', '.', '-' starting with a "
            "letter or digit (e.g. grafana, etl-prod)"
        )
    return store.tokens.create(name, scope, now)


def listing(store: Store) -> list[TokenRow]:
    return store.tokens.all()


def revoke(store: Store, name: str, now: datetime) -> None:
    if not store.tokens.revoke(name, now):
        known = [t.name for t in store.tokens.all() if t.active]
        raise DbcronError(
            f"no active token named '{name}'; active tokens: {', '.join(known) or 'none'}"
        )
