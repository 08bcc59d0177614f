"""`auto`: measure the data, pick a strategy and (unless told) a fraction, and say why.

Measured on a sample (so it stays cheap at a million rows):
- near-duplicate rate and distinct fraction: neighbours within `radius` x the median
  distance between random pairs (standardized features); a sample's group size g is
  its neighbour count scaled to the full data, distinct fraction = mean(1 / g);
- label noise estimate: share of samples whose 5 nearest neighbours out-vote their
  label (regression: target more than 0.5 sd from the neighbours' mean);
- cluster structure: the estimated number of distinct groups.

Rule (documented in docs/data-pruning.md): keep about `per_group` samples per distinct
group (enough for a 5-NN majority), i.e. fraction = per_group x distinct fraction; when
that is >= `cautious` (little redundancy) keep everything, since pruning independent
records costs accuracy. Labelled data with label noise >= `noise_threshold` uses
`condense` (edits inconsistent repeats); otherwise `cluster`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from prunelab.select.base import BaseSelector, check_param, standardize, warm_imports
from prunelab.select.budget import check_keep, check_min_keep
from prunelab.select.report import measure
from prunelab.select.selectors import drop_self, label_codes, standard_target
from prunelab.select.strata import check_inputs, detect_task


def profile(Z: np.ndarray, y: np.ndarray | None, task: str, seed: int = 0, sample: int = 2000,
            reference: int = 50_000, radius: float = 0.1) -> dict[str, Any]:
    """Measure redundancy, label noise and cluster structure of standardized features Z (n, d)."""
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(seed)
    n = len(Z)
    ref = np.sort(rng.choice(n, size=min(n, reference), replace=False))
    q_pos = rng.choice(len(ref), size=min(len(ref), sample), replace=False)
    query = ref[q_pos]
    a, b = rng.integers(0, n, size=(2, 4000))
    distinct_pairs = a != b
    pair = np.linalg.norm(Z[a[distinct_pairs]] - Z[b[distinct_pairs]], axis=1) if distinct_pairs.any() else np.ones(1)
    median = float(np.median(pair)) if len(pair) else 1.0
    r = radius * median
    tree = NearestNeighbors().fit(Z[ref])  # one tree for both measurements
    if r > 0 and len(ref) > 1:
        counts = np.array([len(v) for v in tree.radius_neighbors(Z[query], radius=r, return_distance=False)])
    else:  # all points identical
        counts = np.full(len(query), len(ref))
    counts = np.maximum(counts, 1)
    group = 1.0 + (counts - 1) * (n / len(ref))
    distinct = float(np.mean(1.0 / group))
    out: dict[str, Any] = {
        "samples": n,
        "features": int(Z.shape[1]),
        "near_duplicate_rate": float(np.mean(counts > 1)),
        "distinct_fraction": distinct,
        "distinct_groups": int(round(n * distinct)),
        "radius": r,
        "label_noise": None,
    }
    if y is not None and len(ref) >= 4:
        # 5 nearest reference rows of each query row (itself excluded): only the queries, not all rows
        k = min(5, len(ref) - 1)
        _, nb = tree.kneighbors(Z[query], n_neighbors=k + 1)
        nbq = drop_self(nb, q_pos)
        if task == "classification":
            codes = label_codes(y[ref])
            votes = codes[nbq]
            own = (votes == codes[q_pos, None]).sum(1)
            best = np.zeros(len(q_pos), dtype=np.int64)
            for j in range(k):
                cnt = (votes == votes[:, j : j + 1]).sum(1)
                best = np.maximum(best, np.where(votes[:, j] != codes[q_pos], cnt, 0))
            out["label_noise"] = float(np.mean(best > own))
        else:
            t = standard_target(y[ref])
            out["label_noise"] = float(np.mean(np.abs(t[q_pos] - t[nbq].mean(1)).max(1) > 0.5))
    return out


class AutoSelector(BaseSelector):
    """Measures the data and delegates to the strategy it picks; `keep=None` lets it pick the fraction.

    per_group: samples kept per distinct group; cautious: above this fraction keep everything;
    noise_threshold: label-noise rate from which `condense` is used; condense_limit: above this many
    rows `cluster` replaces `condense` (whose neighbour queries grow faster than linearly).
    """

    name = "auto"
    description = "measures redundancy and label noise, picks strategy and fraction, explains why"

    def __init__(self, keep: float | None = None, *, keep_count: int | None = None, min_keep: int = 20,
                 task: str = "auto", random_state: int = 0, trace_memory: bool = True,
                 per_group: float = 5.0, cautious: float = 0.7, noise_threshold: float = 0.02,
                 condense_limit: int = 50_000) -> None:
        super().__init__(keep, keep_count=keep_count, min_keep=min_keep, task=task, random_state=random_state,
                         trace_memory=trace_memory)
        self.per_group = per_group
        self.cautious = cautious
        self.noise_threshold = noise_threshold
        self.condense_limit = condense_limit

    def fit(self, X: Any, y: Any = None, *, timestamps: Any = None, scores: Any = None) -> AutoSelector:
        from prunelab.select.strategies import get_selector

        check_keep(self.keep, self.keep_count)
        check_min_keep(self.min_keep)
        check_param("per_group", self.per_group, 1e-9)
        check_param("cautious", self.cautious, 0.0, 1.0)
        check_param("noise_threshold", self.noise_threshold, 0.0, 1.0)
        check_param("condense_limit", self.condense_limit, 0, integer=True)
        warm_imports()
        with measure(self.trace_memory) as m:
            Xa, ya, ts, sc = check_inputs(X, y, timestamps, scores)
            task = detect_task(ya, self.task)
            prof = profile(standardize(Xa), ya, task, seed=int(self.random_state))
            strategy, keep, reason = self.decide(prof, task)
            inner = get_selector(strategy, keep=keep, keep_count=self.keep_count, min_keep=self.min_keep,
                                 task=self.task, random_state=self.random_state, trace_memory=False)
            inner.fit(Xa, ya, timestamps=ts, scores=sc)
        self.selector_ = inner
        self.indices_ = inner.indices_
        self.scores_ = inner.scores_
        self.n_features_in_ = inner.n_features_in_
        report = inner.report_
        report.strategy = f"auto:{strategy}"
        report.seconds = m.seconds
        report.peak_bytes = m.peak_bytes
        report.decisions = {"strategy": strategy, "keep": keep if self.keep_count is None else None,
                            "keep_count": self.keep_count, "reason": reason, "profile": prof,
                            **report.decisions}
        report.params = {**self._report_params(), "inner": report.params}
        self.report_ = report
        return self

    def decide(self, prof: dict[str, Any], task: str) -> tuple[str, float | None, str]:
        """(strategy, keep fraction or the caller's, human reason)."""
        distinct = prof["distinct_fraction"]
        noise = prof["label_noise"]
        noisy = noise is not None and noise >= self.noise_threshold
        redundant = self.per_group * distinct < self.cautious
        strategy = "condense" if (task != "none" and noisy and redundant) else "cluster"
        why_strategy = (f"label noise {noise:.1%} >= {self.noise_threshold:.0%} among repeats: condense edits "
                        "inconsistent repeats" if strategy == "condense"
                        else "cluster keeps every region of the data in proportion")
        if strategy == "condense" and prof["samples"] > self.condense_limit:
            # its neighbour queries grow faster than linearly (115 s at 100k x 32 on one core)
            strategy = "cluster"
            why_strategy = (f"label noise {noise:.1%} would call for condense, but {prof['samples']:,} rows exceed "
                            f"condense_limit={self.condense_limit:,}: cluster (linear time) instead")
        if self.keep is not None or self.keep_count is not None:
            return strategy, self.keep, f"{why_strategy}; fraction given by the caller"
        if not redundant:
            return (strategy, 1.0, f"little redundancy ({distinct:.0%} of samples distinct, "
                    f"{prof['near_duplicate_rate']:.0%} have near duplicates): kept everything, because "
                    "pruning independent records costs accuracy")
        keep = float(min(1.0, max(self.per_group * distinct, 1e-9)))
        return (strategy, keep, f"{prof['near_duplicate_rate']:.0%} of samples have near duplicates, about "
                f"{prof['distinct_groups']} distinct groups: keep {self.per_group:g} per group = {keep:.1%}; "
                f"{why_strategy}")
