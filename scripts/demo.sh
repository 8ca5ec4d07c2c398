#!/usr/bin/env bash
# `make demo`: a sample database, the example tasks, the daemon, real mails in var/outbox/.
# Runs from the checkout with the venv's bin first on PATH (the Makefile sets it up).
set -euo pipefail
cd "$(dirname "$0")/.."

state="$PWD/var"
export DBCRON_STATE_DIR="$state"
export DBCRON_SOURCE_SALES="sqlite:///$state/sales.db"   # the tasks say source: sales
mkdir -p "$state"
rm -f "$state/outbox/"*.eml 2>/dev/null || true

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Sample database: $state/sales.db"
python scripts/sample_db.py "$state/sales.db"

step "Apply the example tasks (tasks/*.yaml)"
manage-tasks apply tasks/
manage-tasks list

step "When daily-sales runs next"
manage-tasks next daily-sales -n 3

step "Start the daemon"
scheduler-daemon >"$state/demo-daemon.log" 2>&1 &
daemon=$!
trap 'kill -TERM $daemon 2>/dev/null || true; wait $daemon 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  grep -q "scheduler-daemon ready" "$state/demo-daemon.log" && break
  sleep 0.2
done
manage-tasks status

step "Demo schedule: each example task runs now, through the daemon"
for task in daily-sales high-waste nightly-cleanup; do
  manage-tasks run "$task" || true
done

step "History"
manage-tasks history --limit 10

step "Stop the daemon (SIGTERM: drains, then exits)"
kill -TERM "$daemon"
wait "$daemon" || true
trap - EXIT
tail -n 8 "$state/demo-daemon.log"

step "Summary"
echo "mails written to $state/outbox/:"
for eml in "$state"/outbox/*.eml; do
  python - "$eml" <<'PY'
import sys
from email import policy
from email.parser import BytesParser

msg = BytesParser(policy=policy.default).parse(open(sys.argv[1], "rb"))
files = [p.get_filename() for p in msg.iter_attachments()]
print(f"  {sys.argv[1].rsplit('/', 1)[-1]}")
print(f"    To: {msg['To']}  Subject: {msg['Subject']}")
print(f"    attachments: {', '.join(files) if files else 'none'}")
PY
done
echo "exported files are in $state/output/; open the .eml files with any mail client."
