"""The work a task does: query, export, mail, alert, maintenance SQL, callables."""
