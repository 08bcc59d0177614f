"""Where prunelab keeps its store and caches (`PRUNELAB_HOME`, default ~/.prunelab)."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The prunelab home folder, created on first use."""
    path = Path(os.environ.get("PRUNELAB_HOME") or Path.home() / ".prunelab").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path
