"""scheduler-daemon with its wall clock shifted by TEST_CLOCK_SHIFT seconds: a host
whose clock is off. The daemon reads its clock through the one it is given."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta


def main() -> None:
    from dbcron.daemon.lifecycle import Daemon
    from dbcron.logs import configure_logging
    from dbcron.settings import load_settings

    shift = timedelta(seconds=float(os.environ["TEST_CLOCK_SHIFT"]))
    settings = load_settings(os.environ)
    configure_logging(os.environ, settings.log_level, settings.log_format)
    Daemon(settings, dict(os.environ), clock=lambda: datetime.now(UTC) + shift).run()


if __name__ == "__main__":
    main()
