"""Where prunelab keeps its store and caches.

`PRUNELAB_HOME` (default ~/.prunelab) holds the registry and models;
`PRUNELAB_CACHE` (default $PRUNELAB_HOME/cache) holds derived data such as
the uint8 MNIST .npz, so tests can share one cache across temporary homes.
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The prunelab home folder, created on first use."""
    path = Path(os.environ.get("PRUNELAB_HOME") or Path.home() / ".prunelab").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    """Folder for caches that can be rebuilt at any time."""
    env = os.environ.get("PRUNELAB_CACHE")
    path = Path(env).expanduser() if env else home() / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return path
