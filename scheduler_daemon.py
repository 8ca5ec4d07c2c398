"""Checkout shim: `python scheduler_daemon.py` is `scheduler-daemon`."""

from dbcron.daemon.main import main

if __name__ == "__main__":
    main()
