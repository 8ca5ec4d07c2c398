"""`python -m clocked_daemon ISO [daemon options]`: the real daemon with its wall clock set.

Calendar schedules fire on particular dates (a bank holiday, a month end), so
their daemon tests start the process at such a date; time-machine moves the
wall clock only (it keeps ticking), the daemon's code is unchanged.
"""

from __future__ import annotations

import sys
from datetime import datetime

import time_machine


def main() -> None:
    start = datetime.fromisoformat(sys.argv.pop(1))
    with time_machine.travel(start, tick=True):
        from dbcron.daemon.main import main as daemon_main

        daemon_main()


if __name__ == "__main__":
    main()
