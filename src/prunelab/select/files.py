"""Moved: table I/O lives in `prunelab.data.tables`; this name stays for existing imports
and says so once, with a DeprecationWarning."""

import warnings

from prunelab.data.tables import Table, load, save

warnings.warn("prunelab.select.files moved to prunelab.data.tables; import it from there",
              DeprecationWarning, stacklevel=2)

__all__ = ["Table", "load", "save"]
