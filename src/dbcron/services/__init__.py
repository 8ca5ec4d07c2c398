"""What the CLI calls: one function per command, typed errors, no printing."""
