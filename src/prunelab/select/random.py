"""`random`: the uniform baseline every report shows."""

from __future__ import annotations

import numpy as np

from prunelab.select.base import BaseSelector, Context, register, top_k


@register
class RandomSelector(BaseSelector):
    """Uniform random sample inside each stratum: the baseline every report shows."""

    name = "random"
    description = "uniform random sample per stratum (the baseline)"

    def _pick(self, ctx: Context, idx: np.ndarray, quota: int) -> tuple[np.ndarray, np.ndarray]:
        key = ctx.rng.random(len(idx))
        return top_k(idx, key, quota), key
