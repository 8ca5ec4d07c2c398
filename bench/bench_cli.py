"""Benchmark of `manage-tasks` start-up and store commands (issue 2's speed goals).

Each case is a fresh process, timed by hyperfine when it is installed (median
of several runs after warm-up runs), else by a subprocess loop here. The floors
(bare interpreter, `import sqlalchemy`) run in the same session, so the ratios
beside them compare like with like on a busy machine.

    .venv/bin/python bench/bench_cli.py [--runs 15] [--warmup 3] [--no-hyperfine]

Cases and goals:
    manage-tasks --help                       <= 100 ms   (floor: python -c pass)
    manage-tasks list, 10 tasks               <= 350 ms   (floor: python -c "import sqlalchemy")
    manage-tasks list, 10,000 tasks           <= 700 ms
    manage-tasks apply DIR, 1,000 task files  <= 3 s      (into an empty store)
    (plus, for information: list --json with 10,000 tasks, and apply of the same
    1,000 unchanged files again)

The 10 and 10,000 task stores are written directly with store.tasks.upsert()
(the same validated dicts `apply` would write), with one finished run per task
so `list` has a last result to show; the 1,000 files are YAML written here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from dbcron.model import Task
from dbcron.store import open_store
from dbcron.store.tables import runs

PY = sys.executable
BIN = Path(PY).parent
MANAGE = str(BIN / "manage-tasks")
ZONES = ["UTC", "Europe/London", "America/New_York", "Asia/Kolkata", "Europe/Berlin"]


# --- data ------------------------------------------------------------------------------


def task_data(i: int) -> dict[str, Any]:
    """A realistic mix: reports, cleanups, alerts and calls on varied schedules."""
    zone = ZONES[i % len(ZONES)]
    kind = ("report", "sql", "alert", "call")[i % 4]
    if i % 3 == 0:
        schedule: dict[str, Any] = {"cron": f"{i % 60} {i % 24} * * mon-fri", "timezone": zone}
    elif i % 3 == 1:
        schedule = {"cron": f"*/{5 + i % 25} * * * *", "timezone": zone}
    else:
        schedule = {"every": f"{1 + i % 90}m", "timezone": zone}
    name = f"{kind}-{i:05d}"
    base: dict[str, Any] = {
        "name": name,
        "description": f"benchmark task {i}",
        "kind": kind,
        "schedule": schedule,
        "policy": {"catchup": "latest", "grace": "1h", "timeout": "10m", "retries": i % 3},
    }
    if kind == "report":
        base |= {
            "source": "sales",
            "query": "SELECT region, SUM(amount) AS total FROM sales\n"
                     "WHERE sold_on = :day GROUP BY region ORDER BY region\n",
            "params": {"day": "{{ yesterday }}"},
            "export": {"formats": ["xlsx", "pdf"], "filename": f"{name}-{{{{ yesterday }}}}",
                       "title": "Sales by region, {{ yesterday }}"},
            "email": {"to": ["manager@example.com"], "subject": "Sales {{ yesterday }}"},
            "notify": {"on_failure": ["ops@example.com"]},
        }
    elif kind == "sql":
        base |= {
            "source": "sales",
            "statements": ["DELETE FROM menu WHERE menu_date < :today"],
            "params": {"today": "{{ today }}"},
        }
    elif kind == "alert":
        base |= {
            "source": "sales",
            "query": "SELECT floor, SUM(waste_kg) AS waste_kg FROM waste\n"
                     "WHERE logged_on >= :since GROUP BY floor HAVING SUM(waste_kg) > 50\n",
            "params": {"since": "{{ days_ago(7) }}"},
            "condition": "waste_kg > 50",
            "email": {"to": ["kitchen@example.com"], "subject": "High waste"},
        }
    else:
        base |= {"call": "jobs:succeed", "kwargs": {"n": i}}
    return base


def make_store(state_dir: Path, count: int) -> None:
    """`count` validated tasks plus one finished run each (so `list` shows a last result)."""
    state_dir.mkdir(parents=True)
    store = open_store(f"sqlite:///{state_dir / 'dbcron.db'}")
    now = datetime.now(UTC)
    store.tasks.upsert([Task.model_validate(task_data(i)).to_data() for i in range(count)], now)
    slot = now.replace(second=0, microsecond=0) - timedelta(hours=1)
    rows = [
        {"task": t, "scheduled_for": slot, "trigger": "schedule",
         "status": "succeeded" if i % 7 else "failed", "attempt": 1, "started_at": slot,
         "finished_at": slot + timedelta(seconds=2), "rows": 10, "host": "bench", "pid": 1,
         "error": None if i % 7 else "boom"}
        for i, t in enumerate(store.tasks.names())
    ]
    with store.db.write() as conn:
        conn.execute(runs.insert(), rows)
    store.close()


def make_files(directory: Path, count: int) -> None:
    directory.mkdir(parents=True)
    for i in range(count):
        data = task_data(i)
        (directory / f"{data['name']}.yaml").write_text(
            yaml.safe_dump(data, sort_keys=False), encoding="utf-8"
        )


# --- timing ----------------------------------------------------------------------------


def time_hyperfine(cmd: list[str], runs: int, warmup: int, prepare: list[str] | None,
                   out: Path) -> tuple[list[float], float]:
    """Wall times in ms, and the mean user+system CPU ms of one run."""
    args = ["hyperfine", "-N", "--style", "none", "--runs", str(runs), "--warmup", str(warmup),
            "--export-json", str(out)]
    if prepare:
        args += ["--prepare", shlex.join(prepare)]
    args.append(shlex.join(cmd))
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    result = json.loads(out.read_text())["results"][0]
    if any(code != 0 for code in result.get("exit_codes", [])):
        raise SystemExit(f"{shlex.join(cmd)} failed: exit codes {result['exit_codes']}")
    return [t * 1000 for t in result["times"]], (result["user"] + result["system"]) * 1000


def time_loop(cmd: list[str], runs: int, warmup: int, prepare: list[str] | None
              ) -> tuple[list[float], float]:
    times, cpu = [], 0.0
    for n in range(warmup + runs):
        if prepare:
            subprocess.run(prepare, check=True)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        elapsed = (time.perf_counter() - start) * 1000
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if n >= warmup:
            times.append(elapsed)
            cpu += (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return times, cpu / runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-hyperfine", action="store_true")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON here")
    opts = parser.parse_args()
    hyperfine = shutil.which("hyperfine") if not opts.no_hyperfine else None

    root = Path(tempfile.mkdtemp(prefix="dbcron-bench-cli-"))
    try:
        t0 = time.perf_counter()
        make_store(root / "s10", 10)
        make_store(root / "s10k", 10_000)
        make_files(root / "files", 1000)
        print(f"# data set up in {time.perf_counter() - t0:.1f}s under {root}", file=sys.stderr)
        apply_state = root / "s-apply"
        # an environment without DBCRON_* or a .env, so every case reads the same settings
        env_clean = {k: v for k, v in os.environ.items() if not k.startswith("DBCRON_")}
        os.environ.clear()
        os.environ.update(env_clean)
        os.environ["DBCRON_CALL_MODULES"] = "jobs"  # the files' call tasks
        os.chdir(root)

        def st(d: Path) -> list[str]:
            return [MANAGE, "--state-dir", str(d)]

        cases: list[dict[str, Any]] = [
            {"id": "floor-py", "label": "python -c pass (floor)", "cmd": [PY, "-c", "pass"]},
            {"id": "help", "label": "manage-tasks --help", "cmd": [MANAGE, "--help"],
             "goal": 100, "vs": "floor-py"},
            {"id": "floor-sa", "label": 'python -c "import sqlalchemy" (floor)',
             "cmd": [PY, "-c", "import sqlalchemy"]},
            {"id": "list10", "label": "manage-tasks list, 10 tasks",
             "cmd": [*st(root / "s10"), "list"], "goal": 350, "vs": "floor-sa"},
            {"id": "list10k", "label": "manage-tasks list, 10,000 tasks",
             "cmd": [*st(root / "s10k"), "list"], "goal": 700, "vs": "list10"},
            {"id": "list10k-json", "label": "manage-tasks list --json, 10,000 tasks",
             "cmd": [*st(root / "s10k"), "list", "--json"], "vs": "list10k"},
            {"id": "apply", "label": "manage-tasks apply DIR, 1,000 new files",
             "cmd": [*st(apply_state), "apply", str(root / "files")],
             "prepare": ["rm", "-rf", str(apply_state)], "goal": 3000, "runs": 5},
            {"id": "reapply", "label": "manage-tasks apply DIR, 1,000 unchanged files",
             "cmd": [*st(apply_state), "apply", str(root / "files")], "runs": 5, "vs": "apply"},
        ]
        # check every case works before timing it
        for case in cases:
            if case.get("prepare"):
                subprocess.run(case["prepare"], check=True)
            done = subprocess.run(case["cmd"], capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"{shlex.join(case['cmd'])}: exit {done.returncode}\n"
                                 f"{done.stderr}")
        results: dict[str, dict[str, Any]] = {}
        for case in cases:
            runs_n = case.get("runs", opts.runs)
            warm = min(opts.warmup, 1) if case.get("prepare") else opts.warmup
            if hyperfine:
                times, cpu = time_hyperfine(case["cmd"], runs_n, warm, case.get("prepare"),
                                            root / f"{case['id']}.json")
            else:
                times, cpu = time_loop(case["cmd"], runs_n, warm, case.get("prepare"))
            results[case["id"]] = {
                "label": case["label"], "median_ms": statistics.median(times),
                "min_ms": min(times), "max_ms": max(times), "runs": len(times),
                "cpu_ms": cpu, "goal_ms": case.get("goal"), "vs": case.get("vs"),
            }
            print(f"# {case['label']}: median {statistics.median(times):.0f} ms",
                  file=sys.stderr)

        print(f"Timer: {'hyperfine ' + _hyperfine_version() if hyperfine else 'subprocess loop'}"
              f"; Python {platform.python_version()}; {os.cpu_count()} CPUs; "
              f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n")
        print("| case | median ms | min ms | max ms | user+sys ms | runs | goal | result "
              "| beside (median wall) |")
        print("|---|---:|---:|---:|---:|---:|---:|---|---|")
        for r in results.values():
            goal = f"<= {r['goal_ms']:,} ms" if r["goal_ms"] else ""
            verdict = ("PASS" if r["median_ms"] <= r["goal_ms"] else "MISSED") if goal else ""
            beside = ""
            if r["vs"]:
                other = results[r["vs"]]
                beside = f"{r['median_ms'] / other['median_ms']:.2f}x {other['label']}"
            print(f"| {r['label']} | {r['median_ms']:.0f} | {r['min_ms']:.0f} | "
                  f"{r['max_ms']:.0f} | {r['cpu_ms']:.0f} | {r['runs']} | {goal} | {verdict} "
                  f"| {beside} |")
        extra = results["help"]["median_ms"] - results["floor-py"]["median_ms"]
        extra_l = results["list10"]["median_ms"] - results["floor-sa"]["median_ms"]
        print(f"\n--help costs {extra:.0f} ms above the bare interpreter; list (10 tasks) "
              f"costs {extra_l:.0f} ms above importing SQLAlchemy.")
        if opts.json:
            Path(opts.json).write_text(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _hyperfine_version() -> str:
    out = subprocess.run(["hyperfine", "--version"], capture_output=True, text=True).stdout
    return out.split()[-1] if out else "?"


if __name__ == "__main__":
    main()
