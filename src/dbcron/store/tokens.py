"""API tokens for the daemon's HTTP API: only their SHA-256 is stored.

A token is 32 random bytes (``dbc_`` + URL-safe base64), so a plain SHA-256
is enough to make a leaked store useless to an attacker: there is nothing to
guess, and a slow salted hash would only cost every API request time. Lookup
is by that hash, so no token text is ever compared (or kept) in the clear.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import RowMapping, insert, select, update
from sqlalchemy.exc import IntegrityError

from dbcron.errors import DbcronError
from dbcron.store.database import Database
from dbcron.store.tables import api_tokens
from dbcron.vocabulary import TokenScope

TOKEN_PREFIX = "dbc_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenRow:
    name: str
    scope: TokenScope
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_json(self) -> dict[str, str | None]:
        return {
            "name": self.name, "scope": self.scope, "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


class TokenRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, name: str, scope: TokenScope, now: datetime) -> str:
        """Store a new token's hash; returns the token, which nobody can see again."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        try:
            with self.db.write() as conn:
                conn.execute(insert(api_tokens).values(
                    name=name, scope=scope, token_hash=hash_token(token), created_at=now,
                ))
        except IntegrityError:
            raise DbcronError(
                f"a token named '{name}' exists already (revoked tokens keep their name); "
                "choose another name"
            ) from None
        return token

    def find(self, token: str) -> TokenRow | None:
        """The active token with this text, or None (unknown and revoked look the same)."""
        query = select(api_tokens).where(
            api_tokens.c.token_hash == hash_token(token), api_tokens.c.revoked_at.is_(None)
        )
        with self.db.read() as conn:
            row = conn.execute(query).first()
        return None if row is None else _row(row._mapping)

    def all(self) -> list[TokenRow]:
        with self.db.read() as conn:
            rows = conn.execute(select(api_tokens).order_by(api_tokens.c.name)).all()
        return [_row(r._mapping) for r in rows]

    def revoke(self, name: str, now: datetime) -> bool:
        """False when no active token has that name."""
        with self.db.write() as conn:
            done = conn.execute(
                update(api_tokens)
                .where(api_tokens.c.name == name, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        return bool(done.rowcount)


def _row(values: RowMapping) -> TokenRow:
    return TokenRow(values["name"], values["scope"], values["created_at"], values["revoked_at"])
