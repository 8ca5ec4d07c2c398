"""Checkout shim: `python manage_tasks.py list` is `manage-tasks list`."""

from dbcron.cli import main

if __name__ == "__main__":
    main()
