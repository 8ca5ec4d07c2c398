"""Trust boundaries (issue 10): a task reaches only what the operator gave it.

Each test here reproduces a finding of the security review; docs/security.md
maps threats to these test names.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from conftest import Cli, write_task
from dbcron.jobs.query import dispose_engines, stream_query
from dbcron.jobs.types import JobError
from dbcron.model import Task
from dbcron.settings import load_settings
from dbcron.store import open_store

SMTP_PASSWORD = "Smtp-Pa55-word"


def as_task(fields: dict[str, Any]) -> Task:
    """A valid task around the fields a test is about: a report, or a sql task."""
    kind = "sql" if "statements" in fields else "report"
    return Task.model_validate({"name": "t", "kind": kind, "schedule": {"every": "1h"}} | fields)


def read(task: dict[str, Any]) -> list[Any]:
    with stream_query(as_task(task), {}, 10) as stream:
        rows = [row for batch in stream.batches for row in batch]
    dispose_engines()
    return rows


def sqlite_db(tmp_path: Path) -> str:
    import sqlite3

    path = tmp_path / "sales.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS sales (amount INTEGER)")
        conn.execute("INSERT INTO sales VALUES (42)")
    return f"sqlite:///{path}"


def report_file(directory: Path, source: str, name: str = "rep") -> Path:
    return write_task(directory, name, kind="report", call=None, source=source,
                      query="SELECT 1")


def without_call(path: Path) -> Path:
    path.write_text(path.read_text().replace("call: null\n", ""))
    return path


# --- 1. sources: only what the operator configured ---------------------------------


def test_a_run_cannot_read_the_smtp_password_through_a_sqlite_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DBCRON_SMTP_PASSWORD", SMTP_PASSWORD)
    with pytest.raises(JobError) as caught:
        read({"source": "sqlite:////nonexistent/${DBCRON_SMTP_PASSWORD}.db",
              "query": "SELECT 1"})
    assert SMTP_PASSWORD not in str(caught.value)
    assert str(caught.value) == (
        "${DBCRON_SMTP_PASSWORD} is one of dbcron's own settings, which tasks may not read; "
        "define the source as DBCRON_SOURCE_<NAME>=<url> and write the name"
    )
    assert caught.value.retryable is False


def test_a_run_cannot_mail_the_smtp_password_as_application_name(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The review's reproducer: the password came back as a query result.
    monkeypatch.setenv("DBCRON_SMTP_PASSWORD", SMTP_PASSWORD)
    monkeypatch.setenv("HOME", "/root")
    for var in ("DBCRON_SMTP_PASSWORD", "HOME"):
        with pytest.raises(JobError, match=r"may not read|not an allowed source variable"):
            read({"source": pg_url + "?application_name=${" + var + "}",
                  "query": "SELECT current_setting('application_name')"})


def test_a_named_source_reads_its_dbcron_source_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBCRON_SOURCE_SALES", sqlite_db(tmp_path))
    assert read({"source": "sales", "query": "SELECT amount FROM sales"}) == [(42,)]


def test_an_allowlisted_variable_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEGACY_SALES_URL", sqlite_db(tmp_path))
    task = {"source": "${LEGACY_SALES_URL}", "query": "SELECT amount FROM sales"}
    with pytest.raises(JobError, match="DBCRON_ALLOWED_SOURCE_VARS=LEGACY_SALES_URL"):
        read(task)
    monkeypatch.setenv("DBCRON_ALLOWED_SOURCE_VARS", "LEGACY_*")
    assert read(task) == [(42,)]


def test_validate_refuses_a_variable_the_operator_did_not_allow(
    run_cli: Cli, tmp_path: Path
) -> None:
    path = without_call(report_file(tmp_path / "t", "${SALES_DB_URL}"))
    result = run_cli("validate", str(path))
    assert (result.exit_code, result.stderr) == (1, (
        f"Error: {path}: task 'rep': source: ${{SALES_DB_URL}} is not an allowed source "
        "variable; the operator can move the URL to DBCRON_SOURCE_SALES and the task says "
        "'source: sales', or allow the variable with DBCRON_ALLOWED_SOURCE_VARS=SALES_DB_URL "
        "in the daemon's environment\n"
    ))
    Path(".env").write_text("DBCRON_ALLOWED_SOURCE_VARS=SALES_DB_URL\nSALES_DB_URL=sqlite://\n")
    result = run_cli("validate", str(path))
    assert (result.exit_code, result.stdout, result.stderr) == (0, "1 task(s) valid: rep\n", "")


def test_apply_refuses_dbcron_settings_and_keeps_the_store(
    run_cli: Cli, tmp_path: Path, state_dir: Path
) -> None:
    path = without_call(report_file(tmp_path / "t", "sqlite:///x.db?p=${DBCRON_SMTP_PASSWORD}"))
    result = run_cli("apply", str(path), DBCRON_ALLOWED_SOURCE_VARS="X")
    assert (result.exit_code, result.stderr) == (1, (
        f"Error: {path}: task 'rep': source: ${{DBCRON_SMTP_PASSWORD}} is one of dbcron's own "
        "settings, which tasks may not read; define the source as DBCRON_SOURCE_<NAME>=<url> "
        "and write the name\n"
    ))
    assert not (state_dir / "dbcron.db").exists()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("*", "'*' is not a variable name or a prefix ending in '*'"),
        ("SALES URL", "'SALES URL' is not a variable name or a prefix ending in '*'"),
        ("DBCRON_SMTP_*", "'DBCRON_SMTP_*' would let tasks read dbcron's own settings"),
    ],
)
def test_the_allowlist_setting_is_validated(value: str, message: str) -> None:
    from dbcron.errors import SettingsError

    with pytest.raises(SettingsError, match=re.escape(f"DBCRON_ALLOWED_SOURCE_VARS: {message}")):
        load_settings({"DBCRON_ALLOWED_SOURCE_VARS": value}, cwd=Path("/nonexistent"))


def test_named_sources_are_not_unknown_settings() -> None:
    settings = load_settings(
        {"DBCRON_SOURCE_SALES": "sqlite://", "DBCRON_ALLOWED_SOURCE_VARS": "A_URL, B_*"},
        cwd=Path("/nonexistent"),
    )
    assert settings.source_allowlist == ("A_URL", "B_*")


# --- 3. literal passwords never enter the store -------------------------------------------

LITERAL = "postgresql://bob:hunter2@db.example/sales"
MOVE_IT = (
    "the URL holds a password, which would be stored in clear; put the URL in the daemon's "
    "environment (.env or /etc/dbcron/dbcron.env) as DBCRON_SOURCE_<NAME>=<url> and write "
    "'source: <name>' (lower case), e.g. DBCRON_SOURCE_SALES and 'source: sales'"
)


def test_add_refuses_a_literal_password(run_cli: Cli, state_dir: Path) -> None:
    result = run_cli("add", "--name", "rep", "--kind", "report", "--cron", "0 9 * * *",
                     "--source", LITERAL, "--query", "SELECT 1")
    assert (result.exit_code, result.stderr) == (
        1, f"Error: add: task 'rep': source: {MOVE_IT}\n"
    )
    assert "hunter2" not in result.output
    store = open_store(f"sqlite:///{state_dir / 'dbcron.db'}")
    assert store.tasks.names() == []
    store.close()


@pytest.mark.parametrize(
    "source",
    [LITERAL, "mssql+pyodbc:///?odbc_connect=DSN%3Dx&password=hunter2",
     "postgresql://db.example/sales?user=bob&password=hunter2",
     "postgresql://bob:${PW}x@db.example/sales"],
)
def test_yaml_with_a_literal_password_is_refused(run_cli: Cli, tmp_path: Path,
                                                 source: str) -> None:
    path = without_call(report_file(tmp_path / "t", source))
    result = run_cli("apply", str(path), DBCRON_ALLOWED_SOURCE_VARS="PW")
    assert (result.exit_code, result.stderr) == (
        1, f"Error: {path}: task 'rep': source: {MOVE_IT}\n"
    )


def test_a_task_stored_with_a_literal_password_still_loads() -> None:
    # Refused where definitions come in, not by the model the daemon loads the
    # store with: an old task keeps its schedule instead of vanishing from it.
    from dbcron.model import Task

    data = {"name": "old", "kind": "report", "schedule": {"every": "1h"}, "source": LITERAL,
            "query": "SELECT 1"}
    assert Task.model_validate(data).source == LITERAL


def test_a_password_from_an_allowed_variable_is_fine(run_cli: Cli, tmp_path: Path) -> None:
    path = without_call(report_file(tmp_path / "t", "postgresql://bob:${PW}@db.example/sales"))
    result = run_cli("validate", str(path), DBCRON_ALLOWED_SOURCE_VARS="PW", PW="x")
    assert (result.exit_code, result.stdout) == (0, "1 task(s) valid: rep\n")


# --- 2. masking by structure, at every exit ------------------------------------------------

DICT_PW = "Hunter2-dict"
URL_PW = "Hunter2-url"


def test_an_unescaped_password_is_not_quoted_by_the_url_parser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DBCRON_SOURCE_RAW", "postgresql+psycopg://u:RawPw@ss:w0rd@127.0.0.1/db")
    with pytest.raises(JobError) as caught:
        read({"source": "raw", "query": "SELECT 1"})
    assert "w0rd" not in str(caught.value) and "RawPw" not in str(caught.value)
    assert str(caught.value) == (
        "cannot parse the source URL postgresql+psycopg://u:***@127.0.0.1/db: characters such "
        "as @ : / # in the user or password must be URL-encoded (%40 %3A %2F %23)"
    )


def test_a_common_word_password_does_not_garble_the_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from smtp_server import free_port

    url = f"postgresql+psycopg://app:postgres@127.0.0.1:{free_port()}/sales"
    monkeypatch.setenv("DBCRON_SOURCE_WORD", url)
    with pytest.raises(JobError) as caught:
        read({"source": "word", "query": "SELECT 1"})
    assert "postgres@" not in str(caught.value) and ":postgres" not in str(caught.value)
    assert str(caught.value).startswith("query failed on postgresql 127.0.0.1:")


def test_the_smtp_auth_blob_a_server_echoes_is_masked(run_cli: Cli) -> None:
    import base64

    from smtp_server import SmtpTestServer

    password = "Wr0ng-Smtp-Pass"
    blob = base64.b64encode(f"\0reporter\0{password}".encode()).decode()
    with SmtpTestServer(auth=("reporter", "right"), echo_auth=True) as server:
        result = run_cli("test-email", "boss@example.com", DBCRON_SMTP_HOST=server.host,
                         DBCRON_SMTP_PORT=str(server.port), DBCRON_SMTP_USER="reporter",
                         DBCRON_SMTP_PASSWORD=password)
    assert result.exit_code == 1
    assert "535 5.7.8 Authentication credentials invalid: ***" in result.stderr
    assert blob not in result.output and password not in result.output


def test_every_output_masks_what_a_call_task_leaks(
    run_cli: Cli, tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    # The run's worker process is spawned with this sys.path: it imports tests.jobs.
    monkeypatch.syspath_prepend(str(Path(__file__).parent.parent))
    monkeypatch.setenv("DBCRON_SOURCE_LEAKY", f"postgresql://app:{URL_PW}@db.example/app")
    monkeypatch.setenv("LEAK_DICT_PASSWORD", DICT_PW)
    directory = tmp_path / "t"
    write_task(directory, "leaky", call="tests.jobs:leak", args=["DBCRON_SOURCE_LEAKY"])
    write_task(directory, "failing", call="tests.jobs:fail_with_config",
               args=["LEAK_DICT_PASSWORD"], notify={"on_failure": ["ops@example.com"]})
    assert run_cli("apply", str(directory)).exit_code == 0
    outputs = [run_cli("run", "leaky", "--local"), run_cli("run", "failing", "--local"),
               run_cli("run", "failing", "--local", "--json")]
    assert [r.exit_code for r in outputs] == [0, 1, 1]
    assert "bad config {'host': 'db', 'password': '***'}" in outputs[1].stderr
    outputs += [run_cli("history"), run_cli("history", "--json"), run_cli("show", "leaky"),
                run_cli("show", "leaky", "--json"), run_cli("show", "failing", "--json")]
    history = json.loads(outputs[4].stdout)
    assert {r["task"] for r in history} == {"leaky", "failing"}
    leaky = next(r for r in history if r["task"] == "leaky")
    assert leaky.get("result", {"settings": {"password": "***"}})["settings"] == {
        "password": "***"
    }
    texts = [r.output for r in outputs]
    texts += [p.read_text(errors="replace") for p in (state_dir / "outbox").glob("*.eml")]
    assert len(texts) == 8 + 2  # one failure mail per failed run
    texts.append((state_dir / "dbcron.db").read_bytes().decode("latin-1"))
    for text in texts:
        assert URL_PW not in text and DICT_PW not in text and "Hunter2-ret" not in text


# --- 6. bad input that hurts ------------------------------------------------------------------


def call_file(directory: Path, text: str, name: str = "t") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(f"name: {name}\nkind: call\ncall: tests.jobs:succeed\n" + text)
    return path


def test_a_yaml_alias_bomb_is_refused(run_cli: Cli, tmp_path: Path) -> None:
    # 8**6 = 262,144 values from 300 bytes (the review's 612 bytes made billions).
    levels = ["  a: &a [x, x, x, x, x, x, x, x]"] + [
        f"  {n}: &{n} [{', '.join(['*' + p] * 8)}]" for p, n in zip("abcde", "bcdef", strict=True)
    ]
    path = call_file(tmp_path / "t", "schedule: {every: 1h}\nkwargs:\n" + "\n".join(levels) + "\n")
    result = run_cli("validate", str(path))
    assert (result.exit_code, result.stderr) == (1, (
        f"Error: {path}: invalid YAML: aliases (*name) expand to more than 100,000 extra "
        "values; write the values out or use fewer nested aliases\n"
    ))


def test_a_duplicate_key_is_refused_naming_its_lines(run_cli: Cli, tmp_path: Path) -> None:
    path = call_file(tmp_path / "t", "schedule: {every: 1h}\nkind: sql\n")
    result = run_cli("validate", str(path))
    assert (result.exit_code, result.stderr) == (1, (
        f"Error: {path}: line 5, column 1: invalid YAML: duplicate key 'kind' (first on "
        "line 2); a key may appear once in a mapping\n"
    ))


@pytest.mark.parametrize(
    "template",
    ['{{ "x" * 2000000 }}',
     "{% for i in range(2000) %}{% for j in range(1000) %}x{% endfor %}{% endfor %}"],
)
def test_template_output_is_capped(template: str) -> None:
    from dbcron.errors import TemplateError
    from dbcron.templating import render

    with pytest.raises(TemplateError, match=r"exceed"):
        render(template, {}, "subject")


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("{every: 99999999999999999999d}", "schedule.every: bad duration "
         "'99999999999999999999d': at most 36500d (100 years)"),
        ("{every: 1h}\npolicy: {timeout: 1.0e+300}", "policy.timeout: bad duration 1e+300: at "
         "most 36500d (100 years)"),
        ("{at: 1900-01-01T09:00}", "schedule.at: 1900-01-01 is before 2000: the task would "
         "never run; give the date and time it should run, e.g. 2026-12-01T09:00"),
    ],
)
def test_impossible_times_are_refused_clearly(
    run_cli: Cli, tmp_path: Path, schedule: str, message: str
) -> None:
    path = call_file(tmp_path / "t", f"schedule: {schedule}\n")
    result = run_cli("validate", str(path))
    assert (result.exit_code, result.stderr) == (1, f"Error: {path}: task 't': {message}\n")


def test_an_encoded_word_address_is_refused_at_validate(run_cli: Cli, tmp_path: Path) -> None:
    path = without_call(write_task(
        tmp_path / "t", "rep", kind="report", call=None, source="sales", query="SELECT 1",
        email={"to": ["=?utf-8?q?boss?=@example.com"]}))
    result = run_cli("validate", str(path))
    assert (result.exit_code, result.stderr) == (1, (
        f"Error: {path}: task 'rep': email.to.0: '=?utf-8?q?boss?=@example.com' holds an "
        "encoded-word (=?charset?q?...?=), which an address cannot hold; write the plain "
        "address, e.g. boss@example.com\n"
    ))


def test_a_dry_run_is_stopped_at_the_task_timeout(tmp_path: Path) -> None:
    import time
    from datetime import UTC, datetime

    from conftest import make_settings
    from dbcron.services.dry_run import dry_run_task

    # No output, 10**10 iterations: only a timeout that kills the run stops it.
    spin = "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"
    task = Task.model_validate({"name": "spin", "kind": "report", "schedule": {"every": "1h"},
                                "source": sqlite_db(tmp_path), "query": "SELECT 1 AS one",
                                "export": {"formats": ["csv"], "filename": spin}})
    started = time.monotonic()
    result = dry_run_task(task, make_settings(tmp_path), datetime.now(UTC), tmp_path / "out",
                          (), timeout=2)
    assert time.monotonic() - started < 15
    assert (result.status, result.error) == (
        "failed", "the dry run was stopped at the task's timeout (2s)"
    )


# --- 7. CSV formula injection ---------------------------------------------------------------


@pytest.mark.parametrize(("formulas", "cell"), [(None, "'=1+1"), ("keep", "=1+1")])
def test_a_mailed_csv_carries_no_formula_unless_kept(
    tmp_path: Path, formulas: str | None, cell: str
) -> None:
    import sqlite3
    from datetime import UTC, datetime
    from email import policy
    from email.parser import BytesParser

    from conftest import make_settings
    from dbcron.jobs import execute
    from dbcron.jobs.types import JobRequest

    db = tmp_path / "notes.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.execute("INSERT INTO notes VALUES ('=1+1')")
    export: dict[str, Any] = {"formats": ["csv"], "filename": "notes"}
    if formulas:
        export["csv"] = {"formulas": formulas}
    task = Task.model_validate({
        "name": "notes", "kind": "report", "schedule": {"every": "1h"},
        "source": f"sqlite:///{db}", "query": "SELECT body FROM notes", "export": export,
        "email": {"to": ["boss@example.com"]},
    })
    settings = make_settings(tmp_path)
    result = execute(JobRequest(task=task, slot=datetime.now(UTC), settings=settings, timeout=10))
    assert result.status == "succeeded", result.error
    [eml] = (tmp_path / "outbox").glob("*.eml")
    msg = BytesParser(policy=policy.default).parse(eml.open("rb"))
    [part] = msg.iter_attachments()
    assert part.get_payload(decode=True).decode("utf-8-sig").splitlines() == ["body", cell]


# --- 8. file modes, whatever the umask ----------------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_reports_and_mails_are_never_more_open_than_0640(tmp_path: Path, umask: int) -> None:
    import os
    import stat
    from datetime import UTC, datetime

    from conftest import make_settings
    from dbcron.jobs import execute
    from dbcron.jobs.types import JobRequest

    task = Task.model_validate({
        "name": "modes", "kind": "report", "schedule": {"every": "1h"},
        "source": sqlite_db(tmp_path), "query": "SELECT amount FROM sales",
        "export": {"formats": ["csv", "xlsx"], "filename": "modes"},
        "email": {"to": ["boss@example.com"]},
    })
    old = os.umask(umask)
    try:
        result = execute(JobRequest(task=task, slot=datetime.now(UTC),
                                    settings=make_settings(tmp_path), timeout=10))
    finally:
        os.umask(old)
    assert result.status == "succeeded", result.error
    files = [*(tmp_path / "output" / "modes").iterdir(), *(tmp_path / "outbox").iterdir()]
    assert len(files) == 3
    assert {f.suffix: stat.S_IMODE(f.stat().st_mode) for f in files} == {
        ".csv": 0o640 & ~umask, ".xlsx": 0o640 & ~umask, ".eml": 0o640 & ~umask,
    }
    assert stat.S_IMODE((tmp_path / "outbox").stat().st_mode) == 0o750 & ~umask


def test_import_narrows_a_world_readable_env_file(run_cli: Cli, tmp_path: Path) -> None:
    import json
    import os
    import stat

    from test_import_legacy import LEGACY

    source = tmp_path / "tasks.json"
    source.write_text(json.dumps(LEGACY[2:]))
    env_file = tmp_path / "shared.env"
    env_file.write_text("# settings\n")
    env_file.chmod(0o644)
    result = run_cli("import", str(source), "--env-file", str(env_file))
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == (
        f"warning: {env_file} was open to other users; it now holds passwords, so its mode is "
        "now 0640 at most"
    )
    assert stat.S_IMODE(os.stat(env_file).st_mode) == 0o640


needs_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="acting as another local user needs root",
)


@needs_root
def test_another_user_cannot_hold_the_daemon_lock(tmp_path: Path) -> None:
    import subprocess
    import tempfile

    from dbcron.daemon.lock_file import hold

    if not Path("/usr/bin/python3").exists():
        pytest.skip("no /usr/bin/python3 to run as another user")

    shared = Path(tempfile.mkdtemp(dir="/tmp"))  # a directory others may enter
    try:
        shared.chmod(0o755)
        pidfile = shared / "dbcron.pid"
        os.close(hold(pidfile, "test"))
        grab = ("import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); "
                "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)")
        # The system interpreter: the test's own may sit where nobody cannot reach.
        proc = subprocess.run(["/usr/bin/python3", "-c", grab, str(pidfile)], user="nobody",
                              cwd="/", capture_output=True, text=True, timeout=30)
        assert proc.returncode == 1 and "PermissionError" in proc.stderr, proc.stderr
    finally:
        for child in shared.iterdir():
            child.unlink()
        shared.rmdir()


@needs_root
def test_a_lock_file_made_by_another_user_is_refused(tmp_path: Path) -> None:
    from dbcron.daemon.lock_file import hold
    from dbcron.errors import DaemonError

    pidfile = tmp_path / "dbcron.pid"
    pidfile.touch()
    os.chown(pidfile, 65534, 65534)
    with pytest.raises(DaemonError, match=r"belongs to uid 65534, not to this user \(uid 0\)"):
        hold(pidfile, "test")


# --- 4. read-only reports have no side effects --------------------------------------------


@pytest.mark.parametrize(
    "query",
    ["PRAGMA journal_mode=WAL", "ATTACH DATABASE '{dir}/attached.db' AS x",
     "VACUUM INTO '{dir}/copy.db'", "SELECT * FROM pragma_journal_mode('wal')"],
)
def test_a_sqlite_report_has_no_side_effects(tmp_path: Path, query: str) -> None:
    import sqlite3

    url = sqlite_db(tmp_path)
    with pytest.raises(JobError, match=r"report and alert queries run read-only"):
        read({"source": url, "query": query.format(dir=tmp_path)})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sales.db"]
    with sqlite3.connect(tmp_path / "sales.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    # The connection goes back to the pool without the authorizer: a sql task writes.
    from dbcron.jobs.query import run_statements

    task = as_task({"source": url, "statements": ["DELETE FROM sales"]})
    assert run_statements(task, {}, 10) == [1]
    dispose_engines()


def test_test_source_warns_when_the_postgresql_login_can_write(pg_url: str, tmp_path: Path) -> None:
    import uuid

    import psycopg
    import sqlalchemy as sa

    from conftest import make_settings
    from dbcron.services.checks import check_source

    settings = make_settings(tmp_path)
    assert check_source(pg_url, settings).splitlines()[1] == (
        "warning: this login can change the server (superuser); report and alert tasks are "
        "only as read-only as their login: give them a role that can only read "
        "(docs/security.md)"
    )
    url = sa.make_url(pg_url)
    role = "dbcron_ro_" + uuid.uuid4().hex[:8]
    admin = f"host={url.host} port={url.port} user=postgres dbname={url.database}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("CREATE TABLE sales (amount integer)")
        # The role docs/security.md tells operators to create.
        for statement in (
            f"CREATE ROLE {role} LOGIN", f'GRANT CONNECT ON DATABASE "{url.database}" TO {role}',
            f"GRANT USAGE ON SCHEMA public TO {role}",
            f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}",
            "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
        ):
            conn.execute(statement)
    try:
        reader = url.set(username=role).render_as_string(hide_password=False)
        report = check_source(reader, settings)
        assert "warning" not in report, report
        # The review's side effects, refused to that role (a read-only transaction alone
        # let a superuser do them all).
        with psycopg.connect(admin, autocommit=True) as other:
            pid = other.info.backend_pid
            for query in (f"SELECT pg_terminate_backend({pid})",
                          "SELECT pg_read_file('PG_VERSION')",
                          f"SELECT lo_export(0, '{tmp_path}/lo.bin')"):
                with pytest.raises(JobError, match="InsufficientPrivilege"):
                    read({"source": reader, "query": query})
            assert other.execute("SELECT 1").fetchone() == (1,)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"GRANT INSERT ON sales TO {role}")
        assert check_source(reader, settings).splitlines()[1].startswith(
            "warning: this login can change the server (INSERT/UPDATE/DELETE/TRUNCATE on tables)"
        )
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


def test_test_source_warns_when_the_mariadb_login_can_write(
    mariadb_url: str, tmp_path: Path
) -> None:
    import uuid

    import pymysql
    import sqlalchemy as sa

    from conftest import make_settings
    from dbcron.services.checks import check_source

    settings = make_settings(tmp_path)
    assert "warning: this login can change the server (ALL PRIVILEGES on *.*" in check_source(
        mariadb_url, settings)
    url = sa.make_url(mariadb_url)
    user = "dbcron_ro_" + uuid.uuid4().hex[:8]
    conn = pymysql.connect(host=url.host, port=url.port, user="root", password="",
                           autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE USER '{user}'@'%'")
            cur.execute(f"GRANT SELECT ON `{url.database}`.* TO '{user}'@'%'")
        reader = url.set(username=user).render_as_string(hide_password=False)
        report = check_source(reader, settings)
        assert "warning" not in report, report
        for query in (f"SELECT 1 INTO OUTFILE '{tmp_path}/out.txt'",
                      f"KILL {conn.thread_id()}"):
            with pytest.raises(JobError, match=r"denied|not owner|privilege"):
                read({"source": reader, "query": query})
        assert conn.open and not (tmp_path / "out.txt").exists()
        with conn.cursor() as cur:
            cur.execute(f"GRANT FILE ON *.* TO '{user}'@'%'")
        assert "(FILE on *.*)" in check_source(reader, settings)
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")
        conn.close()


# --- 5. call runs only what the operator allowed ---------------------------------------------


def test_validate_refuses_a_call_outside_the_allowed_modules(run_cli: Cli, tmp_path: Path) -> None:
    path = write_task(tmp_path / "t", "shell", call="os:system", args=["id"])
    result = run_cli("validate", str(path))
    assert (result.exit_code, result.stderr) == (1, (
        f"Error: {path}: task 'shell': call: os is not in DBCRON_CALL_MODULES (it allows only "
        "tests.jobs, jobs); the operator allows it by adding os to DBCRON_CALL_MODULES in the "
        "daemon's environment\n"
    ))
    near = write_task(tmp_path / "u", "near", call="tests.jobsx:run")
    assert "call: tests.jobsx is not in DBCRON_CALL_MODULES" in run_cli(
        "validate", str(near)).stderr
    deeper = write_task(tmp_path / "v", "deeper", call="tests.jobs.sub:run")
    assert run_cli("validate", str(deeper)).exit_code == 0


def test_no_call_task_is_allowed_when_the_setting_is_unset(run_cli: Cli, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DBCRON_CALL_MODULES")
    path = write_task(tmp_path / "t", "ok")
    result = run_cli("validate", str(path))
    assert (result.exit_code, result.stderr) == (1, (
        f"Error: {path}: task 'ok': call: tests.jobs is not in DBCRON_CALL_MODULES (it is "
        "unset, so no call task runs); the operator allows it by adding tests.jobs to "
        "DBCRON_CALL_MODULES in the daemon's environment\n"
    ))


def test_a_stored_call_outside_the_allowlist_does_not_run(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from conftest import make_settings
    from dbcron.jobs import execute
    from dbcron.jobs.types import JobRequest

    marker = tmp_path / "ran"
    task = Task.model_validate({"name": "shell", "kind": "call", "schedule": {"every": "1h"},
                                "call": "os:system", "args": [f"touch {marker}"]})
    result = execute(JobRequest(task=task, slot=datetime.now(UTC),
                                settings=make_settings(tmp_path), timeout=10))
    assert (result.status, result.retryable) == ("failed", False)
    assert result.error is not None and result.error.startswith(
        "os is not in DBCRON_CALL_MODULES (it allows only tests.jobs, jobs)")
    assert not marker.exists()


def test_the_call_modules_setting_is_validated() -> None:
    from dbcron.errors import SettingsError

    with pytest.raises(SettingsError, match=r"^DBCRON_CALL_MODULES: 'os system' is not a module"):
        load_settings({"DBCRON_CALL_MODULES": "os system"}, cwd=Path("/nonexistent"))
    settings = load_settings({"DBCRON_CALL_MODULES": "myapp.jobs, reports"},
                             cwd=Path("/nonexistent"))
    assert settings.call_allowlist == ("myapp.jobs", "reports")


def test_every_test_named_in_docs_security_exists() -> None:
    import ast

    root = Path(__file__).parent
    text = (root.parent / "docs" / "security.md").read_text()
    named = re.findall(r"`(?:tests/(test_\w+\.py)::)?(test_\w+)`", text)
    assert len(named) > 30
    defined: dict[str, set[str]] = {}
    for file in {f or "test_security.py" for f, _ in named}:
        tree = ast.parse((root / file).read_text())
        defined[file] = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    missing = [f"{f}::{t}" for f, t in named if t not in defined[f or "test_security.py"]]
    assert missing == []
