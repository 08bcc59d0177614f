"""`prunelab.select(X, y, keep=0.3)`: the one-call API over the strategy registry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from prunelab.errors import UserError
from prunelab.select.base import check_strategy, get_selector
from prunelab.select.report import SelectionReport


@dataclass
class Selection:
    """indices: sorted int64 (kept,) into the input rows; scores: float64 (n,) per input row
    (higher = the strategy valued it more); report: what was measured."""

    indices: np.ndarray
    scores: np.ndarray
    report: SelectionReport

    def __len__(self) -> int:
        return len(self.indices)

    def apply(self, *arrays: Any) -> tuple[Any, ...]:
        """The kept rows of each array (None stays None)."""
        return tuple(None if a is None else np.asarray(a)[self.indices] for a in arrays)

    def to_dict(self) -> dict[str, Any]:
        return {"kept_indices": self.indices.tolist(), "report": self.report.to_dict()}

    def __repr__(self) -> str:
        r = self.report
        return (f"Selection(strategy={r.strategy!r}, kept={r.kept_count}/{r.original_count}, "
                f"floors={[f.name for f in r.floors]}, saving={r.memory_saving:.1%})")


def select(X: Any, y: Any = None, keep: float | None = None, *, keep_count: int | None = None,
           strategy: str = "auto", min_keep: int = 20, timestamps: Any = None, scores: Any = None,
           task: str = "auto", random_state: int = 0, **params: Any) -> Selection:
    """Keep the training samples that matter.

    X: (n, d) numeric features (more dims are flattened). y: class labels (n,), a regression
    target (n,) or (n, t), or None. keep: fraction in (0, 1] or keep_count: exact number; the
    result has exactly that many samples unless a floor raises it (min_keep, one per class;
    reported). strategy: one of `list_strategies()`; `auto` (default) measures every plain
    strategy on held-out folds with the downstream model (k-NN by default) and picks the
    strategy and, when neither keep nor keep_count is given, the smallest fraction within
    `tolerance` of the full store (see `AutoSelector`). Other strategies default to keep=0.3.
    timestamps (n,) feed recency, scores (n,) feed quality (importance). params: strategy
    options (e.g. n_clusters=16 for cluster; tolerance=0.005, n_neighbors=3, estimator=...,
    max_seconds=30 for auto). Raises UserError (a ValueError) on bad input.
    """
    check_strategy(strategy)
    if keep is not None and keep_count is not None:
        raise UserError("give either keep (a fraction) or keep_count (a number of samples), not both")
    if keep is None and keep_count is None and strategy != "auto":
        keep = 0.3
    selector = get_selector(strategy, keep=keep, keep_count=keep_count, min_keep=min_keep, task=task,
                            random_state=random_state, **params)
    selector.fit(X, y, timestamps=timestamps, scores=scores)
    return Selection(indices=selector.indices_, scores=selector.scores_, report=selector.report_)
