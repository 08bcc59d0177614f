"""What a selection did, measured: bytes of the real arrays, tracemalloc peak, time, counts, floors."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prunelab.select.budget import Floor


@dataclass
class SelectionReport:
    """Everything measured about one selection.

    bytes_before / bytes_after: `nbytes` of the arrays given (X, y, timestamps,
    scores) and of the same arrays indexed by the kept indices (materialized).
    peak_bytes: tracemalloc peak of the selection itself (numpy buffers are
    traced; memory held by native libraries outside numpy is not).
    seconds: wall time of the selection. strata: per class / target-quantile
    stratum, how many samples were available and how many were kept.
    floors: the floors that raised the count, with the reason. decisions:
    what `auto` measured and why it chose what it chose.
    """

    strategy: str
    task: str
    original_count: int
    requested_count: int
    kept_count: int
    floors: list[Floor] = field(default_factory=list)
    strata: list[dict[str, Any]] = field(default_factory=list)
    clusters: int | None = None
    bytes_before: int = 0
    bytes_after: int = 0
    peak_bytes: int = 0
    seconds: float = 0.0
    decisions: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def memory_saving(self) -> float:
        """Fraction of bytes removed: 1 - bytes_after / bytes_before."""
        return 1.0 - self.bytes_after / self.bytes_before if self.bytes_before else 0.0

    @property
    def floor_applied(self) -> bool:
        return bool(self.floors)

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "task": self.task,
            "original_count": self.original_count,
            "requested_count": self.requested_count,
            "kept_count": self.kept_count,
            "floors": [f.to_dict() for f in self.floors],
            "strata": self.strata,
            "clusters": self.clusters,
            "bytes_before": self.bytes_before,
            "bytes_after": self.bytes_after,
            "memory_saving": self.memory_saving,
            "peak_bytes": self.peak_bytes,
            "seconds": self.seconds,
            "decisions": self.decisions,
            "params": self.params,
            "notes": self.notes,
        }

    def summary(self) -> str:
        """A few human lines."""
        lines = [
            f"{self.strategy}: kept {self.kept_count} of {self.original_count} "
            f"(requested {self.requested_count}), {self.bytes_before:,} -> {self.bytes_after:,} bytes "
            f"({self.memory_saving:.0%} saved), {self.seconds:.2f} s, peak {self.peak_bytes / 2**20:.1f} MiB",
        ]
        lines += [f"floor {f.name}: {f.before} -> {f.after} ({f.reason})" for f in self.floors]
        if self.decisions.get("reason"):
            lines.append(f"auto: {self.decisions['reason']}")
        lines += search_table(self.decisions.get("search") or {})
        lines += self.notes
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"SelectionReport(strategy={self.strategy!r}, kept={self.kept_count}/{self.original_count}, "
                f"requested={self.requested_count}, floors={[f.name for f in self.floors]}, "
                f"saving={self.memory_saving:.1%}, seconds={self.seconds:.3f})")


def kept_bytes(arrays: list[np.ndarray | None], indices: np.ndarray) -> tuple[int, int]:
    """(bytes before, bytes after) of the given arrays, measured on real (materialized) arrays."""
    before = sum(int(a.nbytes) for a in arrays if a is not None)
    after = 0
    for a in arrays:
        if a is not None:
            kept = a[indices]
            after += int(kept.nbytes)
            del kept
    return before, after


@dataclass
class Measurement:
    seconds: float = 0.0
    peak_bytes: int = 0


@contextmanager
def measure(trace_memory: bool = True) -> Iterator[Measurement]:
    """Time a block and, with `trace_memory`, record its tracemalloc peak above the starting level."""
    m = Measurement()
    started = False
    base = 0
    if trace_memory:
        if tracemalloc.is_tracing():
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
        else:
            tracemalloc.start()
            started = True
    t0 = time.perf_counter()
    try:
        yield m
    finally:
        m.seconds = time.perf_counter() - t0
        if trace_memory:
            m.peak_bytes = max(0, tracemalloc.get_traced_memory()[1] - base)
            if started:
                tracemalloc.stop()


def search_table(search: dict[str, Any]) -> list[str]:
    """`auto`'s measured table as text lines: one row per strategy, mean held-out score per fraction."""
    table = search.get("table") or []
    if not table or not search.get("full"):
        return []
    fractions = sorted({c["fraction"] for c in table}, reverse=True)
    names = list(dict.fromkeys(c["strategy"] for c in table))
    cell = {(c["strategy"], c["fraction"]): c["mean"] for c in table}
    cost = search.get("cost", {})
    holdout = (search.get("settings") or {}).get("holdout")
    kind = f" ({holdout} hold-out)" if holdout else ""
    lines = [f"measured {search['metric']} on {search['full']['folds']} held-out folds{kind} of {search['rows']} rows "
             f"(full store {search['full']['mean']:.4f}; {cost.get('selector_fits', 0)} selector fits, "
             f"{cost.get('seconds', 0.0):.1f} s):",
             f"  {'strategy':<11}" + "".join(f"{f:>8.0%}" for f in fractions)]
    for name in names:
        lines.append(f"  {name:<11}" + "".join(f"{cell[(name, f)]:>8.4f}" if (name, f) in cell else f"{'-':>8}"
                                              for f in fractions))
    return lines
