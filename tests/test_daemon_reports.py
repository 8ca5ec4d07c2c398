"""A report through the running daemon to a real SMTP server: outage, failure, recovery."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import Cli, write_task
from daemon_proc import DaemonProcess, wait_for
from dbcron.store import open_store
from smtp_server import SmtpTestServer

pytestmark = pytest.mark.slow
ROOT = Path(__file__).parent.parent


def test_report_survives_an_smtp_outage(run_cli: Cli, state_dir: Path, tmp_path: Path,
                                        smtp_server: SmtpTestServer) -> None:
    import openpyxl

    db = tmp_path / "sales.db"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "sample_db.py"), str(db)], check=True,
                   capture_output=True)
    write_task(
        tmp_path / "t", "regions", kind="report", call=None,
        schedule={"every": "3s"},
        policy={"retries": 1, "timeout": "20s", "overlap": "skip"},
        source="demo",
        query="SELECT region, SUM(amount) AS total FROM sales GROUP BY region ORDER BY region",
        export={"formats": ["xlsx"], "filename": "regions-{{ today }}"},
        email={"to": ["boss@example.com"], "subject": "Regions {{ today }}"},
        notify={"on_failure": ["ops@example.com"]},
    )
    path = tmp_path / "t" / "regions.yaml"
    path.write_text(path.read_text().replace("call: null\n", ""))
    smtp_server.fail_first = 10_000  # every transaction answered 451: the server is "down"
    result = run_cli("apply", str(path), DBCRON_SOURCE_DEMO=f"sqlite:///{db}")
    assert result.exit_code == 0, result.output
    proc = DaemonProcess(state_dir, DBCRON_SOURCE_DEMO=f"sqlite:///{db}",
                         DBCRON_SMTP_HOST="127.0.0.1", DBCRON_SMTP_PORT=str(smtp_server.port))
    proc.start()
    try:
        store = open_store(f"sqlite:///{state_dir / 'dbcron.db'}")

        def runs(status: str) -> list[Any]:
            return [r for r in store.runs.history("regions", limit=100) if r.status == status]

        failed = wait_for(lambda: runs("failed"), 40, "a run that failed on SMTP")[0]
        assert failed.attempt == 2
        assert "451" in (failed.error or "") and "gave up" in (failed.error or "")
        smtp_server.fail_first = smtp_server.transactions  # the server is back
        ok = wait_for(lambda: runs("succeeded"), 20, "the next slot to succeed")[0]
        assert ok.scheduled_for > failed.scheduled_for and ok.rows == 6
        mails = wait_for(lambda: [m for m in smtp_server.messages
                                  if "boss@example.com" in m.rcpt_tos], 10, "the report mail")
        message = mails[0].message
        assert message["Subject"].startswith("Regions ")
        assert message["Message-ID"].startswith("<dbcron.regions.")
        (part,) = list(message.iter_attachments())
        sheet = openpyxl.load_workbook(io.BytesIO(part.get_content())).active
        rows = list(sheet.iter_rows(values_only=True))
        assert rows[0] == ("region", "total") and len(rows) == 7
        store.close()
    finally:
        assert proc.stop() == 0
    assert "run regions failed" in proc.log() and "run regions succeeded" in proc.log()
