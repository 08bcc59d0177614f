"""`condense`: edited + condensed nearest neighbours for k-NN users (multi-class, regression-aware)."""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
from sklearn.utils._param_validation import Interval

from prunelab.select.base import BaseSelector, Context, register, top_k
from prunelab.select.budget import allocate_balanced
from prunelab.select.diversity import DiversitySelector
from prunelab.select.geometry import grouped, near_groups, pair_median, self_neighbors
from prunelab.select.targets import group_consensus, label_codes, standard_target


@register
class CondenseSelector(BaseSelector):
    """Edited + condensed nearest neighbours for k-NN users, multi-class and regression-aware.

    1. Edit (Wilson): a sample whose `n_neighbors` nearest neighbours out-vote its label
       (regression: whose target is more than `tolerance` standard deviations from their mean)
       is inconsistent and ranked last.
    2. Condense (Hart, in batches): starting from one sample per stratum, add samples the current
       1-NN set gets wrong until it gets every consistent sample right; these rank first.
    3. Budgets inside a stratum are balanced over groups of near duplicates (k-NN graph edges
       shorter than `radius` x the median pair distance; e.g. repeated runs of one workload):
       every group keeps min(size, level) samples, so rare groups are not lost to frequent ones;
       inside a group the condensed set comes first, then the most consistent samples.
    4. Run histories (at least `repeat_share` of the rows have a near duplicate): inside a group
       of repeats a label that disagrees with the group's consensus (not its most frequent label;
       regression: more than `tolerance` sd from the group's median target) is measurement noise,
       so it is edited, and the consensus samples come first instead of Hart's order. The budget
       is then balanced over the groups across the whole store, not split by strata first (noisy
       labels scatter one workload's repeats over classes / target bins and would leave a small
       workload 1-2 samples, too few for a 5-NN vote or average); the class floor still holds:
       each class's most consistent sample is reserved first.
    Unlabelled data has nothing to edit or condense: falls back to k-center diversity (noted).
    Cost: k-NN queries over all rows through scikit-learn's trees; fine to ~100k rows in a few
    dozen dimensions (115 s at 100k x 32 on one core), not meant for millions (`auto` measures it on
    a subsample of at most 4,000 rows).
    """

    name = "condense"
    description = "edited + condensed nearest neighbours (multi-class, regression-aware)"
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **BaseSelector._parameter_constraints,
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "tolerance": [Interval(Real, 0, None, closed="neither")],
        "max_rounds": [Interval(Integral, 0, None, closed="left")],
        "radius": [Interval(Real, 0, None, closed="left")],
        "repeat_share": [Interval(Real, 0, 1, closed="both")],
    }

    def __init__(self, keep: float | None = 0.3, *, keep_count: int | None = None, min_keep: int = 20,
                 task: str = "auto", random_state: int = 0, trace_memory: bool = True,
                 n_neighbors: int = 3, tolerance: float = 0.5, max_rounds: int = 30,
                 radius: float = 0.1, repeat_share: float = 0.5) -> None:
        super().__init__(keep, keep_count=keep_count, min_keep=min_keep, task=task, random_state=random_state,
                         trace_memory=trace_memory)
        self.n_neighbors = n_neighbors
        self.tolerance = tolerance
        self.max_rounds = max_rounds
        self.radius = radius
        self.repeat_share = repeat_share

    def _prepare(self, ctx: Context) -> None:
        self.fallback_: DiversitySelector | None = None
        if ctx.y is None or len(ctx.X) < 3:
            self.fallback_ = DiversitySelector(trace_memory=False)
            ctx.notes.append("condense needs labels (or >= 3 samples): used k-center diversity instead")
            return
        n = len(ctx.X)
        nb = self_neighbors(ctx.Z, self.n_neighbors)
        k = nb.shape[1]
        if ctx.task == "classification":
            codes = label_codes(ctx.y)
            votes = codes[nb]
            own = (votes == codes[:, None]).sum(1)
            best_other = np.zeros(n, dtype=np.int64)
            for j in range(k):
                cnt = (votes == votes[:, j : j + 1]).sum(1)
                best_other = np.maximum(best_other, np.where(votes[:, j] != codes, cnt, 0))
            noisy = best_other > own
            consistency = own / max(k, 1)
            target: np.ndarray = codes
        else:
            target = standard_target(ctx.y)
            err = np.abs(target - target[nb].mean(1)).max(1)
            noisy = err > self.tolerance
            consistency = 1.0 - np.minimum(err / (2 * self.tolerance), 1.0)
        rounds = self._condense(ctx, target, ~noisy)
        base = np.where(noisy, 0.1 * consistency, 1.0 + 0.9 * consistency)
        in_set = rounds >= 0
        score = base.copy()
        score[in_set] = 2.0 + 1.0 / (1.0 + rounds[in_set])
        tie = 1e-6 * ctx.rng.random(n)  # random tie-break among equal scores
        self.groups_ = near_groups(ctx.Z, self.radius * pair_median(ctx.Z, ctx.rng))
        repeated = np.bincount(self.groups_)[self.groups_] > 1
        self.repeated_ = bool(repeated.any() and repeated.mean() >= self.repeat_share)
        # Inside a group of near duplicates (repeated runs of one workload) a 1-NN miss is
        # measurement noise, not an uncovered region: Hart's rule would rank the flipped labels /
        # outlying targets first. A k-NN model votes or averages over its neighbours, so there the
        # samples that agree with the group's consensus (majority label, median target) come
        # first; the rest are edited. Singletons keep the k-NN edit and Hart's order. Only in a
        # run history (at least `repeat_share` of the rows have a near duplicate): elsewhere the
        # occasional close pair is two independent samples, judged by Wilson's k-NN edit.
        repeated &= self.repeated_
        g_noisy, g_consistency = group_consensus(self.groups_, target, ctx.task == "classification",
                                                 self.tolerance)
        g_score = np.where(g_noisy, 0.1 * g_consistency, 1.0 + 0.9 * g_consistency)
        self.condense_score_ = np.where(repeated, g_score, score) + tie
        noisy = np.where(repeated, g_noisy, noisy)
        self.edited_ = int(noisy.sum())
        self.condensed_ = int(in_set.sum())
        ctx.notes.append(f"condense: edited out {self.edited_} inconsistent samples, "
                         f"condensed set {self.condensed_}")

    def _condense(self, ctx: Context, target: np.ndarray, clean: np.ndarray) -> np.ndarray:
        """Round (>= 0) in which each sample joined the condensed set, -1 if it never did."""
        from sklearn.neighbors import NearestNeighbors

        rounds = np.full(len(ctx.X), -1, dtype=np.int64)
        pool = np.flatnonzero(clean)
        if len(pool) == 0:
            return rounds
        codes = ctx.strata.codes[pool]
        seeds = [pool[ctx.rng.choice(np.flatnonzero(codes == s))] for s in np.unique(codes)]
        member = np.asarray(seeds, dtype=np.int64)
        rounds[member] = 0
        for r in range(1, self.max_rounds + 1):
            rest = pool[rounds[pool] < 0]
            if len(rest) == 0:
                break
            nn = NearestNeighbors(n_neighbors=1).fit(ctx.Z[member])
            _, j = nn.kneighbors(ctx.Z[rest])
            pred = target[member[j[:, 0]]]
            if ctx.task == "classification":
                wrong = rest[pred != target[rest]]
            else:
                wrong = rest[np.abs(pred - target[rest]).max(1) > self.tolerance]
            if len(wrong) == 0:
                break
            add = ctx.rng.choice(wrong, size=min(len(wrong), max(1, len(member))), replace=False)
            rounds[add] = r
            member = np.concatenate([member, add])
        return rounds

    def _select(self, ctx: Context) -> Any:
        if self.fallback_ is not None:
            return self.fallback_._select(ctx)
        if not self.repeated_:
            return super()._select(ctx)
        # Noisy labels cut one workload's repeats across classes / target-quantile bins, and
        # proportional quotas per stratum then leave a small workload 1-2 samples, so a 5-NN
        # model votes or averages over other workloads there. With near-duplicate groups present
        # the budget is balanced over the groups across the whole store instead; the class floor
        # is kept by reserving each class's most consistent sample first. Strata are still reported.
        codes = ctx.strata.codes
        reserve = np.zeros(0, dtype=np.int64)
        if ctx.strata.is_class:
            reserve = np.array([top_k(members, self.condense_score_[members], 1)[0]
                                for members in (np.flatnonzero(codes == c) for c in np.unique(codes))],
                               dtype=np.int64)
        rest = np.setdiff1d(np.arange(len(ctx.X)), reserve)
        if ctx.count > len(reserve):
            reserve = np.concatenate([reserve, self._pick(ctx, rest, ctx.count - len(reserve))[0]])
        chosen = reserve
        ctx.notes.append("near-duplicate groups found: budget balanced over the groups across strata"
                         + (" (one sample per class reserved first)" if len(reserve) else ""))
        return chosen, self.condense_score_, np.bincount(codes[chosen], minlength=len(ctx.strata.labels)), []

    def _pick(self, ctx: Context, idx: np.ndarray, quota: int) -> tuple[np.ndarray, np.ndarray]:
        key = self.condense_score_[idx]
        clean = key >= 1.0  # edited-out samples only fill what the consistent ones cannot
        cidx, ckey = idx[clean], key[clean]
        take = min(quota, len(cidx))
        groups = np.unique(self.groups_[cidx], return_inverse=True)[1].ravel()
        quotas = allocate_balanced(np.bincount(groups), take) if take else np.zeros(0, dtype=np.int64)
        if take and int(quotas.max()) <= 1 and take < len(quotas):
            chosen = [top_k(cidx, ckey, take)]  # singletons only: best scores win
        else:
            order, starts = grouped(groups, -ckey)
            chosen = [cidx[order[starts[g] : starts[g] + int(quotas[g])]] for g in range(len(quotas))]
        if quota > take:
            chosen.append(top_k(idx[~clean], key[~clean], quota - take))
        return np.concatenate(chosen), key

    def _decisions(self) -> dict[str, Any]:
        return {"edited": getattr(self, "edited_", None), "condensed": getattr(self, "condensed_", None),
                "groups": int(len(np.unique(self.groups_))) if hasattr(self, "groups_") else None}
