"""HTTP API tokens: stored hashed (SQLite and PostgreSQL), the v2 -> v3 upgrade, the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from conftest import Cli, reopened_from
from dbcron.errors import DbcronError
from dbcron.store import Store, open_store
from dbcron.store.tables import api_tokens
from dbcron.store.tokens import hash_token

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def test_a_token_is_stored_only_as_its_hash(store: Store) -> None:
    token = store.tokens.create("grafana", "read", NOW)
    assert token.startswith("dbc_") and len(token) > 40
    with store.db.read() as conn:
        (row,) = conn.execute(select(api_tokens)).all()
    assert token not in repr(tuple(row)) and row.token_hash == hash_token(token)
    found = store.tokens.find(token)
    assert found is not None and (found.name, found.scope, found.active) == ("grafana", "read",
                                                                             True)
    assert store.tokens.find(token[:-1] + ("A" if token[-1] != "A" else "B")) is None


def test_revoked_tokens_are_refused_and_keep_their_name(store: Store) -> None:
    token = store.tokens.create("etl", "write", NOW)
    assert store.tokens.revoke("etl", NOW + timedelta(hours=1))
    assert store.tokens.find(token) is None
    assert not store.tokens.revoke("etl", NOW)  # already revoked
    (row,) = store.tokens.all()
    assert row.revoked_at == NOW + timedelta(hours=1)
    with pytest.raises(DbcronError, match="a token named 'etl' exists already"):
        store.tokens.create("etl", "read", NOW)


def test_upgrade_from_v2_adds_tokens_ledger_and_keeps_tasks(store_url: str) -> None:
    """A version-2 store (no api_tokens) upgrades in place, on SQLite and PostgreSQL."""
    s = open_store(store_url)
    s.tasks.upsert([{"name": "a", "kind": "call", "schedule": {"every": "1m"}, "call": "m:f"}],
                   NOW)
    upgraded = reopened_from(s, 2, "DROP TABLE api_tokens", "DROP TABLE deliveries")
    assert upgraded.tasks.names() == ["a"]
    token = upgraded.tokens.create("ops", "write", NOW)
    assert upgraded.tokens.find(token) is not None
    upgraded.deliveries.record(1, "a", [{"channel": "mail", "type": "mail",
                                         "recipient": "x@example.com", "status": "sent",
                                         "detail": "accepted"}], NOW)
    assert [d.recipient for d in upgraded.deliveries.of_runs([1])[1]] == ["x@example.com"]
    upgraded.close()


def test_the_delivery_ledger(store: Store) -> None:
    item = {"channel": "slack", "type": "slack", "recipient": "${HOOK}", "status": "failed",
            "detail": "HTTP 500 \x00 oops"}
    store.deliveries.record(7, "a", [item], NOW)
    store.deliveries.record(7, "a", [{**item, "status": "sent", "detail": "resent"}],
                            NOW + timedelta(minutes=5), resend=True)
    store.deliveries.record(8, "a", [], NOW)  # nothing to write is no error
    ledger = store.deliveries.of_runs([7, 8, 9])
    assert [(d.status, d.resend) for d in ledger[7]] == [("failed", False), ("sent", True)]
    assert ledger[8] == [] and ledger[9] == []
    assert ledger[7][0].to_json()["at"] == NOW.isoformat()
    assert store.deliveries.prune(NOW + timedelta(minutes=1)) == 1
    assert len(store.deliveries.of_runs([7])[7]) == 1


def test_cli_create_list_revoke(run_cli: Cli) -> None:
    created = run_cli("token", "create", "grafana", "--scope", "read")
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    assert token.startswith("dbc_")
    assert created.stderr == (
        "token 'grafana' (read) created; it is shown only now, store it safely\n"
    )
    listed = json.loads(run_cli("token", "list", "--json").stdout)
    assert [(t["name"], t["scope"], t["revoked_at"]) for t in listed] == [
        ("grafana", "read", None)
    ]
    assert token not in run_cli("token", "list").stdout
    revoked = run_cli("token", "revoke", "grafana")
    assert (revoked.exit_code, revoked.stdout) == (0, "token 'grafana' revoked\n")
    again = run_cli("token", "revoke", "grafana")
    assert (again.exit_code, again.stderr) == (
        1, "Error: no active token named 'grafana'; active tokens: none\n"
    )


def test_cli_refuses_bad_names_and_scopes(run_cli: Cli, state_dir: Path) -> None:
    bad = run_cli("token", "create", "Bad Name", "--scope", "read")
    assert (bad.exit_code, bad.stderr) == (
        1, "Error: token name 'Bad Name': use 1-64 of a-z, 0-9, '_', '.', '-' starting with a "
        "letter or digit (e.g. grafana, etl-prod)\n"
    )
    scope = run_cli("token", "create", "x", "--scope", "admin")
    assert scope.exit_code == 2
    assert "'admin' is not one of 'read', 'write'" in scope.stderr
    store = open_store(f"sqlite:///{state_dir / 'dbcron.db'}")
    assert store.tokens.all() == []
    store.close()
