"""Moved: table I/O lives in `prunelab.data.tables`; this name stays for existing imports."""

from prunelab.data.tables import Table, load, save

__all__ = ["Table", "load", "save"]
