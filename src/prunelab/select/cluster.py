"""`cluster`: k-means per stratum, per-cluster budgets, centroid representatives plus spread."""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
from sklearn.utils._param_validation import Interval

from prunelab.select.base import BaseSelector, Context, register
from prunelab.select.budget import allocate
from prunelab.select.geometry import auto_clusters, grouped, kmeans_partition, spread_positions


@register
class ClusterSelector(BaseSelector):
    """k-means per stratum; each cluster keeps a share proportional to its size (at least one),
    representatives nearest the centroid plus samples spread across the cluster's distance range.

    n_clusters: per stratum (default auto: about sqrt(n/2), at most max_clusters and the quota);
    spread in [0, 1]: share of each cluster's quota spread over its distance range.
    """

    name = "cluster"
    description = "k-means, per-cluster budgets, centroid representatives plus spread"
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **BaseSelector._parameter_constraints,
        "n_clusters": [Interval(Integral, 1, None, closed="left"), None],
        "max_clusters": [Interval(Integral, 1, None, closed="left")],
        "spread": [Interval(Real, 0, 1, closed="both")],
    }

    def __init__(self, keep: float | None = 0.3, *, keep_count: int | None = None, min_keep: int = 20,
                 task: str = "auto", random_state: int = 0, trace_memory: bool = True,
                 n_clusters: int | None = None, max_clusters: int = 64, spread: float = 0.5) -> None:
        super().__init__(keep, keep_count=keep_count, min_keep=min_keep, task=task, random_state=random_state,
                         trace_memory=trace_memory)
        self.n_clusters = n_clusters
        self.max_clusters = max_clusters
        self.spread = spread

    def _cluster(self, ctx: Context, idx: np.ndarray, quota: int) -> tuple[np.ndarray, np.ndarray, int]:
        k = (min(int(self.n_clusters), quota) if self.n_clusters
             else auto_clusters(len(idx), quota, self.max_clusters))
        labels, dist = kmeans_partition(ctx.Z[idx], k, ctx.seed)
        k = int(labels.max()) + 1
        ctx.clusters += int(len(np.unique(labels)))
        return labels, dist, k

    def _pick(self, ctx: Context, idx: np.ndarray, quota: int) -> tuple[np.ndarray, np.ndarray]:
        if quota >= len(idx):
            return idx, np.ones(len(idx))
        labels, dist, k = self._cluster(ctx, idx, quota)
        sizes = np.bincount(labels, minlength=k)
        scale = np.maximum(np.bincount(labels, weights=dist, minlength=k) / np.maximum(sizes, 1), 1e-12)
        values = 1.0 / (1.0 + dist / scale[labels])  # representativeness: 1 at the centroid
        return idx[pick_in_clusters(labels, dist, quota, self.spread)], values


def pick_in_clusters(labels: np.ndarray, dist: np.ndarray, quota: int, spread: float) -> np.ndarray:
    """Positions of the `quota` rows kept from rows with cluster `labels` (int64 (n,)) at distance
    `dist` (float64 (n,)) from their centroid: each cluster gets a share proportional to its size
    (at least one when the quota allows), the nearest ceil(q * (1 - spread)) of its rows plus the
    rest spread evenly over its distance range. Ties go to the earlier position. Shared by the
    in-memory selector and the streaming engines (`prunelab.select.streaming`)."""
    k = int(labels.max()) + 1
    sizes = np.bincount(labels, minlength=k)
    quotas = allocate(sizes, quota, lower=1 if quota >= int((sizes > 0).sum()) else 0)
    order, starts = grouped(labels, dist)
    chosen = []
    for c in range(k):
        members = order[starts[c] : starts[c + 1]]
        q = int(quotas[c])
        if q == 0:
            continue
        near = min(q, int(math.ceil(q * (1.0 - spread))))
        rest = members[near:]
        picks = [members[:near]]
        if q > near:
            picks.append(rest[spread_positions(len(rest), q - near)])
        chosen.append(np.concatenate(picks))
    return np.concatenate(chosen)
