"""Incremental mode: a growing store (new runs arriving with timestamps) kept under a cap.

    res = prunelab.select.Reservoir(cap=5000, strategy="importance")
    for X, y, t in batches:
        res.add(X, y, timestamps=t)       # len(res) <= 5000 after every call
    res.X, res.y, res.timestamps, res.ids  # ids: arrival number of each kept sample

After `add`, the store holds at most `cap` samples. When an add overflows it, the store
(kept samples plus the new batch, never the full history) is selected down to
cap x (1 - headroom); the next compaction therefore waits for headroom x cap new samples,
so each arriving sample is re-scanned a bounded number of times on average
(about 1 / headroom), not once per add.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from prunelab.errors import UserError
from prunelab.select.api import select
from prunelab.select.base import check_strategy
from prunelab.select.report import SelectionReport
from prunelab.select.strata import check_inputs


class Reservoir:
    """A store of at most `cap` samples, compacted with `strategy` (default importance: recency
    from timestamps, difficulty from labels). headroom in [0, 1): share of the cap freed at each
    compaction. params: strategy options."""

    def __init__(self, cap: int, strategy: str = "importance", *, min_keep: int = 20, headroom: float = 0.2,
                 random_state: int = 0, **params: Any) -> None:
        if isinstance(cap, bool) or not isinstance(cap, (int, np.integer)) or cap < 1:
            raise UserError(f"cap must be a positive integer, got {cap!r}")
        check_strategy(strategy)
        if not 0.0 <= headroom < 1.0:
            raise UserError(f"headroom must be in [0, 1), got {headroom}")
        self.cap = int(cap)
        self.strategy = strategy
        self.min_keep = min_keep
        self.headroom = headroom
        self.random_state = random_state
        self.params = params
        self._X: np.ndarray | None = None
        self._y: np.ndarray | None = None
        self._t: np.ndarray | None = None
        self._ids = np.zeros(0, dtype=np.int64)
        self._pending: list[tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray]] = []
        self._pending_rows = 0
        self.seen = 0
        self._has_y = False
        self._has_t = False
        self._d = 0
        self.compactions = 0
        self.scanned = 0
        self.last_report: SelectionReport | None = None

    def add(self, X: Any, y: Any = None, timestamps: Any = None) -> Reservoir:
        """Add a batch; compacts when the store would exceed the cap. Returns self."""
        Xa, ya, ta, _ = check_inputs(X, y, timestamps)
        if self.seen and (self._has_y != (ya is not None) or self._has_t != (ta is not None)):
            raise UserError("every batch must give the same arrays (y and timestamps) as the first one")
        if self.seen and Xa.shape[1] != self._d:
            raise UserError(f"batch has {Xa.shape[1]} features, the store has {self._d}")
        if not self.seen:
            self._has_y, self._has_t, self._d = ya is not None, ta is not None, Xa.shape[1]
        ids = np.arange(self.seen, self.seen + len(Xa), dtype=np.int64)
        self.seen += len(Xa)
        self._pending.append((Xa, ya, ta, ids))
        self._pending_rows += len(Xa)
        if len(self._ids) + self._pending_rows > self.cap:
            self._compact()
        return self

    def _merge(self) -> None:
        if not self._pending:
            return
        parts = ([(self._X, self._y, self._t, self._ids)] if self._X is not None else []) + self._pending
        self._X = np.concatenate([p[0] for p in parts])
        self._y = np.concatenate([p[1] for p in parts]) if self._has_y else None  # type: ignore[misc]
        self._t = np.concatenate([p[2] for p in parts]) if self._has_t else None  # type: ignore[misc]
        self._ids = np.concatenate([p[3] for p in parts])
        self._pending = []
        self._pending_rows = 0

    def _compact(self) -> None:
        self._merge()
        assert self._X is not None
        target = max(1, math.floor(self.cap * (1.0 - self.headroom)))
        sel = select(self._X, self._y, keep_count=target, strategy=self.strategy,
                     min_keep=min(self.min_keep, target), timestamps=self._t, random_state=self.random_state,
                     **self.params)
        if len(sel.indices) > self.cap:
            raise UserError(f"cap={self.cap} is smaller than the floors need ({len(sel.indices)} samples, "
                            "one per class); raise the cap")
        self.scanned += len(self._X)
        keep = sel.indices
        self._X = self._X[keep]
        self._y = self._y[keep] if self._y is not None else None
        self._t = self._t[keep] if self._t is not None else None
        self._ids = self._ids[keep]
        self.compactions += 1
        self.last_report = sel.report

    @property
    def X(self) -> np.ndarray:
        self._merge()
        return self._X if self._X is not None else np.zeros((0, 0), dtype=np.float32)

    @property
    def y(self) -> np.ndarray | None:
        self._merge()
        return self._y

    @property
    def timestamps(self) -> np.ndarray | None:
        self._merge()
        return self._t

    @property
    def ids(self) -> np.ndarray:
        """Arrival number (0-based, over everything ever added) of each kept sample."""
        self._merge()
        return self._ids

    def __len__(self) -> int:
        return len(self._ids) + self._pending_rows

    def __repr__(self) -> str:
        return (f"Reservoir(cap={self.cap}, strategy={self.strategy!r}, size={len(self)}, seen={self.seen}, "
                f"compactions={self.compactions})")
