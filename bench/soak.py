"""Soak: three daemons on one PostgreSQL store, killed and paused on a timer (issue 9).

    .venv/bin/python bench/soak.py [--minutes 10] [--every 30] [--json FILE]

Four `sql` tasks fire every second; each run sleeps 0.3 s on PostgreSQL, then
inserts (task, slot) into an `effects` table and commits: the commit is the side
effect, behind the fencing gate. Three scheduler-daemons share the store
(DBCRON_LEASE_SECONDS=10). Every `--every` seconds one of them, in turn, is
  - killed with -9 alone (its workers must die with it),
  - killed with -9 with its whole process group (as systemd's KillMode=control-group),
  - paused with SIGSTOP for lease + 5 s, then resumed (its claims are taken over),
and a killed one is started again at once. At the end all are stopped with
SIGTERM and the store is read:

  duplicated side effects   (task, slot) committed more than once       goal 0
  slots without a row       every-second slots with no run row          goal 0
  rows left running         after every daemon stopped                  goal 0

Also reported: run rows by status, and side effects whose row does not say
succeeded (a run interrupted after its commit: at most once, never twice).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
TASKS = ["a", "b", "c", "d"]
LEASE = 10
DAEMON = [sys.executable, "-c", "from dbcron.daemon.main import main; main()"]


def task_yaml(name: str) -> str:
    return f"""name: soak-{name}
kind: sql
schedule: {{every: 1s}}
policy: {{retries: 1, overlap: skip, grace: 1h, catchup: latest, timeout: 30s}}
source: ${{SOAK_DB}}
statements:
  - SELECT pg_sleep(0.3)
  - INSERT INTO effects (task, slot, pid) VALUES ('{name}', :slot, pg_backend_pid())
params:
  slot: "{{{{ now }}}}"
"""


class Daemon:
    def __init__(self, root: Path, index: int, env: dict[str, str]) -> None:
        self.dir = root / f"host-{index}"
        self.dir.mkdir()
        self.env = {**env, "DBCRON_STATE_DIR": str(self.dir)}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = open(self.dir / "daemon.log", "ab")  # noqa: SIM115 - closed at the end

    def start(self) -> None:
        # A session of its own: killpg reaches the daemon and its workers, nothing else.
        self.proc = subprocess.Popen(DAEMON, env=self.env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self, group: bool) -> None:
        assert self.proc is not None
        if group:
            os.killpg(self.proc.pid, signal.SIGKILL)
        else:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def pause(self, seconds: float) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        time.sleep(seconds)
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return -9


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--every", type=float, default=30)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    name = "dbcron_soak_" + uuid.uuid4().hex[:8]
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    dsn = f"host=127.0.0.1 port=5432 user=postgres dbname={name}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE effects (task text, slot text, pid int, "
                     "at timestamptz DEFAULT now())")
    root = Path(tempfile.mkdtemp(prefix="dbcron-soak-"))
    (root / "tasks").mkdir()
    for t in TASKS:
        (root / "tasks" / f"{t}.yaml").write_text(task_yaml(t))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBCRON_", "NOTIFY_"))}
    env |= {"DBCRON_STORE": url, "SOAK_DB": url, "DBCRON_LEASE_SECONDS": str(LEASE),
            "DBCRON_POLL_SECONDS": "5", "DBCRON_DRAIN_SECONDS": "5"}
    subprocess.run([sys.executable, "-c", "from dbcron.cli import main; main()", "apply",
                    str(root / "tasks")], env=env, check=True, capture_output=True)

    daemons = [Daemon(root, i, env) for i in range(3)]
    for d in daemons:
        d.start()
    began = datetime.now(UTC)
    deadline = time.monotonic() + args.minutes * 60
    actions: list[str] = []
    turn = 0
    while time.monotonic() + args.every < deadline:
        time.sleep(args.every)
        victim = daemons[turn % 3]
        kind = ("kill -9 alone", "kill -9 with workers", "pause past lease")[turn % 3]
        if kind == "pause past lease":
            victim.pause(LEASE + 5)
        else:
            victim.kill(group=kind.endswith("workers"))
            victim.start()
        actions.append(f"{datetime.now(UTC):%H:%M:%S} host-{turn % 3}: {kind}")
        print(actions[-1], flush=True)
        turn += 1
    time.sleep(max(0.0, deadline - time.monotonic()))
    ended = datetime.now(UTC)
    codes = [d.stop() for d in daemons]
    time.sleep(1)
    result = measure(dsn, began, ended)
    result |= {"minutes": args.minutes, "actions": actions, "stop_codes": codes,
               "state_dir": str(root)}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def measure(dsn: str, began: datetime, ended: datetime) -> dict[str, Any]:
    with psycopg.connect(dsn) as conn:
        duplicated = conn.execute(
            "SELECT count(*) FROM (SELECT task, slot FROM effects GROUP BY task, slot "
            "HAVING count(*) > 1) d").fetchone()
        effects = conn.execute("SELECT count(*) FROM effects").fetchone()
        rows = conn.execute("SELECT task, scheduled_for, status, error FROM runs").fetchall()
    by_status: dict[str, int] = {}
    reasons: dict[str, int] = {}
    slots: dict[str, set[datetime]] = {f"soak-{t}": set() for t in TASKS}
    for task, slot, status, error in rows:
        by_status[status] = by_status.get(status, 0) + 1
        if status != "succeeded":
            reason = f"{status}: {(error or '').split(';')[0][:90]}"
            reasons[reason] = reasons.get(reason, 0) + 1
        slots[task].add(slot.replace(tzinfo=UTC))
    # Whole seconds from shortly after the start to shortly before the end.
    first = began.replace(microsecond=0) + timedelta(seconds=5)
    last = ended.replace(microsecond=0) - timedelta(seconds=5)
    expected = int((last - first).total_seconds()) + 1
    missing = sum(
        1 for task in slots for k in range(expected)
        if first + timedelta(seconds=k) not in slots[task]
    )
    assert duplicated is not None and effects is not None
    return {
        "slots_expected": expected * len(TASKS),
        "duplicated_side_effects": int(duplicated[0]),
        "slots_without_a_row": missing,
        "rows_left_running": by_status.get("running", 0),
        "side_effects": int(effects[0]),
        "succeeded_rows": by_status.get("succeeded", 0),
        "rows_by_status": by_status,
        "why_not_succeeded": reasons,
    }


if __name__ == "__main__":
    main()
