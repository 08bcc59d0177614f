"""`diversity`: k-center greedy (farthest point) coverage inside k-means cells."""

from __future__ import annotations

import math
from numbers import Integral
from typing import Any, ClassVar

import numpy as np
from sklearn.utils._param_validation import Interval

from prunelab.select.base import BaseSelector, Context, register
from prunelab.select.budget import allocate
from prunelab.select.geometry import kcenter, kmeans_partition


@register
class DiversitySelector(BaseSelector):
    """k-center greedy (farthest-point) per stratum. Strata larger than `cell_size` are first cut
    into k-means cells that share the quota by size, so the work is O(n x quota_per_cell x d),
    never n x n.
    """

    name = "diversity"
    description = "k-center greedy coverage inside k-means cells"
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **BaseSelector._parameter_constraints,
        "cell_size": [Interval(Integral, 2, None, closed="left")],
    }

    def __init__(self, keep: float | None = 0.3, *, keep_count: int | None = None, min_keep: int = 20,
                 task: str = "auto", random_state: int = 0, trace_memory: bool = True,
                 cell_size: int = 4096) -> None:
        super().__init__(keep, keep_count=keep_count, min_keep=min_keep, task=task, random_state=random_state,
                         trace_memory=trace_memory)
        self.cell_size = cell_size

    def _pick(self, ctx: Context, idx: np.ndarray, quota: int) -> tuple[np.ndarray, np.ndarray]:
        if quota >= len(idx):
            return idx, np.ones(len(idx))
        cells = max(1, math.ceil(len(idx) / self.cell_size))
        if cells == 1:
            chosen, values = kcenter(ctx.Z[idx], quota)
            return idx[chosen], values
        labels, _ = kmeans_partition(ctx.Z[idx], cells, ctx.seed)
        sizes = np.bincount(labels, minlength=cells)
        quotas = allocate(sizes, quota, lower=1 if quota >= int((sizes > 0).sum()) else 0)
        values = np.zeros(len(idx))
        chosen_all = []
        for c in range(cells):
            members = np.flatnonzero(labels == c)
            if quotas[c] == 0 or len(members) == 0:
                continue
            chosen, vals = kcenter(ctx.Z[idx[members]], int(quotas[c]))
            values[members] = vals
            chosen_all.append(idx[members[chosen]])
        ctx.clusters += cells
        return np.concatenate(chosen_all), values
