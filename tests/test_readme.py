"""The README's first-task walk-through, run as written (a newcomer's first five minutes)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def walkthrough() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- walkthrough.*?-->\n```sh\n(.*?)```", text, re.S)
    assert match, "README lost its walk-through block"
    return match.group(1)


def test_first_task_walkthrough_works_verbatim(tmp_path: Path) -> None:
    script = walkthrough()
    # The block starts with `. .venv/bin/activate` in the checkout; here the test's
    # own interpreter stands in for that venv, and `../scripts` must resolve.
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "activate").write_text(
        f'export PATH="{Path(sys.executable).parent}:$PATH"\n'
    )
    (tmp_path / "scripts").symlink_to(ROOT / "scripts")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBCRON_")}
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "1 task(s) valid: region-totals" in out
    assert "1 created, 0 updated, 0 unchanged, 0 removed" in out
    assert "At 08:00, only on Monday (Europe/London)" in out
    assert re.search(r"run \d+ of region-totals: succeeded in [\d.]+s, 6 rows", out), out
    first = tmp_path / "first"
    assert sorted(p.suffix for p in (first / "preview").iterdir()) == [".csv", ".eml", ".xlsx"]
    assert len(list((first / "var" / "outbox").glob("*.eml"))) == 1
    assert "password" not in out.lower()
