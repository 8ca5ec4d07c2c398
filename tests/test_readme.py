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
    # The block starts in the checkout and activates its venv; here a stand-in
    # checkout whose venv is the test's own interpreter, and whose scripts are ours.
    checkout = tmp_path / "checkout"
    (checkout / ".venv" / "bin").mkdir(parents=True)
    (checkout / ".venv" / "bin" / "activate").write_text(
        f'export PATH="{Path(sys.executable).parent}:$PATH"\n'
    )
    (checkout / "scripts").symlink_to(ROOT / "scripts")
    scratch_root = tmp_path / "tmp"
    scratch_root.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBCRON_")}
    env.pop("DBCRON_SOURCE_SALES", None)
    env["TMPDIR"] = str(scratch_root)  # where mktemp -d makes the scratch directory
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=checkout, env=env,
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "1 task(s) valid: region-totals" in out
    assert "1 created, 0 updated, 0 unchanged, 0 removed" in out
    assert "At 08:00, only on Monday (Europe/London)" in out
    assert re.search(r"run #\d+ of region-totals: succeeded in [\d.]+s, 6 rows", out), out
    # .env sets DBCRON_SOURCE_SALES: validate and apply must not warn that it is unset.
    assert "warning" not in result.stderr, result.stderr
    [first] = scratch_root.iterdir()
    assert sorted(p.name for p in checkout.iterdir()) == [".venv", "scripts"]  # left clean
    assert sorted(p.suffix for p in (first / "preview").iterdir()) == [".csv", ".eml", ".xlsx"]
    assert len(list((first / "var" / "outbox").glob("*.eml"))) == 1
    assert "password" not in out.lower()
