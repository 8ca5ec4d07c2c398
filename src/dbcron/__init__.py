"""dbcron: scheduled database work, recorded."""

__version__ = "0.1.0"
