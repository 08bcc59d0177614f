"""`importance`: recency x quality x difficulty, sampled without replacement."""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
from sklearn.utils._param_validation import Interval

from prunelab.select.base import BaseSelector, Context, ParameterError, register, top_k
from prunelab.select.geometry import self_neighbors
from prunelab.select.targets import label_codes, rank01, standard_target


@register
class ImportanceSelector(BaseSelector):
    """Importance sampling without replacement (Efraimidis-Spirakis keys) by a combined score of
    recency (exponential decay from `timestamps`, half-life = `half_life` x the time span),
    quality (rank of `scores`, higher is better) and difficulty (labelled data: EL2N of a k-NN
    quick model, ||p_knn - onehot(y)||; regression: k-NN residual; unlabelled: rarity, the
    distance to the k-th neighbour). Weights are (recency, quality, difficulty).
    """

    name = "importance"
    description = "recency x quality x difficulty (EL2N of a k-NN quick model), importance-sampled"
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **BaseSelector._parameter_constraints,
        "half_life": [Interval(Real, 0, None, closed="neither")],
        "weights": [tuple, list],
        "sharpness": [Interval(Real, 0, None, closed="left")],
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "reference": [Interval(Integral, 2, None, closed="left")],
    }

    def __init__(self, keep: float | None = 0.3, *, keep_count: int | None = None, min_keep: int = 20,
                 task: str = "auto", random_state: int = 0, trace_memory: bool = True,
                 half_life: float = 0.25, weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
                 sharpness: float = 2.0, n_neighbors: int = 10, reference: int = 5000) -> None:
        super().__init__(keep, keep_count=keep_count, min_keep=min_keep, task=task, random_state=random_state,
                         trace_memory=trace_memory)
        self.half_life = half_life
        self.weights = weights
        self.sharpness = sharpness
        self.n_neighbors = n_neighbors
        self.reference = reference

    def _prepare(self, ctx: Context) -> None:
        if len(self.weights) != 3 or any(not isinstance(w, (int, float, np.number)) or not np.isfinite(w) or w < 0
                                         for w in self.weights):
            raise ParameterError(f"The 'weights' parameter of {type(self).__name__} must be three numbers >= 0 "
                                 f"(recency, quality, difficulty). Got {self.weights!r} instead.")
        n = len(ctx.X)
        parts: list[tuple[str, float, np.ndarray]] = []
        w_rec, w_qual, w_diff = self.weights
        if ctx.timestamps is not None and w_rec > 0:
            span = float(ctx.timestamps.max() - ctx.timestamps.min())
            if span > 0:
                age = (ctx.timestamps.max() - ctx.timestamps) / (self.half_life * span)
                parts.append(("recency", w_rec, np.power(0.5, age)))
        if ctx.scores is not None and w_qual > 0:
            parts.append(("quality", w_qual, rank01(ctx.scores)))
        if w_diff > 0 and n > 2:
            parts.append(("difficulty" if ctx.y is not None else "rarity", w_diff, self._difficulty(ctx)))
        if not parts:
            parts.append(("uniform", 1.0, np.ones(n)))
        total = sum(w for _, w, _ in parts)
        self.importance_: np.ndarray = np.sum([w * v for _, w, v in parts], axis=0) / total
        self.components_ = [name for name, _, _ in parts]
        ctx.notes.append(f"importance from {', '.join(self.components_)}")

    def _difficulty(self, ctx: Context) -> np.ndarray:
        n = len(ctx.X)
        ref = np.sort(ctx.rng.choice(n, size=min(n, self.reference), replace=False))
        k = max(1, min(self.n_neighbors, len(ref) - 1))
        nb = self_neighbors(ctx.Z, k, ref=ref)
        if ctx.task == "classification":
            assert ctx.y is not None
            codes = label_codes(ctx.y)
            votes = codes[nb]
            p_own = (votes == codes[:, None]).mean(1)
            sum_p2 = sum((votes == votes[:, j : j + 1]).sum(1) for j in range(k)) / (k * k)
            return np.sqrt(np.maximum(sum_p2 - 2 * p_own + 1.0, 0.0) / 2.0)  # EL2N in [0, 1]
        if ctx.task == "regression":
            assert ctx.y is not None
            t = standard_target(ctx.y)
            return rank01(np.abs(t - t[nb].mean(1)).max(1))
        diff = ctx.Z - ctx.Z[nb[:, -1]]
        return rank01(np.einsum("ij,ij->i", diff, diff))

    def _pick(self, ctx: Context, idx: np.ndarray, quota: int) -> tuple[np.ndarray, np.ndarray]:
        w = np.power(0.05 + self.importance_[idx], self.sharpness)
        u = ctx.rng.random(len(idx))
        key = np.log(np.maximum(u, 1e-300)) / w
        return top_k(idx, key, quota), self.importance_[idx]

    def _decisions(self) -> dict[str, Any]:
        return {"components": getattr(self, "components_", [])}
