"""Shared helpers for the fault, concurrency and load tests.

The same tests run short in `make test` and long in `make reliability`
(PRUNELAB_RELIABILITY=full), which also records their figures in
test-output/reliability.jsonl for `benchmarks/reliability_report.py`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FULL = os.environ.get("PRUNELAB_RELIABILITY") == "full"
FIGURES = REPO / "test-output" / "reliability.jsonl"


def scale(short: float, full: float) -> float:
    """`short` in make test, `full` in make reliability."""
    return full if FULL else short


def record(section: str, **figures: Any) -> None:
    """Append one row of figures (only in a full reliability run)."""
    if not FULL:
        return
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    with open(FIGURES, "a") as f:
        f.write(json.dumps({"section": section, "time": time.time(), **figures}) + "\n")
