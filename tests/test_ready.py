"""Data-ready gates and same-date dependencies: the pure decision, apply checks, the daemon."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from conftest import Cli, write_task
from daemon_proc import DaemonProcess, wait_for
from dbcron.daemon.gate import Step, decide
from dbcron.errors import InvalidTask
from dbcron.model import Ready
from dbcron.services.tasks import find_cycle
from dbcron.store import open_store
from dbcron.validation import parse_task

SLOT = datetime(2026, 12, 3, 7, tzinfo=UTC)
READY = Ready(query="SELECT true", every=timedelta(minutes=5), until=timedelta(hours=2))


@pytest.mark.parametrize(
    ("minutes", "holds", "expected"),
    [
        (0, True, Step("open")),
        (0, False, Step("wait", SLOT + timedelta(minutes=5))),
        (118, False, Step("wait", SLOT + timedelta(hours=2))),  # the last look is on time
        (120, False, Step("give_up")),
        (120, True, Step("open")),
        (300, False, Step("give_up")),
    ],
)
def test_decide(minutes: int, holds: bool, expected: Step) -> None:
    assert decide(READY, SLOT, SLOT + timedelta(minutes=minutes), holds) == expected


@pytest.mark.parametrize(
    ("graph", "cycle"),
    [
        ({"a": [], "b": ["a"], "c": ["a", "b"]}, []),
        ({"a": ["c"], "b": ["a"], "c": ["b"]}, ["a", "c", "b", "a"]),
        ({"a": ["b"], "b": ["a"], "x": []}, ["a", "b", "a"]),
        ({"a": ["gone"]}, []),
    ],
)
def test_find_cycle(graph: dict[str, list[str]], cycle: list[str]) -> None:
    assert find_cycle(graph) == cycle


@pytest.mark.parametrize(
    ("ready", "expected"),
    [
        ({}, "ready: give a query that must hold, after: [tasks], signal: true, or several "
         "of them"),
        ({"after": ["Load Sales"]}, "ready.after.0: String should match pattern"),
        ({"after": ["report"]}, "ready: ... "),
        ({"query": "SELECT 1", "every": "0s"}, "ready.every: must be at least 1s"),
        ({"query": "SELECT 1", "then": "wait"},
         "ready.then: Input should be 'skip', 'run' or 'notify' (got 'wait')"),
        ({"query": "SELECT 1", "unti": "2h"}, "ready.unti: unknown field 'unti'; did you mean "
         "'until'? valid fields: query, after, signal, every, until, then"),
        ({"signal": False}, "ready: give a query that must hold, after: [tasks], signal: true, "
         "or several of them"),
        ({"signal": "maybe"}, "ready.signal: Input should be a valid boolean, unable to "
         "interpret input (got 'maybe')"),
        ({"signl": True}, "ready.signl: unknown field 'signl'; did you mean 'signal'? valid "
         "fields: query, after, signal, every, until, then"),
    ],
)
def test_bad_ready_is_named(ready: dict[str, Any], expected: str) -> None:
    data = {"name": "report", "kind": "call", "call": "m:f", "schedule": {"every": "1h"},
            "ready": ready}
    with pytest.raises(InvalidTask) as info:
        parse_task(data, "t.yaml")
    (problem,) = info.value.problems
    if expected == "ready: ... ":
        assert problem == ("t.yaml: task 'report': (task): ready.after: a task cannot wait for "
                           "itself ('report')")
    else:
        assert problem.startswith(f"t.yaml: task 'report': {expected}"), problem


def test_a_call_task_cannot_have_a_ready_query() -> None:
    with pytest.raises(InvalidTask) as info:
        parse_task({"name": "x", "kind": "call", "call": "m:f", "schedule": {"every": "1h"},
                    "ready": {"query": "SELECT 1"}}, "t.yaml")
    assert info.value.problems == [
        "t.yaml: task 'x': (task): ready.query needs a source: a call task can wait only for other "
        "tasks (ready: {after: [...]})"]


def test_apply_refuses_a_cycle_and_an_unknown_task(run_cli: Cli, tmp_path: Path) -> None:
    write_task(tmp_path / "ok", "load", call="jobs:succeed")
    assert run_cli("apply", str(tmp_path / "ok")).exit_code == 0
    write_task(tmp_path / "t", "a", ready={"after": ["c"]})
    write_task(tmp_path / "t", "b", ready={"after": ["a", "load"]})
    write_task(tmp_path / "t", "c", ready={"after": ["b"]})
    result = run_cli("apply", str(tmp_path / "t"))
    assert result.exit_code == 1
    assert result.output == (
        "Error: ready.after makes a cycle, so none of these could ever run: a -> c -> b -> a\n")
    write_task(tmp_path / "u", "d", ready={"after": ["lod"]})
    result = run_cli("apply", str(tmp_path / "u"))
    assert result.output == ("Error: task 'd': ready.after: 'lod' is not a task "
                             "(known: d, load)\n")
    assert run_cli("list", "--json").output.count('"name"') == 1  # only `load` stored


def runs_of(state_dir: Path, task: str) -> list[Any]:
    store = open_store(f"sqlite:///{state_dir / 'dbcron.db'}")
    try:
        return list(reversed(store.runs.history(task=task, limit=1000)))
    finally:
        store.close()


@pytest.mark.slow
@pytest.mark.postgres
def test_gate_opens_when_the_row_appears_in_postgresql(
    run_cli: Cli, state_dir: Path, tmp_path: Path, pg_url: str
) -> None:
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE etl_log (loaded_on date, loaded_at timestamptz)"))
    path = write_task(
        tmp_path / "t", "sales", kind="report", call=None, schedule={"every": "2s"},
        source="pg", query="SELECT 1 AS one", export={"formats": ["csv"]},
        params={"today": "{{ today }}"},
        ready={"query": "SELECT count(*) > 0 FROM etl_log WHERE loaded_on = :today",
               "every": "1s", "until": "1h"},
    )
    path.write_text(path.read_text().replace("call: null\n", ""))
    never = write_task(tmp_path / "t", "never", schedule={"every": "3s"},
                       policy={"overlap": "queue"},
                       ready={"after": ["sales"], "every": "1s", "until": "1s",
                              "then": "notify"})
    assert never.exists()
    assert run_cli("apply", str(tmp_path / "t"), DBCRON_SOURCE_PG=pg_url).exit_code == 0
    proc = DaemonProcess(state_dir, DBCRON_SOURCE_PG=pg_url).start()
    try:
        waiting = wait_for(lambda: [r for r in runs_of(state_dir, "sales")
                                    if r.status == "waiting"], 15, "a waiting run")[0]
        assert waiting.error.startswith("the ready query does not hold yet; looking again at ")
        given_up = wait_for(lambda: [r for r in runs_of(state_dir, "never")
                                     if r.status == "failed"], 15, "a gate past its deadline")
        assert "waiting for sales to succeed for" in given_up[0].error
        assert given_up[0].error.endswith("(ready.then: notify)")
        time.sleep(2)
        assert [r.status for r in runs_of(state_dir, "sales")
                if r.id == waiting.id] == ["waiting"]
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO etl_log VALUES (current_date, now())"))
        done = wait_for(lambda: [r for r in runs_of(state_dir, "sales")
                                 if r.id == waiting.id and r.status == "succeeded"], 15,
                        "the gate to open")[0]
        assert done.rows == 1 and done.error is None
    finally:
        assert proc.stop() == 0
        engine.dispose()
    assert "run sales waiting: the ready query does not hold yet" in proc.log()


@pytest.mark.slow
def test_a_chain_of_three_with_fan_in_runs_in_order(
    run_cli: Cli, state_dir: Path, tmp_path: Path
) -> None:
    marker, out = tmp_path / "loaded", tmp_path / "out"
    every = {"every": "2s"}
    write_task(tmp_path / "t", "load", call="jobs:require",
               kwargs={"path": str(marker), "out": str(out / "load")}, schedule=every)
    write_task(tmp_path / "t", "transform", call="jobs:append",
               kwargs={"path": str(out / "transform")}, schedule=every,
               ready={"after": ["load"], "every": "1s"})
    write_task(tmp_path / "t", "report", call="jobs:append",
               kwargs={"path": str(out / "report")}, schedule=every,
               ready={"after": ["load", "transform"], "every": "1s"})
    out.mkdir()
    assert run_cli("apply", str(tmp_path / "t")).exit_code == 0
    proc = DaemonProcess(state_dir).start()
    try:
        wait_for(lambda: [r for r in runs_of(state_dir, "report") if r.status == "waiting"],
                 15, "the report to wait")
        assert not (out / "transform").exists() and not (out / "report").exists()
        marker.touch()
        wait_for(lambda: (out / "report").exists(), 20, "the report to run")
    finally:
        assert proc.stop() == 0

    def first_success(name: str) -> Any:
        return next(r for r in runs_of(state_dir, name) if r.status == "succeeded")

    load, transform, report = (first_success(n) for n in ("load", "transform", "report"))
    assert load.finished_at <= transform.started_at
    assert transform.finished_at <= report.started_at
    waited = [r for r in runs_of(state_dir, "report") if r.id == report.id]
    assert waited and waited[0].error is None


def test_dry_run_says_whether_the_gate_holds(run_cli: Cli, tmp_path: Path) -> None:
    write_task(tmp_path / "t", "load", call="jobs:succeed")
    write_task(tmp_path / "t", "report", call="jobs:succeed",
               schedule={"cron": "0 7 * * *", "timezone": "Europe/London"},
               ready={"after": ["load"], "every": "10m", "until": "3h", "then": "notify"})
    assert run_cli("apply", str(tmp_path / "t")).exit_code == 0
    result = run_cli("run", "report", "--dry-run", "--as-of", "2026-11-02")
    assert result.exit_code == 0
    assert result.output == (
        "ready: not yet (waiting for load to succeed for 2026-11-02); a scheduled run would "
        "wait, looking every 10m, until 2026-11-02 10:00 UTC, then notify\n"
        "dry run: would call jobs:succeed\n"
    )
