"""Queries on real SQLite, PostgreSQL and MariaDB: streaming, binding, read-only, timeouts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dbcron.jobs.query import expand_source, run_statements, stream_query
from dbcron.jobs.types import JobError
from dbcron.model import Task
from smtp_server import free_port

SLEEP = {
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
    "SELECT count(*) FROM c",
    "postgresql": "SELECT pg_sleep(5)",
    "mysql": "SELECT SLEEP(5)",
}



@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def source(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with t(id, name) holding 10 rows, on each supported server."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'source.db'}"
    elif request.param == "postgresql":
        url = str(request.getfixturevalue("pg_url"))
    else:
        url = str(request.getfixturevalue("mariadb_url"))
    return with_table(url)


def with_table(url: str) -> str:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY, name VARCHAR(40))"))
        conn.execute(
            sa.text("INSERT INTO t (id, name) VALUES (:id, :name)"),
            [{"id": i, "name": f"row {i}"} for i in range(1, 11)],
        )
    engine.dispose()
    return url


def count(url: str) -> int:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(sa.text("SELECT COUNT(*) FROM t")).scalar_one()
    engine.dispose()
    return int(n)


def as_task(fields: dict[str, Any]) -> Task:
    """A valid task around the fields a test is about: a report, or a sql task with statements."""
    kind = "sql" if "statements" in fields else "report"
    return Task.model_validate(
        {"name": "t", "kind": kind, "schedule": {"cron": "0 9 * * *"}} | fields
    )


def read(task: dict[str, Any], timeout: float = 10, batch_rows: int = 3) -> tuple[list[str], Any]:
    with stream_query(as_task(task), {"today": "2026-03-01"}, timeout,
                      batch_rows=batch_rows) as stream:
        return stream.columns, [list(map(tuple, b)) for b in stream.batches]


def test_rows_stream_in_batches_with_bound_params(source: str) -> None:
    columns, batches = read(
        {"source": source, "query": "SELECT id, name FROM t WHERE id > :low ORDER BY id",
         "params": {"low": 2}}
    )  # fmt: skip
    assert columns == ["id", "name"]
    assert [len(b) for b in batches] == [3, 3, 2]
    assert batches[0][0] == (3, "row 3") and batches[-1][-1] == (10, "row 10")


def test_a_param_is_bound_never_pasted(source: str) -> None:
    evil = "x'; DELETE FROM t; --"
    _, batches = read(
        {"source": source, "query": "SELECT id FROM t WHERE name = :name",
         "params": {"name": "{{ 'x' }}'; DELETE FROM t; --"}}
    )  # fmt: skip
    assert batches == [] or batches == [[]]
    assert count(source) == 10
    assert evil  # the rendered value is the whole string, compared as data


def test_row_limit_caps_the_rows(source: str) -> None:
    _, batches = read({"source": source, "query": "SELECT id FROM t ORDER BY id", "row_limit": 4})
    assert [r for b in batches for r in b] == [(1,), (2,), (3,), (4,)]


@pytest.mark.parametrize("sql", ["INSERT INTO t (id, name) VALUES (99, 'x')", "DELETE FROM t"])
def test_a_report_cannot_write(source: str, sql: str) -> None:
    with pytest.raises(JobError) as caught:
        read({"source": source, "query": sql})
    assert caught.value.retryable is False
    assert "a sql task may write" in str(caught.value)
    assert count(source) == 10


@pytest.mark.parametrize("sql", ["DROP TABLE t", "CREATE TABLE u (a INTEGER)"])
def test_a_report_cannot_run_ddl(source: str, sql: str) -> None:
    """MariaDB commits around DDL: a read-only transaction alone would let it through."""
    with pytest.raises(JobError):
        read({"source": source, "query": sql})
    assert count(source) == 10
    engine = sa.create_engine(source)
    assert "u" not in sa.inspect(engine).get_table_names()
    engine.dispose()


def test_row_limit_stops_reading_a_huge_mariadb_result(mariadb_url: str) -> None:
    import time

    with_table(mariadb_url)
    started = time.monotonic()
    _, batches = read({"source": mariadb_url, "query": "SELECT seq FROM seq_1_to_20000000",
                       "row_limit": 5}, batch_rows=1000)
    assert [r for b in batches for r in b] == [(1,), (2,), (3,), (4,), (5,)]
    assert time.monotonic() - started < 5  # draining 20 million rows takes ~20 s
    assert count(mariadb_url) == 10  # the pool's connection was replaced, and works


def test_postgresql_report_runs_in_a_read_only_transaction(pg_url: str) -> None:
    # DECLARE CURSOR already refuses a bare INSERT; a function that writes
    # shows the transaction itself is read-only.
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE log (x int)"))
        conn.execute(sa.text(
            "CREATE FUNCTION sneaky() RETURNS int LANGUAGE sql AS "
            "'INSERT INTO log VALUES (1) RETURNING x'"
        ))  # fmt: skip
    engine.dispose()
    with pytest.raises(JobError, match="cannot execute INSERT in a read-only transaction"):
        read({"source": pg_url, "query": "SELECT sneaky()"})


def test_the_timeout_stops_a_slow_statement(source: str) -> None:
    dialect = sa.make_url(source).get_backend_name()
    started = time.monotonic()
    with pytest.raises(JobError) as caught:
        read({"source": source, "query": SLEEP[dialect]}, timeout=1)
    assert time.monotonic() - started < 4
    assert "stopped by the task's timeout of 1s" in str(caught.value)
    assert caught.value.retryable is True
    # The pooled connection is clean again: no leftover timeout or read-only mode.
    assert run_statements(
        as_task({"source": source, "statements": ["UPDATE t SET name = 'renamed' WHERE id = 1"]}),
        {},
        10,
    ) == [1]


def test_statements_run_in_one_transaction_with_rowcounts(source: str) -> None:
    # A read-only report first: the session settings must not leak into the next task.
    read({"source": source, "query": "SELECT id FROM t"})
    task = {
        "source": source,
        "statements": ["DELETE FROM t WHERE id <= :cut", "UPDATE t SET name = 'kept'", " "],
        "params": {"cut": 3},
    }
    assert run_statements(as_task(task), {}, 10) == [3, 7]
    assert count(source) == 7


def test_max_rows_affected_rolls_everything_back(source: str) -> None:
    task = {
        "source": source,
        "statements": ["DELETE FROM t WHERE id <= 3", "DELETE FROM t WHERE id <= 6"],
        "max_rows_affected": 5,
    }
    with pytest.raises(JobError) as caught:
        run_statements(as_task(task), {}, 10)
    assert str(caught.value) == (
        "statement 2 brought the rows affected to 6, over max_rows_affected 5: "
        "rolled back, nothing was changed"
    )
    assert caught.value.retryable is False
    assert count(source) == 10


def test_mariadb_refuses_a_rollback_it_cannot_keep(mariadb_url: str) -> None:
    with_table(mariadb_url)
    task = {"source": mariadb_url, "statements": ["DELETE FROM t WHERE id < 3",
                                                  "OPTIMIZE TABLE t"]}
    with pytest.raises(JobError) as caught:
        run_statements(as_task(task), {}, 10, commit=False)
    assert str(caught.value) == (
        "statement 2 (OPTIMIZE) commits implicitly on MariaDB/MySQL, so a dry run cannot roll "
        "the statements back; only INSERT, UPDATE, DELETE, REPLACE, SELECT, WITH can be "
        "rolled back"
    )
    assert count(mariadb_url) == 10


def test_dry_run_statements_roll_back(source: str) -> None:
    task = {"source": source, "statements": ["DELETE FROM t WHERE id > 5"]}
    assert run_statements(as_task(task), {}, 10, commit=False) == [5]
    assert count(source) == 10


def test_missing_variable_is_named_and_not_retryable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DBCRON_SOURCE_TEST_NO_SUCH", raising=False)
    with pytest.raises(JobError) as caught:
        read({"source": "${DBCRON_SOURCE_TEST_NO_SUCH}", "query": "SELECT 1"})
    assert "DBCRON_SOURCE_TEST_NO_SUCH" in str(caught.value)
    assert caught.value.retryable is False


def test_variables_expand_at_run_time() -> None:
    env = {"HOST": "db.example", "PW": "s3cret", "DBCRON_ALLOWED_SOURCE_VARS": "HOST,P*"}
    assert expand_source("postgresql://u:${PW}@${HOST}/x", env) == "postgresql://u:s3cret@db.example/x"
    assert expand_source("sqlite:///plain.db", {}) == "sqlite:///plain.db"


PASSWORD = "Sup3r-s3cret"


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+psycopg://app:{PASSWORD}@127.0.0.1:{free_port()}/sales",
        f"mysql+pymysql://app:{PASSWORD}@127.0.0.1:{free_port()}/sales",
        f"nosuchdb://app:{PASSWORD}@127.0.0.1/sales",
    ],
)
def test_passwords_never_reach_the_error(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBCRON_SOURCE_TEST", url)
    with pytest.raises(JobError) as caught:
        read({"source": "${DBCRON_SOURCE_TEST}", "query": "SELECT 1"})
    assert PASSWORD not in str(caught.value)
    assert "app:***@" in str(caught.value) or "127.0.0.1" in str(caught.value)


def test_wrong_mariadb_password_is_masked(mariadb_url: str) -> None:
    url = sa.make_url(mariadb_url).set(password=PASSWORD)
    with pytest.raises(JobError) as caught:
        read({"source": url.render_as_string(hide_password=False), "query": "SELECT 1"})
    assert "Access denied" in str(caught.value)
    assert PASSWORD not in str(caught.value)
