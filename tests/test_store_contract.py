"""One contract for the store, run on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from dbcron.services import tasks
from dbcron.store import Claim, Store, open_store
from dbcron.store.migrations import LATEST, current_version
from dbcron.store.runs import AFTER_EFFECT, FIRST_FENCE, Finished, Started

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
CLAIM = Claim(host="h1", pid=42, daemon_id="d1", lease=timedelta(minutes=1))


def task(name: str, **extra: object) -> dict[str, object]:
    return {"name": name, "kind": "call", "schedule": {"every": "1m"}, "call": "m:f", **extra}


def test_upsert_creates_updates_and_bumps_revision(store: Store) -> None:
    assert store.tasks.revision() == 0
    first = store.tasks.upsert([task("a"), task("b")], NOW)
    assert (first.created, first.updated) == (["a", "b"], [])
    assert store.tasks.revision() == 1
    again = store.tasks.upsert([task("a"), task("b")], NOW)
    assert again.unchanged == ["a", "b"] and not again.changed
    assert store.tasks.revision() == 1
    changed = store.tasks.upsert([task("a", description="x")], NOW, prune=True)
    assert (changed.updated, changed.removed) == (["a"], ["b"])
    assert store.tasks.names() == ["a"]
    assert store.tasks.get("a").data["description"] == "x"  # type: ignore[union-attr]
    assert store.tasks.revision() == 2


def test_enable_disable_delete(store: Store) -> None:
    store.tasks.upsert([task("a")], NOW)
    assert tasks.set_enabled(store, "a", False, NOW)
    assert not tasks.set_enabled(store, "a", False, NOW)
    row = store.tasks.get("a")
    assert row is not None and not row.enabled and row.data["enabled"] is False
    assert store.tasks.digests() == {}
    assert tasks.set_enabled(store, "a", True, NOW)
    assert "enabled" not in store.tasks.get("a").data  # type: ignore[union-attr]
    assert store.tasks.delete("a") and not store.tasks.delete("a")
    assert store.tasks.revision() == 4


def test_a_slot_is_claimed_once(store: Store) -> None:
    first = store.runs.claim("a", NOW, "schedule", CLAIM)
    assert first is not None
    assert store.runs.claim("a", NOW, "schedule", CLAIM) is None
    assert store.runs.record("a", NOW, "schedule", "missed", NOW, CLAIM) is None
    assert store.runs.claim("b", NOW, "schedule", CLAIM) is not None
    done = Finished("succeeded", NOW + timedelta(seconds=3), rows=7, artifacts=["/x.xlsx"],
                    result={"ok": True})
    store.runs.update_many([(first, FIRST_FENCE, done)])
    run = store.runs.get(first)
    assert run is not None
    assert (run.status, run.rows, run.artifacts, run.result) == ("succeeded", 7, ["/x.xlsx"],
                                                                 {"ok": True})
    assert run.scheduled_for == NOW and run.scheduled_for.tzinfo is not None


def test_claim_many_takes_only_free_slots(store: Store) -> None:
    taken = store.runs.claim("a", NOW, "schedule", CLAIM)
    later = NOW + timedelta(minutes=1)
    kolkata = NOW.astimezone(__import__("zoneinfo").ZoneInfo("Asia/Kolkata"))
    got = store.runs.claim_many(
        [("a", kolkata, "schedule"), ("a", later, "schedule"), ("b", NOW, "catchup")], CLAIM
    )
    assert set(got) == {("a", later), ("b", NOW)}
    assert taken not in got.values() and len(set(got.values())) == 2
    assert store.runs.get(got[("b", NOW)]).trigger == "catchup"  # type: ignore[union-attr]
    assert store.runs.claim_many([], CLAIM) == {}


def test_expired_leases_become_interrupted(store: Store) -> None:
    now = datetime.now(UTC)
    run_id = store.runs.claim("a", NOW, "schedule", CLAIM, now)
    assert store.runs.interrupt_expired(now, "gone") == []
    # An already lapsed lease (a claim held -1 s) expires by every clock.
    lapsed = store.runs.claim("b", NOW, "schedule", replace(CLAIM, lease=timedelta(seconds=-1)),
                              now)
    stale = store.runs.interrupt_expired(now, "daemon gone")
    assert [r.id for r in stale] == [lapsed]
    run = store.runs.get(lapsed)  # type: ignore[arg-type]
    assert run is not None and (run.status, run.error) == ("interrupted", "daemon gone")
    assert store.runs.get(run_id).status == "running"  # type: ignore[arg-type,union-attr]


def test_leases_follow_the_store_clock_on_postgresql(store: Store) -> None:
    """A host whose clock runs 90 s fast must not take a live run for dead."""
    now = datetime.now(UTC)
    run_id = store.runs.claim("a", NOW, "schedule", CLAIM, now)
    fast = now + timedelta(seconds=90)
    stale = store.runs.interrupt_expired(fast, "gone")
    if store.db.engine.dialect.name == "postgresql":
        assert stale == []
    else:  # one host, one clock: the given time is the store's
        assert [r.id for r in stale] == [run_id]


def test_fencing_refuses_a_cut_off_owner(store: Store) -> None:
    now = datetime.now(UTC)
    lapsed = replace(CLAIM, lease=timedelta(seconds=-1))
    run_id = store.runs.claim("a", NOW, "schedule", lapsed, now)
    assert run_id is not None
    (stale,) = store.runs.interrupt_expired(now, "gone")
    assert stale.fence == FIRST_FENCE + 1 and stale.effect_at is None
    # The old owner, resumed: its updates, renewals and side effects all miss.
    store.runs.update_many([(run_id, FIRST_FENCE, Finished("succeeded", now))])
    store.runs.renew_leases([(run_id, FIRST_FENCE)], timedelta(minutes=5), now)
    assert not store.runs.pass_gate(run_id, FIRST_FENCE, now)
    assert store.runs.get(run_id).status == "interrupted"  # type: ignore[union-attr]
    # A peer takes it over, once; its gate opens and marks the side effect as begun.
    peer = replace(CLAIM, daemon_id="d2")
    fence = store.runs.take_over(run_id, stale.fence, peer, now)
    assert fence == FIRST_FENCE + 2
    assert store.runs.take_over(run_id, stale.fence, CLAIM, now) is None
    assert store.runs.pass_gate(run_id, fence, now)
    assert store.runs.interrupt_daemon("d2", now, "gone") == 1
    again = store.runs.get(run_id)
    assert again is not None and again.effect_at is not None
    assert again.error == "gone" + AFTER_EFFECT
    store.runs.update_many([(run_id, fence, Finished("succeeded", now))])
    assert store.runs.get(run_id).status == "interrupted"  # type: ignore[union-attr]


def test_gate_refuses_a_lapsed_lease_on_postgresql(store: Store) -> None:
    now = datetime.now(UTC)
    run_id = store.runs.claim("a", NOW, "schedule", replace(CLAIM, lease=timedelta(seconds=-1)),
                              now)
    passed = store.runs.pass_gate(run_id, FIRST_FENCE, now)  # type: ignore[arg-type]
    # On PostgreSQL the lease must hold by the server's clock; SQLite has one daemon.
    assert passed == (store.db.engine.dialect.name == "sqlite")


def test_one_batch_of_updates_and_gates_decides_each_run(store: Store) -> None:
    """The run writer's batch reuses one UPDATE per shape and one gate statement for
    every run in it: each run's gate still answers for that run and fence alone."""
    now = datetime.now(UTC)
    ids: list[int] = []
    for name in ("a", "b", "c", "d"):
        run_id = store.runs.claim(name, NOW, "schedule", CLAIM, now)
        assert run_id is not None
        ids.append(run_id)
    a, b, c, d = ids
    store.runs.update_many([(c, FIRST_FENCE, Finished("succeeded", now))])
    passed = store.runs.write_batch(
        [(a, FIRST_FENCE, Started(1, now, CLAIM)), (b, FIRST_FENCE, Started(1, now, CLAIM)),
         (b, FIRST_FENCE, Finished("failed", now, error="x"))],
        [(a, FIRST_FENCE), (b, FIRST_FENCE), (c, FIRST_FENCE), (d, FIRST_FENCE + 1),
         (d, FIRST_FENCE)],
        now,
    )
    # b finished earlier in the same batch, c before it; d's first gate has a wrong fence.
    assert passed == {a, d}
    rows = [store.runs.get(r) for r in ids]
    assert [r is not None and r.effect_at is not None for r in rows] == [True, False, False, True]
    assert rows[0] is not None and rows[0].started_at is not None
    assert rows[1] is not None and rows[1].status == "failed"


def test_history_latest_counts_and_prune(store: Store) -> None:
    for minutes, status in ((0, "succeeded"), (1, "failed"), (2, "missed")):
        slot = NOW + timedelta(minutes=minutes)
        run_id = store.runs.claim("a", slot, "schedule", CLAIM)
        assert run_id is not None
        store.runs.update_many([(run_id, FIRST_FENCE, Finished(status, slot))])
    assert [r.status for r in store.runs.history("a")] == ["missed", "failed", "succeeded"]
    assert [r.status for r in store.runs.history(status="failed")] == ["failed"]
    assert store.runs.latest_status()["a"] == (NOW + timedelta(minutes=2), "missed")
    assert store.runs.last_slots() == {"a": NOW + timedelta(minutes=2)}
    assert store.runs.counts_since(NOW) == {"succeeded": 1, "failed": 1, "missed": 1}
    assert store.runs.toward_max_runs("a") == 1
    assert store.runs.prune(NOW + timedelta(minutes=1, seconds=30)) == 2
    assert len(store.runs.history("a")) == 1


def test_migrations_are_idempotent(store_url: str) -> None:
    open_store(store_url).close()
    again = open_store(store_url)
    with again.db.read() as conn:
        assert current_version(conn) == LATEST
    again.close()


def test_newer_store_is_refused(store_url: str) -> None:
    from dbcron.errors import StoreError

    s = open_store(store_url)
    with s.db.write() as conn:
        conn.execute(text("UPDATE store_state SET schema_version = 99"))
    s.close()
    with pytest.raises(StoreError, match="schema version 99, newer than this dbcron knows"):
        open_store(store_url)


def test_sqlite_file_is_private_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dbcron.db"
    s = open_store(f"sqlite:///{path}")
    with s.db.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    s.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_sqlite_concurrent_writers_never_see_locked(tmp_path: Path) -> None:
    """Two processes writing at once: IMMEDIATE transactions queue instead of failing."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'c.db'}"
    open_store(url).close()
    script = (
        "import sys\nfrom datetime import datetime, UTC, timedelta\n"
        "from dbcron.store import open_store, Claim\n"
        "s = open_store(sys.argv[1]); c = Claim('h', 1, None, None)\n"
        "t0 = datetime(2026, 1, 1, tzinfo=UTC)\n"
        "for i in range(300):\n"
        "    s.tasks.upsert([{'name': f'{sys.argv[2]}{i % 7}', 'kind': 'call',"
        " 'schedule': {'every': f'{i + 1}m'}, 'call': 'm:f'}], t0)\n"
        "    s.runs.claim(sys.argv[2], t0 + timedelta(minutes=i), 'schedule', c)\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, url, who], stderr=subprocess.PIPE)
        for who in ("x", "y", "z")
    ]
    errors = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    s = open_store(url)
    assert len(s.runs.history(limit=10_000)) == 900
    s.close()


def test_run_requests_are_taken_once_and_forgotten(store: Store) -> None:
    first = store.daemons.request_run("a", NOW)
    second = store.daemons.request_run("b", NOW)
    assert [r.id for r in store.daemons.take_requests("d1")] == [first, second]
    assert store.daemons.take_requests("d2") == []
    assert store.daemons.answer_of(first) == ("d1", None)
    store.daemons.answer(first, 99)
    assert store.daemons.answer_of(first) == ("d1", 99)
    third = store.daemons.request_run("c", NOW)
    assert store.daemons.withdraw(third) and not store.daemons.withdraw(first)
    store.daemons.forget_before(NOW + timedelta(seconds=1))
    assert store.daemons.answer_of(first) == (None, None)


def test_daemon_heartbeat_alive_and_stopped(store: Store) -> None:
    from dbcron.store import DaemonRow

    row = DaemonRow(id="d1", host="h", pid=1, started_at=NOW, heartbeat_at=NOW,
                    last_reload_at=None, tasks_loaded=3, status="ok", stopped_at=None,
                    heartbeat_seconds=5.0)
    store.daemons.register(row)
    (found,) = store.daemons.latest()
    assert found.alive(NOW + timedelta(seconds=15)) and not found.alive(NOW + timedelta(seconds=16))
    store.daemons.beat("d1", NOW + timedelta(seconds=20), tasks_loaded=4)
    assert store.daemons.latest()[0].tasks_loaded == 4
    store.daemons.stopped("d1", NOW + timedelta(seconds=21))
    assert not store.daemons.latest()[0].alive(NOW + timedelta(seconds=21))


def test_upgrade_from_v1_keeps_tasks_and_history(store_url: str) -> None:
    """A version-1 store (no tasks.schedule column) upgrades in place, losing nothing."""
    s = open_store(store_url)
    s.tasks.upsert([task("a"), task("b", schedule={"cron": "0 9 * * *"})], NOW)
    run_id = s.runs.claim("a", NOW, "schedule", CLAIM)
    with s.db.write() as conn:
        conn.execute(text("ALTER TABLE tasks DROP COLUMN schedule"))
        _drop_v3(conn)
        conn.execute(text("UPDATE store_state SET schema_version = 1"))
    s.close()
    upgraded = open_store(store_url)
    with upgraded.db.read() as conn:
        assert current_version(conn) == LATEST
    assert [(n, k, e, sched) for n, k, e, sched in upgraded.tasks.summaries()] == [
        ("a", "call", True, '{"every":"1m"}'), ("b", "call", True, '{"cron":"0 9 * * *"}'),
    ]
    assert upgraded.runs.get(run_id) is not None  # type: ignore[arg-type]
    assert upgraded.tasks.revision() == 1
    upgraded.close()


def _drop_v3(conn: Any) -> None:
    conn.execute(text("ALTER TABLE runs DROP COLUMN fence"))
    conn.execute(text("ALTER TABLE runs DROP COLUMN effect_at"))


def test_upgrade_from_v2_fences_runs_left_running(store_url: str) -> None:
    """A run a version-2 daemon left running upgrades with fence 0: the next daemon
    interrupts it (moving the fence on) and may take it over; the old writer cannot."""
    s = open_store(store_url)
    now = datetime.now(UTC)
    run_id = s.runs.claim("a", NOW, "schedule", replace(CLAIM, lease=timedelta(seconds=-1)), now)
    with s.db.write() as conn:
        _drop_v3(conn)
        conn.execute(text("UPDATE store_state SET schema_version = 2"))
    s.close()
    upgraded = open_store(store_url)
    with upgraded.db.read() as conn:
        assert current_version(conn) == LATEST
    run = upgraded.runs.get(run_id)  # type: ignore[arg-type]
    assert run is not None and (run.status, run.fence, run.effect_at) == ("running", 0, None)
    (stale,) = upgraded.runs.interrupt_expired(now, "gone")
    assert stale.fence == 1
    assert upgraded.runs.take_over(stale.id, stale.fence, CLAIM, now) == 2
    upgraded.runs.update_many([(stale.id, 0, Finished("succeeded", now))])  # the v2 writer, late
    assert upgraded.runs.get(stale.id).status == "running"  # type: ignore[union-attr]
    upgraded.close()


def test_an_error_with_a_nul_byte_is_stored(store: Store) -> None:
    run_id = store.runs.claim("a", NOW, "schedule", CLAIM)
    assert run_id is not None
    failed = Finished("failed", NOW, error="bad byte \x00 here")
    store.runs.update_many([(run_id, FIRST_FENCE, failed)])
    assert store.runs.get(run_id).error == "bad byte \\x00 here"  # type: ignore[arg-type,union-attr]


def test_interrupted_runs_are_returned_once(store: Store) -> None:
    now = datetime.now(UTC)
    run_id = store.runs.claim("a", NOW, "schedule", replace(CLAIM, lease=timedelta(seconds=-1)),
                              now)
    assert [r.id for r in store.runs.interrupt_expired(now, "gone")] == [run_id]
    assert store.runs.interrupt_expired(now, "gone") == []


def test_sqlite_claims_load_no_postgresql_dialect(tmp_path: Path) -> None:
    """A SQLite daemon's first claim is the first slot of a burst: loading PostgreSQL's
    dialect then (~20 ms) delays every run of it. A fresh interpreter, so nothing the
    other tests loaded counts."""
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from datetime import UTC, datetime\n"
        "from dbcron.store import Claim, open_store\n"
        f"store = open_store('sqlite:///{tmp_path / 'dbcron.db'}')\n"
        "store.runs.claim_many([('a', datetime.now(UTC), 'schedule')], "
        "Claim('h', 1, 'd', None))\n"
        "print('sqlalchemy.dialects.postgresql' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    assert done.stdout.splitlines()[-1] == "False"


def test_sqlite_gate_commits_reach_the_disk_before_the_answer(tmp_path: Path) -> None:
    """WAL with synchronous=NORMAL may undo the last commits on a power cut; a gate's
    commit must not be among them, or the restarted daemon would retry a run whose side
    effect happened. Its transaction commits with synchronous=FULL (2), the others with
    NORMAL (1), and the pooled connection goes back to NORMAL after it."""
    from sqlalchemy import event

    store = open_store(f"sqlite:///{tmp_path / 'dbcron.db'}")
    levels: list[int] = []

    @event.listens_for(store.db.engine, "commit")
    def _level(conn: Any) -> None:
        levels.append(conn.connection.dbapi_connection.execute("PRAGMA synchronous").fetchone()[0])

    now = datetime.now(UTC)
    run_id = store.runs.claim("a", NOW, "schedule", CLAIM, now)
    assert run_id is not None
    store.runs.update_many([(run_id, FIRST_FENCE, Started(1, now, CLAIM))])
    assert store.runs.pass_gate(run_id, FIRST_FENCE, now)
    store.runs.update_many([(run_id, FIRST_FENCE, Finished("succeeded", now))])
    assert levels == [1, 1, 2, 1]
    store.close()
