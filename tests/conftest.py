"""Shared fixtures: temporary stores on SQLite and the real PostgreSQL, a CLI runner.

Tests that need a server skip with the reason when it is not reachable, except
under CI=true, where a missing server is a failure: CI must run everything.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from dbcron.cli import cli
from dbcron.settings import Settings
from dbcron.store import Store, open_store

pytest_plugins = ["smtp_server", "webhook_server"]

PG_HOST, PG_PORT = "127.0.0.1", 5432
MARIADB_HOST, MARIADB_PORT = "127.0.0.1", 3306
IN_CI = os.environ.get("CI") == "true"
CALL_MODULES = "tests.jobs,jobs"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def need_server(name: str, host: str, port: int) -> None:
    if _reachable(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if IN_CI:
        pytest.fail(f"{message}, and CI=true requires it")
    pytest.skip(message)


def need_tool(command: str, package: str) -> str:
    """The path of an installed program a test drives, else skip (fail under CI)."""
    path = shutil.which(command)
    if path:
        return path
    message = f"{command} is not installed (Debian package {package})"
    if IN_CI:
        pytest.fail(f"{message}, and CI=true requires it")
    pytest.skip(message)


def libreoffice(tmp_path: Path, path: Path, *options: str, utf8_locale: bool = False) -> Path:
    """Convert `path` with headless LibreOffice as a user would open it; returns the output
    directory. A profile of its own, so tests never share (or wait on) one."""
    import subprocess

    soffice = need_tool("soffice", "libreoffice-calc-nogui")
    out = tmp_path / "out"
    env = {**os.environ, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"} if utf8_locale else None
    subprocess.run(
        [soffice, f"-env:UserInstallation=file://{tmp_path / 'profile'}", "--headless",
         *options, "--outdir", str(out), str(path)],
        check=True, capture_output=True, timeout=180, env=env,
    )
    return out


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    need_server("PostgreSQL", PG_HOST, PG_PORT)
    import psycopg

    name = "dbcron_test_" + uuid.uuid4().hex[:10]
    admin = f"host={PG_HOST} port={PG_PORT} user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """A fresh MariaDB database for one test, dropped afterwards."""
    need_server("MariaDB", MARIADB_HOST, MARIADB_PORT)
    import pymysql

    name = "dbcron_test_" + uuid.uuid4().hex[:10]
    conn = pymysql.connect(host=MARIADB_HOST, port=MARIADB_PORT, user="root", password="")
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    yield f"mysql+pymysql://root@{MARIADB_HOST}:{MARIADB_PORT}/{name}?charset=utf8mb4"
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    conn.close()


@pytest.fixture(autouse=True)
def _fresh_engines() -> Iterator[None]:
    """Source engines are cached per URL; the test databases are dropped after each test,
    so no pooled connection may outlive one."""
    yield
    from dbcron.jobs.query import dispose_engines

    dispose_engines()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The contract suite runs every store test on both backends."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = open_store(store_url)
    yield s
    s.close()


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working directory and state dir of its own, so no .env or var/ of the checkout leaks in.

    The environment is restored afterwards: an in-process CLI loads the test's .env into it.
    """
    saved = dict(os.environ)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for key in list(os.environ):
        if key.startswith("DBCRON_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("DBCRON_STATE_DIR", str(tmp_path / "state"))
    # The tests' call tasks (tests.jobs here, jobs in the daemon subprocesses).
    monkeypatch.setenv("DBCRON_CALL_MODULES", CALL_MODULES)
    yield tmp_path / "state"
    os.environ.clear()
    os.environ.update(saved)


class Cli:
    """Runs manage-tasks in-process with CliRunner against the test's state dir."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None, **env: str) -> Result:
        return self.runner.invoke(cli, list(args), input=input, env=env or None,
                                  catch_exceptions=False)


def reopened_from(old: Store, version: int, *undo: str) -> Store:
    """Make an open store one of schema `version` (run the `undo` SQL that takes the later
    steps back, set its version), close it and open it again: the upgrade under test."""
    from sqlalchemy import text

    from dbcron.store.migrations import LATEST, current_version

    with old.db.write() as conn:
        for statement in undo:
            conn.execute(text(statement))
        conn.execute(text(f"UPDATE store_state SET schema_version = {version}"))
    old.close()
    upgraded = open_store(old.db.url)
    with upgraded.db.read() as conn:
        assert current_version(conn) == LATEST
    return upgraded


@pytest.fixture
def run_cli(state_dir: Path) -> Cli:
    return Cli()


def make_settings(tmp_path: Path, server: Any = None, **over: Any) -> Settings:
    """Settings for job tests: everything under tmp_path, mail to `server` (an
    SmtpTestServer) or, without one, to the outbox."""
    values: dict[str, Any] = {
        "state_dir": tmp_path,
        "store": f"sqlite:///{tmp_path / 'store.db'}",
        "output_dir": tmp_path / "output",
        "outbox_dir": tmp_path / "outbox",
        "smtp_from": "dbcron@example.com",
        "smtp_timeout": 5.0,
        "call_modules": CALL_MODULES,
    }
    if server is not None:
        values.update(smtp_host=server.host, smtp_port=server.port)
    values.update(over)
    return Settings(**values)


@pytest.fixture
def settings(tmp_path: Path, smtp_server: Any) -> Settings:
    """Job settings delivering to the test's real SMTP server."""
    return make_settings(tmp_path, smtp_server)


def write_task(directory: Path, name: str, **overrides: Any) -> Path:
    """A small valid `call` task file; overrides replace top-level fields."""
    import yaml

    data: dict[str, Any] = {
        "name": name,
        "kind": "call",
        "schedule": {"cron": "0 9 * * *"},
        "call": "tests.jobs:succeed",
    }
    data.update(overrides)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
