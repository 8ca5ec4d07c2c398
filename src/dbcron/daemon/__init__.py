"""The long-running process: scheduler-daemon and everything only it runs."""
