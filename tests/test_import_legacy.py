"""Import of the older tool's tasks.json: every field lands somewhere, secrets stay out."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from conftest import Cli

LEGACY = [
    {
        "task_id": "7f3c", "name": "Daily Sales Report", "description": "Sales by region",
        "database_type": "postgresql",
        "database_url": "postgresql://report:s3cr3t@db.internal:5432/sales",
        "query": "SELECT region, SUM(amount) FROM sales GROUP BY region",
        "schedule_type": "cron",
        "schedule_config": {"year": None, "month": None, "day": None, "week": None,
                            "day_of_week": "0-4", "hour": "9", "minute": "30", "second": "0"},
        "email_recipients": ["boss@example.com", "cfo@example.com"],
        "email_cc_recipients": "audit@example.com",
        "email_subject": "Daily sales", "export_excel": True, "export_pdf": True,
        "excel_path": "/srv/reports/daily_sales.xlsx", "pdf_path": "/srv/reports/daily_sales.pdf",
        "is_active": True, "created_at": "2024-01-02T10:00:00", "last_run": "2026-11-19T09:30:00",
        "next_run": "2026-11-20T09:30:00", "run_count": 412, "error_count": 3,
        "last_error": "connection to postgresql://report:s3cr3t@db.internal failed",
    },
    {
        "task_id": "8a1d", "name": "Stock check", "description": "",
        "database_type": "postgresql",
        "database_url": "postgresql://report:s3cr3t@db.internal:5432/sales",
        "query": "SELECT * FROM stock WHERE qty < 5",
        "schedule_type": "interval", "schedule_config": {"hours": 1, "minutes": 30},
        "email_recipients": [], "email_cc_recipients": [], "email_subject": "",
        "export_excel": False, "export_pdf": False, "excel_path": None, "pdf_path": None,
        "is_active": False, "created_at": "2024-02-01T00:00:00", "last_run": None,
        "next_run": None, "run_count": 0, "error_count": 0, "last_error": None,
    },
    {
        "task_id": "9b2e", "name": "Year end", "description": "Once",
        "database_type": "mysql", "database_url": "mysql+pymysql://root:toor@127.0.0.1/erp",
        "query": "SELECT 1", "schedule_type": "once",
        "schedule_config": {"run_date": "2026-12-31T18:00:00"},
        "email_recipients": "fin@example.com; ceo@example.com", "email_cc_recipients": None,
        "email_subject": "Year end", "export_excel": True, "export_pdf": False,
        "excel_path": "ye.xlsx", "pdf_path": None, "is_active": True,
        "created_at": "2025-01-01T00:00:00", "last_run": None, "next_run": None,
        "run_count": 0, "error_count": 0, "last_error": None,
    },
]


def test_import_maps_every_field(run_cli: Cli, tmp_path: Path) -> None:
    source = tmp_path / "tasks.json"
    source.write_text(json.dumps(LEGACY))
    env_file = tmp_path / "dbcron.env"
    result = run_cli("import", str(source), "--env-file", str(env_file),
                     "--timezone", "Europe/Berlin")
    assert result.exit_code == 0, result.output
    assert "s3cr3t" not in result.output and "toor" not in result.output
    assert result.stdout.splitlines() == [
        f"imported 3 task(s) from {source}: 3 created, 0 updated, 0 unchanged",
        "  schedules in Europe/Berlin (--timezone)",
        "  'Daily Sales Report' -> daily-sales-report",
        "  'Stock check' -> stock-check",
        "  'Year end' -> year-end",
        f"  DBCRON_SOURCE_DAILY_SALES_REPORT=postgresql://report:***@db.internal:5432/sales  "
        f"(written to {env_file})",
        f"  DBCRON_SOURCE_YEAR_END=mysql+pymysql://root:***@127.0.0.1/erp  (written to {env_file})",
    ]
    assert env_file.read_text() == (
        "DBCRON_SOURCE_DAILY_SALES_REPORT='postgresql://report:s3cr3t@db.internal:5432/sales'\n"
        "DBCRON_SOURCE_YEAR_END='mysql+pymysql://root:toor@127.0.0.1/erp'\n"
    )
    assert stat.S_IMODE(os.stat(env_file).st_mode) == 0o600

    daily = json.loads(run_cli("show", "daily-sales-report", "--json").stdout)
    assert daily["source"] == "daily_sales_report"
    assert daily["schedule"] == {"cron": "30 9 * * 1-5", "timezone": "Europe/Berlin"}
    assert daily["export"] == {"formats": ["xlsx", "pdf"], "filename": "daily_sales-{{ today }}"}
    assert daily["email"] == {"to": ["boss@example.com", "cfo@example.com"],
                              "cc": ["audit@example.com"], "subject": "Daily sales"}
    assert daily["imported"]["run_count"] == 412 and daily["imported"]["error_count"] == 3
    assert daily["imported"]["task_id"] == "7f3c"
    assert daily["imported"]["last_error"] == (
        "connection to postgresql://report:***@db.internal failed"
    )
    stock = json.loads(run_cli("show", "stock-check", "--json").stdout)
    assert stock["enabled"] is False
    assert stock["schedule"] == {"every": "1h30m", "timezone": "Europe/Berlin"}
    assert stock["description"] == "Stock check" and "email" not in stock
    year_end = json.loads(run_cli("show", "year-end", "--json").stdout)
    assert year_end["schedule"] == {"at": "2026-12-31T18:00:00", "timezone": "Europe/Berlin"}
    assert year_end["email"]["to"] == ["fin@example.com", "ceo@example.com"]

    again = run_cli("import", str(source), "--env-file", str(env_file),
                    "--timezone", "Europe/Berlin")
    assert again.stdout.startswith(f"imported 0 task(s) from {source}: 0 created, 0 updated, 3 "
                                   "unchanged")
    assert env_file.read_text().count("\n") == 2


def test_bad_tasks_json_changes_nothing(run_cli: Cli, tmp_path: Path, state_dir: Path) -> None:
    source = tmp_path / "tasks.json"
    source.write_text(json.dumps(LEGACY[2:]))
    assert run_cli("import", str(source), "--env-file", str(tmp_path / "ok.env")).exit_code == 0
    before = (state_dir / "dbcron.db").read_bytes()
    broken = [dict(LEGACY[0]), dict(LEGACY[1])]
    broken[0]["schedule_config"] = {"week": "12", "hour": "9"}
    broken[1]["schedule_type"] = "hourly"
    source.write_text(json.dumps(broken))
    env_file = tmp_path / "x.env"
    result = run_cli("import", str(source), "--env-file", str(env_file))
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {source}[0] ('Daily Sales Report'): schedule_config.week: ISO week numbers "
        "have no cron equivalent\n"
        f"{source}[1] ('Stock check'): schedule_type: 'hourly' is not one of cron, interval, once\n"
    )
    assert not env_file.exists()
    assert (state_dir / "dbcron.db").read_bytes() == before
    source.write_text("[{")
    result = run_cli("import", str(source), "--env-file", str(env_file))
    assert (result.exit_code, result.stderr) == (
        1, f"Error: {source}: line 1, column 3: invalid JSON: Expecting property name enclosed "
        "in double quotes\n"
    )


@pytest.mark.parametrize(
    ("config", "cron"),
    [
        # APScheduler's rule: below the largest field given, the minimum; above it, "*".
        ({"month": "1,4,7,10"}, "0 0 1 1,4,7,10 *"),
        ({"hour": "*"}, "0 * * * *"),
        ({"minute": "*/5"}, "*/5 * * * *"),
        ({"day_of_week": "5-6", "hour": "9"}, "0 9 * * 6-7"),
        ({"day_of_week": "0-6", "hour": "9", "minute": "15"}, "15 9 * * 1-7"),
        ({"day": "1", "hour": "6"}, "0 6 1 * *"),
    ],
)
def test_apscheduler_cron_fields_convert_exactly(config: dict[str, str], cron: str) -> None:
    from dbcron.services.legacy import _cron

    assert _cron(config) == {"cron": cron}


def test_same_handle_different_databases_get_different_variables(
    run_cli: Cli, tmp_path: Path
) -> None:
    one = {**LEGACY[2], "name": "Sales Report", "database_url": "sqlite:///one.db"}
    two = {**LEGACY[2], "name": "sales_report", "database_url": "sqlite:///two.db"}
    source = tmp_path / "tasks.json"
    source.write_text(json.dumps([one, two]))
    env_file = tmp_path / "x.env"
    assert run_cli("import", str(source), "--env-file", str(env_file)).exit_code == 0
    assert env_file.read_text() == (
        "DBCRON_SOURCE_SALES_REPORT=sqlite:///one.db\nDBCRON_SOURCE_SALES_REPORT_2=sqlite:///two.db\n"
    )


def test_a_variable_set_to_another_url_is_refused(run_cli: Cli, tmp_path: Path,
                                                  state_dir: Path) -> None:
    source = tmp_path / "tasks.json"
    source.write_text(json.dumps(LEGACY[2:]))
    env_file = tmp_path / "x.env"
    env_file.write_text("DBCRON_SOURCE_YEAR_END=postgresql://other:pw@elsewhere/hr\n")
    result = run_cli("import", str(source), "--env-file", str(env_file))
    assert (result.exit_code, result.stderr) == (
        1, f"Error: {env_file} already sets DBCRON_SOURCE_YEAR_END to another value; remove or "
        "rename it there (or pass --env-file) and import again; nothing was changed\n"
    )
    assert "pw" not in result.output
    assert not (state_dir / "dbcron.db").exists()


def test_schedules_get_the_hosts_zone_and_the_output_says_so(
    run_cli: Cli, tmp_path: Path
) -> None:
    """Before: the old tool's server-local schedules silently became UTC."""
    source = tmp_path / "tasks.json"
    source.write_text(json.dumps(LEGACY[:1]))
    result = run_cli("import", str(source), "--env-file", str(tmp_path / "e.env"),
                     TZ="America/Chicago")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1] == (
        "  schedules in America/Chicago, this host's timezone, as the old tool used "
        "(--timezone to change)"
    )
    shown = json.loads(run_cli("show", "daily-sales-report", "--json").stdout)
    assert shown["schedule"]["timezone"] == "America/Chicago"
    bad = run_cli("import", str(source), "--timezone", "Mars/Olympus")
    assert bad.exit_code == 2
    assert bad.stderr.endswith(
        "Error: Invalid value for --timezone: unknown timezone 'Mars/Olympus': use an IANA "
        "name such as UTC, Europe/London, America/New_York, Asia/Kolkata\n"
    )


def test_host_timezone_reads_tz_then_etc_localtime(tmp_path: Path) -> None:
    from dbcron.services.imports import host_timezone

    zoneinfo = tmp_path / "usr/share/zoneinfo/Asia"
    zoneinfo.mkdir(parents=True)
    (zoneinfo / "Tokyo").write_bytes(b"TZif")
    link = tmp_path / "localtime"
    link.symlink_to(zoneinfo / "Tokyo")
    assert host_timezone({}, link) == "Asia/Tokyo"
    assert host_timezone({"TZ": ":Europe/Paris"}, link) == "Europe/Paris"
    assert host_timezone({"TZ": "Not/AZone"}, tmp_path / "missing") == "UTC"


def test_env_lines_read_the_same_in_dotenv_and_sh(run_cli: Cli, tmp_path: Path) -> None:
    """$, # and @ in a password: the daemon (python-dotenv) and `. .env` in sh must agree."""
    import subprocess

    from dotenv import dotenv_values

    url = "postgresql://report:p$HOME#x@y'z\"q w@db.internal/sales"
    entry = {**LEGACY[0], "database_url": url}
    source = tmp_path / "tasks.json"
    source.write_text(json.dumps([entry]))
    env_file = tmp_path / "db.env"
    assert run_cli("import", str(source), "--env-file", str(env_file)).exit_code == 0
    expected = url.replace("'", "%27")  # the same character in a URL
    assert dotenv_values(env_file)["DBCRON_SOURCE_DAILY_SALES_REPORT"] == expected
    shell = subprocess.run(
        ["sh", "-c", f'. "{env_file}"; printf %s "$DBCRON_SOURCE_DAILY_SALES_REPORT"'],
        capture_output=True, text=True, check=True, env={"PATH": os.environ["PATH"]},
    )
    assert shell.stdout == expected
    again = run_cli("import", str(source), "--env-file", str(env_file))
    assert again.exit_code == 0, again.output  # its own line is no clash


def test_reimport_keeps_a_task_disabled_by_hand(run_cli: Cli, tmp_path: Path) -> None:
    source = tmp_path / "tasks.json"
    source.write_text(json.dumps(LEGACY[:1]))
    env = str(tmp_path / "e.env")
    assert run_cli("import", str(source), "--env-file", env).exit_code == 0
    assert run_cli("disable", "daily-sales-report").exit_code == 0
    again = run_cli("import", str(source), "--env-file", env)
    assert again.stdout.splitlines()[0] == (
        f"imported 0 task(s) from {source}: 0 created, 0 updated, 1 unchanged"
    )
    shown = json.loads(run_cli("show", "daily-sales-report", "--json").stdout)
    assert shown["enabled"] is False


def test_export_keeps_the_timezone_a_task_runs_in(run_cli: Cli, tmp_path: Path) -> None:
    import yaml

    source = tmp_path / "tasks.json"
    source.write_text(json.dumps(LEGACY[:1]))
    assert run_cli("import", str(source), "--env-file", str(tmp_path / "e.env"),
                   "--timezone", "Asia/Kolkata").exit_code == 0
    (tmp_path / "t.yaml").write_text("name: plain\nkind: call\nschedule: {cron: '0 9 * * *'}\n"
                                     "call: tests.jobs:succeed\n")
    assert run_cli("apply", str(tmp_path / "t.yaml")).exit_code == 0
    exported = yaml.safe_load(run_cli("export", DBCRON_TIMEZONE="Europe/Oslo").stdout)
    zones = {t["name"]: t["schedule"]["timezone"] for t in exported["tasks"]}
    assert zones == {"daily-sales-report": "Asia/Kolkata", "plain": "Europe/Oslo"}
