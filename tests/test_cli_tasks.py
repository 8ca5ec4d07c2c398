"""manage-tasks commands through CliRunner: exit codes and exact messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import Cli, write_task
from dbcron.cli import cli


def store_bytes(state_dir: Path) -> bytes:
    return (state_dir / "dbcron.db").read_bytes()


@pytest.fixture
def applied(run_cli: Cli, tmp_path: Path) -> Path:
    directory = tmp_path / "tasks"
    write_task(directory, "alpha", schedule={"cron": "0 9 * * mon-fri", "timezone": "Asia/Kolkata"})
    write_task(directory, "beta", schedule={"every": "30m"})
    result = run_cli("apply", str(directory))
    assert result.exit_code == 0, result.output
    return directory


def test_every_command_has_help() -> None:
    for name, command in cli.commands.items():
        assert command.help, f"{name} has no help"
        assert CliRunnerHelp(name).exit_code == 0


HEAVY = ("sqlalchemy", "openpyxl", "reportlab", "apscheduler", "pydantic")


@pytest.mark.parametrize("args", [["--help"], ["list", "--help"], ["run", "--help"]])
def test_help_imports_no_heavy_module(args: list[str]) -> None:
    """`manage-tasks --help` must start fast: the heavy libraries load only in the
    commands that use them. A fresh interpreter, so nothing a test imported counts."""
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from dbcron.cli import cli\n"
        f"try: cli.main({args!r}, prog_name='manage-tasks')\n"
        "except SystemExit: pass\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    assert done.stdout.splitlines()[-1] == "[]"


def CliRunnerHelp(name: str):
    from click.testing import CliRunner

    return CliRunner().invoke(cli, [name, "--help"])


def test_apply_reports_what_changed(run_cli: Cli, applied: Path) -> None:
    result = run_cli("apply", str(applied))
    assert result.exit_code == 0
    assert result.stdout == "0 created, 0 updated, 2 unchanged, 0 removed\n"
    write_task(applied, "alpha", description="changed")
    result = run_cli("apply", str(applied))
    assert result.stdout == "0 created, 1 updated, 1 unchanged, 0 removed\n  updated alpha\n"
    assert result.stderr == "no daemon is running here; it loads the change when it starts\n"


def test_apply_prune_needs_yes_without_a_terminal(run_cli: Cli, applied: Path,
                                                  tmp_path: Path, state_dir: Path) -> None:
    only = tmp_path / "only"
    write_task(only, "alpha", schedule={"cron": "0 9 * * mon-fri", "timezone": "Asia/Kolkata"})
    before = store_bytes(state_dir)
    result = run_cli("apply", "--prune", str(only))
    assert result.exit_code == 2
    assert "Delete 1 task(s): beta? Add --yes to confirm without a terminal." in result.stderr
    assert store_bytes(state_dir) == before
    result = run_cli("apply", "--prune", "--yes", str(only))
    assert result.exit_code == 0
    assert result.stdout == "0 created, 0 updated, 1 unchanged, 1 removed\n  removed beta\n"


def test_bad_input_changes_nothing(run_cli: Cli, applied: Path, tmp_path: Path,
                                   state_dir: Path) -> None:
    bad = tmp_path / "bad"
    write_task(bad, "gamma", schedule={"cron": "0 9 * * *", "timezone": "Mars/Base"})
    write_task(bad, "delta", schedule={"cron": "99 9 * * *"})
    before = store_bytes(state_dir)
    result = run_cli("apply", str(applied), str(bad))
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {bad}/delta.yaml: task 'delta': schedule.cron: minute: 99 is out of range 0-59\n"
        f"{bad}/gamma.yaml: task 'gamma': schedule.timezone: unknown timezone 'Mars/Base': use "
        "an IANA name such as UTC, Europe/London, America/New_York, Asia/Kolkata\n"
    )
    assert store_bytes(state_dir) == before


def test_validate_does_not_touch_the_store(run_cli: Cli, applied: Path, state_dir: Path) -> None:
    result = run_cli("validate", str(applied))
    assert (result.exit_code, result.stdout) == (0, "2 task(s) valid: alpha, beta\n")
    missing = run_cli("validate", "nowhere.yaml")
    assert (missing.exit_code, missing.stderr) == (
        1, "Error: nowhere.yaml: no such file or directory\n"
    )


def test_validate_warns_about_unset_env(run_cli: Cli, tmp_path: Path) -> None:
    path = write_task(tmp_path / "t", "rep", kind="sql", call=None, source="nope_db",
                      statements=["DELETE FROM x"])
    text = path.read_text().replace("call: null\n", "")
    path.write_text(text)
    result = run_cli("validate", str(path))
    assert result.exit_code == 0
    assert result.stderr == (
        "warning: rep: DBCRON_SOURCE_NOPE_DB is not set in this environment; the task fails at "
        "run time unless the daemon's environment sets it\n"
    )


def test_validate_and_apply_read_dotenv_before_warning(run_cli: Cli, tmp_path: Path) -> None:
    """The README's walk-through sets DBCRON_SOURCE_SALES in .env: no warning about it."""
    path = write_task(tmp_path / "t", "rep", kind="sql", call=None, source="dotenv",
                      statements=["DELETE FROM x"])
    path.write_text(path.read_text().replace("call: null\n", ""))
    Path(".env").write_text("DBCRON_SOURCE_DOTENV=sqlite:///sales.db\n")
    for command in ("validate", "apply"):
        result = run_cli(command, str(path))
        assert result.exit_code == 0, result.output
        assert "DBCRON_SOURCE_DOTENV" not in result.stderr


def test_list_and_json(run_cli: Cli, applied: Path) -> None:
    result = run_cli("list")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "SCHEDULE", "NEXT", "RUN", "LAST", "RUN"]
    assert lines[1].startswith("alpha  call  At 09:00, Monday through Friday (Asia/Kolkata)")
    assert lines[2].startswith("beta   call  Every 30 minutes (UTC)")
    data = json.loads(run_cli("list", "--json").stdout)
    assert sorted(data[0]) == sorted(
        ["name", "description", "kind", "enabled", "schedule", "timezone", "next_run",
         "last_run", "last_status"]
    )
    assert data[0]["timezone"] == "Asia/Kolkata" and data[0]["next_run"].endswith("+00:00")
    assert (data[0]["description"], data[1]["description"]) == ("", "")
    write_task(applied, "alpha", description="Morning report",
               schedule={"cron": "0 9 * * mon-fri", "timezone": "Asia/Kolkata"})
    assert run_cli("apply", str(applied)).exit_code == 0
    assert json.loads(run_cli("list", "--json").stdout)[0]["description"] == "Morning report"


def test_show_masks_secrets_and_lists_next_runs(
    run_cli: Cli, tmp_path: Path, state_dir: Path
) -> None:
    # A row from before literal passwords were refused (see test_security.py).
    from dbcron.store import open_store

    store = open_store(f"sqlite:///{state_dir / 'dbcron.db'}")
    store.tasks.upsert([{"name": "secret", "kind": "sql", "schedule": {"every": "1h"},
                         "source": "postgresql://app:hunter2@db.example/app",
                         "statements": ["DELETE FROM x"]}], datetime.now(UTC))
    store.close()
    result = run_cli("show", "secret")
    assert result.exit_code == 0
    assert "hunter2" not in result.output
    assert "source: postgresql://app:***@db.example/app" in result.stdout
    assert result.stdout.count("\n#   ") == 5
    data = json.loads(run_cli("show", "secret", "--json").stdout)
    assert len(data["next_runs"]) == 5 and data["recent_runs"] == []
    assert "hunter2" not in json.dumps(data)


def test_unknown_task_suggests_a_name(run_cli: Cli, applied: Path) -> None:
    result = run_cli("show", "alpah")
    assert (result.exit_code, result.stderr) == (
        1, "Error: no task named 'alpah' (did you mean 'alpha'?); 'manage-tasks list' shows them\n"
    )


def test_next_from_a_given_time(run_cli: Cli, applied: Path) -> None:
    result = run_cli("next", "alpha", "-n", "3", "--from", "2026-11-20T10:00+05:30")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "2026-11-23T09:00:00+05:30", "2026-11-24T09:00:00+05:30", "2026-11-25T09:00:00+05:30"
    ]
    data = json.loads(run_cli("next", "beta", "-n", "2", "--from", "2026-01-01T00:10:00+00:00",
                              "--json").stdout)
    assert data == ["2026-01-01T00:30:00+00:00", "2026-01-01T01:00:00+00:00"]
    bad = run_cli("next", "beta", "--from", "yesterday")
    assert bad.exit_code == 2 and "'yesterday' is not an ISO 8601 time" in bad.stderr


def test_enable_disable_delete(run_cli: Cli, applied: Path) -> None:
    assert run_cli("disable", "beta").stdout == "disabled beta\n"
    assert run_cli("disable", "beta").stdout == "beta is already disabled\n"
    assert "disabled" in run_cli("list").stdout.splitlines()[2]
    assert run_cli("enable", "beta").stdout == "enabled beta\n"
    refused = run_cli("delete", "beta")
    assert refused.exit_code == 2 and "Add --yes to confirm" in refused.stderr
    assert run_cli("delete", "beta", "--yes").stdout == "deleted beta\n"
    assert run_cli("delete", "beta", "--yes").exit_code == 1


def test_add_with_flags(run_cli: Cli) -> None:
    result = run_cli("add", "--name", "nightly", "--kind", "sql", "--cron", "30 2 * * *",
                     "--timezone", "Europe/London", "--source", "sqlite:///x.db",
                     "--statement", "DELETE FROM menu")
    assert (result.exit_code, result.stdout) == (0, "added nightly\n")
    data = json.loads(run_cli("show", "nightly", "--json").stdout)
    assert data["statements"] == ["DELETE FROM menu"]
    assert data["schedule"] == {"cron": "30 2 * * *", "timezone": "Europe/London"}
    again = run_cli("add", "--name", "nightly", "--kind", "call", "--every", "1h",
                    "--call", "tests.jobs:succeed")
    assert again.exit_code == 1
    assert "a task named 'nightly' exists already" in again.stderr
    missing = run_cli("add", "--kind", "call", "--every", "1h")
    assert (missing.exit_code, missing.stderr.splitlines()[-1]) == (
        2, "Error: missing --name, --call (or run on a terminal)"
    )


def test_add_from_file(run_cli: Cli, tmp_path: Path) -> None:
    path = write_task(tmp_path / "f", "fromfile")
    assert run_cli("add", "--from-file", str(path)).stdout == "added fromfile\n"
    assert run_cli("add", "--from-file", str(path)).exit_code == 1


def test_edit_saves_only_valid_changes(run_cli: Cli, applied: Path, tmp_path: Path,
                                       state_dir: Path) -> None:
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/every: 30m/every: 45m/' \"$1\"\n")
    editor.chmod(0o755)
    result = run_cli("edit", "beta", EDITOR=str(editor))
    assert (result.exit_code, result.stdout) == (0, "updated beta\n")
    assert json.loads(run_cli("next", "beta", "-n", "1", "--from", "2026-01-01T00:00:00+00:00",
                              "--json").stdout) == ["2026-01-01T00:45:00+00:00"]
    editor.write_text("#!/bin/sh\nsed -i 's/every: 45m/every: soon/' \"$1\"\n")
    before = store_bytes(state_dir)
    bad = run_cli("edit", "beta", EDITOR=str(editor))
    assert bad.exit_code == 1
    assert "schedule.every: bad duration 'soon'" in bad.stderr
    assert store_bytes(state_dir) == before


def test_export_round_trips_through_apply(run_cli: Cli, applied: Path, tmp_path: Path) -> None:
    out = run_cli("export")
    assert out.exit_code == 0
    path = tmp_path / "exported.yaml"
    path.write_text(out.stdout)
    # beta ran in the default zone, which the file now names: applying it makes that explicit.
    assert run_cli("apply", str(path)).stdout.startswith("0 created, 1 updated, 1 unchanged")
    again = run_cli("export")
    assert again.stdout == out.stdout
    assert run_cli("apply", str(path)).stdout.startswith("0 created, 0 updated, 2 unchanged")
    data = json.loads(run_cli("export", "--format", "json").stdout)
    assert [d["name"] for d in data] == ["alpha", "beta"]


def test_schema_prints_json_schema(run_cli: Cli) -> None:
    result = run_cli("schema")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["title"] == "dbcron task"


def test_config_masks_secrets_and_says_where_from(run_cli: Cli) -> None:
    result = run_cli("config", "--json", DBCRON_SMTP_PASSWORD="s3cret-pw",
                     DBCRON_STORE="postgresql+psycopg://u:pw123@h/db")
    assert result.exit_code == 0
    assert "s3cret-pw" not in result.output and "pw123" not in result.output
    data = json.loads(result.stdout)
    assert data["DBCRON_SMTP_PASSWORD"] == {"value": "***", "source": "environment"}
    assert data["DBCRON_STORE"]["value"] == "postgresql+psycopg://u:***@h/db"
    assert data["DBCRON_TIMEZONE"] == {"value": "UTC", "source": "default"}


def test_bad_setting_lists_valid_values(run_cli: Cli) -> None:
    result = run_cli("list", DBCRON_LOG_FORMAT="xml")
    assert (result.exit_code, result.stderr) == (
        1, "Error: DBCRON_LOG_FORMAT='xml' is not valid; use one of text, json\n"
    )


def test_env_example_documents_every_setting() -> None:
    from dataclasses import fields

    from dbcron.settings import Settings, env_name

    text = (Path(__file__).parent.parent / ".env.example").read_text()
    names = [env_name(f.name) for f in fields(Settings) if f.name != "sources"]
    assert [n for n in names if f"#{n}=" not in text] == []


def test_read_commands_never_create_a_store(run_cli: Cli, state_dir: Path) -> None:
    for args in (["list"], ["status"], ["history"], ["show", "x"]):
        result = run_cli(*args)
        assert (result.exit_code, result.stderr) == (
            1, f"Error: no store at {state_dir}/dbcron.db: set DBCRON_STATE_DIR (or --state-dir) "
            "to where the daemon keeps it, or create one with 'manage-tasks apply'\n"
        )
    assert not state_dir.exists()


def test_config_says_a_value_came_from_dotenv(run_cli: Cli) -> None:
    Path(".env").write_text("DBCRON_TIMEZONE=Europe/Paris\n")
    data = json.loads(run_cli("config", "--json").stdout)
    assert data["DBCRON_TIMEZONE"] == {"value": "Europe/Paris",
                                       "source": str(Path.cwd() / ".env")}


def test_add_names_every_missing_flag_at_once(run_cli: Cli) -> None:
    """Before: one missing flag per try ('missing --name', then 'missing --source', ...)."""
    result = run_cli("add", "--kind", "sql")
    assert (result.exit_code, result.stderr.splitlines()[-1]) == (
        2, "Error: missing --name, --source, --statement, one of --cron, --every, --at "
        "(or run on a terminal)"
    )
    nothing = run_cli("add")
    assert nothing.stderr.splitlines()[-1] == (
        "Error: missing --kind, one of --cron, --every, --at (or run on a terminal)"
    )


def test_add_takes_cc_bcc_and_params(run_cli: Cli) -> None:
    result = run_cli("add", "--name", "sales", "--kind", "report", "--cron", "0 9 * * *",
                     "--source", "sqlite:///s.db", "--query", "SELECT * FROM s WHERE d = :day",
                     "--param", "day={{ yesterday }}", "--param", "region=North",
                     "--to", "a@example.com", "--cc", "b@example.com,c@example.com",
                     "--bcc", "d@example.com")
    assert (result.exit_code, result.stdout) == (0, "added sales\n")
    data = json.loads(run_cli("show", "sales", "--json").stdout)
    assert data["params"] == {"day": "{{ yesterday }}", "region": "North"}
    assert data["email"] == {"to": ["a@example.com"], "cc": ["b@example.com", "c@example.com"],
                             "bcc": ["d@example.com"]}
    bad = run_cli("add", "--name", "x", "--kind", "report", "--param", "day")
    assert bad.exit_code == 2
    assert bad.stderr.splitlines()[-1] == (
        "Error: Invalid value for --param: 'day': write NAME=VALUE, e.g. day={{ yesterday }}"
    )
