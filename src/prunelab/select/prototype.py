"""`prototype`: Sorscher et al. 2022, distance to the k-means prototype of the sample's cluster."""

from __future__ import annotations

from numbers import Integral
from typing import Any, ClassVar

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from prunelab.select.base import BaseSelector, Context, register
from prunelab.select.budget import allocate
from prunelab.select.cluster import ClusterSelector
from prunelab.select.geometry import grouped
from prunelab.select.targets import rank01


@register
class PrototypeSelector(ClusterSelector):
    """Sorscher et al. 2022 prototype metric: distance to the k-means centroid of the sample's
    cluster (per stratum). Keeps hard (far) samples when data is plentiful, easy (near) ones when
    scarce; every cluster keeps its proportional share.

    mode: 'auto' | 'hard' | 'easy'. auto = hard when the kept count per stratum averages at
    least `plentiful` samples, easy otherwise.
    """

    name = "prototype"
    description = "distance to cluster prototype: hard when plentiful, easy when scarce (Sorscher 2022)"
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **BaseSelector._parameter_constraints,
        "n_clusters": [Interval(Integral, 1, None, closed="left"), None],
        "max_clusters": [Interval(Integral, 1, None, closed="left")],
        "mode": [StrOptions({"auto", "hard", "easy"})],
        "plentiful": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, keep: float | None = 0.3, *, keep_count: int | None = None, min_keep: int = 20,
                 task: str = "auto", random_state: int = 0, trace_memory: bool = True,
                 n_clusters: int | None = None, max_clusters: int = 64, mode: str = "auto",
                 plentiful: int = 1000) -> None:
        BaseSelector.__init__(self, keep, keep_count=keep_count, min_keep=min_keep, task=task,
                              random_state=random_state, trace_memory=trace_memory)
        self.n_clusters = n_clusters
        self.max_clusters = max_clusters
        self.mode = mode
        self.plentiful = plentiful

    def _prepare(self, ctx: Context) -> None:
        per_stratum = ctx.count / max(1, len(ctx.strata.labels))
        self.mode_ = self.mode if self.mode != "auto" else ("hard" if per_stratum >= self.plentiful else "easy")
        ctx.notes.append(f"prototype mode {self.mode_} ({per_stratum:.0f} kept per stratum, "
                         f"plentiful >= {self.plentiful})")

    def _pick(self, ctx: Context, idx: np.ndarray, quota: int) -> tuple[np.ndarray, np.ndarray]:
        if quota >= len(idx):
            return idx, np.ones(len(idx))
        labels, dist, k = self._cluster(ctx, idx, quota)
        sizes = np.bincount(labels, minlength=k)
        scale = np.maximum(np.bincount(labels, weights=dist, minlength=k) / np.maximum(sizes, 1), 1e-12)
        difficulty = dist / scale[labels]
        quotas = allocate(sizes, quota, lower=1 if quota >= int((sizes > 0).sum()) else 0)
        key = difficulty if self.mode_ == "hard" else -difficulty
        order, starts = grouped(labels, -key)  # most wanted first inside each cluster
        chosen = [order[starts[c] : starts[c] + int(quotas[c])] for c in range(k)]
        return idx[np.concatenate(chosen)], rank01(key)

    def _decisions(self) -> dict[str, Any]:
        return {"mode": getattr(self, "mode_", self.mode)}
