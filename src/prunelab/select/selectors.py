"""The selection strategies. Each picks exactly its quota inside one stratum.

None of them builds an n x n matrix: clustering is (MiniBatch)KMeans,
neighbours come from scikit-learn's trees (or chunked brute force), and
k-center greedy runs inside cells of at most `cell_size` samples.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from prunelab.errors import UserError
from prunelab.select.base import BaseSelector, Context, check_param, top_k
from prunelab.select.budget import allocate

# ---------------------------------------------------------------------------------------------------
# shared pieces


def auto_clusters(n: int, quota: int, max_clusters: int) -> int:
    """Clusters for a stratum of n samples: about sqrt(n / 2), at most max_clusters and at most
    the quota (so every cluster can keep one sample)."""
    return int(max(1, min(quota, max_clusters, round(math.sqrt(n / 2)))))


def kmeans_partition(Z: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(cluster label (n,), distance to own centroid (n,)). KMeans up to 10k rows, MiniBatchKMeans above."""
    n = len(Z)
    if k <= 1 or n <= 1:
        centre = Z.mean(0, dtype=np.float64).astype(np.float32)
        return np.zeros(n, dtype=np.int64), _row_dist(Z, centre[None, :], np.zeros(n, dtype=np.int64))
    from sklearn.cluster import KMeans, MiniBatchKMeans

    model: Any
    if n <= 10_000:
        model = KMeans(n_clusters=k, n_init=1, max_iter=100, random_state=seed)
    else:
        model = MiniBatchKMeans(n_clusters=k, batch_size=4096, n_init=1, max_iter=30, max_no_improvement=5,
                                random_state=seed)
    labels = model.fit_predict(Z).astype(np.int64)
    return labels, _row_dist(Z, model.cluster_centers_.astype(np.float32), labels)


def _row_dist(Z: np.ndarray, centres: np.ndarray, labels: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
    out = np.empty(len(Z), dtype=np.float64)
    for i in range(0, len(Z), chunk):
        diff = Z[i : i + chunk] - centres[labels[i : i + chunk]]
        out[i : i + chunk] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return out


def grouped(labels: np.ndarray, key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(order, starts): positions sorted by (label, key) and where each label's run starts."""
    order = np.lexsort((key, labels))
    sizes = np.bincount(labels)
    return order, np.concatenate([[0], np.cumsum(sizes)])


def spread_positions(m: int, r: int) -> np.ndarray:
    """r distinct positions evenly spread over range(m) (r <= m)."""
    return np.floor((np.arange(r) + 0.5) * m / r).astype(np.int64)


def self_neighbors(Z: np.ndarray, k: int, ref: np.ndarray | None = None) -> np.ndarray:
    """Indices (n, k) into `ref` rows (default all of Z) of each row's k nearest neighbours, self excluded."""
    from sklearn.neighbors import NearestNeighbors

    ref_idx = np.arange(len(Z)) if ref is None else ref
    k = min(k, len(ref_idx) - 1)
    if k < 1:
        return np.zeros((len(Z), 0), dtype=np.int64)
    nn = NearestNeighbors(n_neighbors=k + 1).fit(Z[ref_idx])
    _, nb = nn.kneighbors(Z)
    return drop_self(ref_idx[nb], np.arange(len(Z)))


def drop_self(nb: np.ndarray, own: np.ndarray) -> np.ndarray:
    """(n, k+1) neighbour indices -> (n, k): each row's own index `own[i]` removed where
    it appears, otherwise the farthest neighbour (the last column)."""
    n, k = nb.shape[0], nb.shape[1] - 1
    is_self = nb == own[:, None]
    drop = np.where(is_self.any(1), is_self.argmax(1), k)
    keep = np.ones_like(nb, dtype=bool)
    keep[np.arange(n), drop] = False
    return nb[keep].reshape(n, k)


def pair_median(Z: np.ndarray, rng: np.random.Generator, pairs: int = 4000) -> float:
    """Median distance between random pairs of distinct rows (the data's scale)."""
    a, b = rng.integers(0, len(Z), size=(2, pairs))
    ok = a != b
    if not ok.any():
        return 0.0
    return float(np.median(np.linalg.norm(Z[a[ok]] - Z[b[ok]], axis=1)))


def near_groups(Z: np.ndarray, radius: float, k: int = 10) -> np.ndarray:
    """Group id per row: connected components of the k-NN graph restricted to edges shorter than
    `radius` (near duplicates, e.g. repeated runs of one workload). Sparse: n x k edges at most."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components
    from sklearn.neighbors import NearestNeighbors

    n = len(Z)
    k = min(k, n - 1)
    if k < 1 or radius <= 0:
        return np.arange(n)
    dist, nb = NearestNeighbors(n_neighbors=k + 1).fit(Z).kneighbors(Z)
    close = dist <= radius
    rows = np.repeat(np.arange(n), k + 1)[close.ravel()]
    graph = csr_matrix((np.ones(len(rows), dtype=np.int8), (rows, nb.ravel()[close.ravel()])), shape=(n, n))
    return connected_components(graph, directed=False)[1].astype(np.int64)


def allocate_balanced(sizes: np.ndarray, total: int) -> np.ndarray:
    """Water-filling: every group gets min(size, level), the level as high as the total allows;
    the leftover units go one each to the largest groups still above the level."""
    sizes = np.asarray(sizes, dtype=np.int64)
    if total >= int(sizes.sum()):
        return sizes.copy()
    lo, hi = 0, int(sizes.max())
    while lo < hi:  # largest level whose fill fits in total
        mid = (lo + hi + 1) // 2
        if int(np.minimum(sizes, mid).sum()) <= total:
            lo = mid
        else:
            hi = mid - 1
    quota = np.minimum(sizes, lo)
    left = total - int(quota.sum())
    room = np.flatnonzero(sizes > quota)
    quota[room[np.argsort(-sizes[room], kind="stable")[:left]]] += 1
    return quota


def group_consensus(groups: np.ndarray, target: np.ndarray, classes: bool,
                    tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """(disagrees (n,) bool, consistency (n,) in [0, 1]) of each sample with its group.

    classes: target holds int codes (n,); consistency = the share of the group with the sample's
    label, and a sample disagrees when its label is not a most frequent one of its group.
    Otherwise target is standardized (n, d); err = max over columns of |target - group median|,
    disagrees when err > tolerance, consistency = 1 - min(err / (2 tolerance), 1).
    """
    sizes = np.bincount(groups)
    if classes:
        n_codes = int(target.max()) + 1
        pair = groups * n_codes + target
        share = np.bincount(pair)[pair] / sizes[groups]
        top = np.zeros(len(sizes))
        np.maximum.at(top, groups, share)
        return share < top[groups] - 1e-12, share
    t = target.reshape(len(target), -1)
    starts = np.concatenate([[0], np.cumsum(sizes)])[:-1]
    lo = starts + (sizes - 1) // 2
    hi = starts + sizes // 2
    err = np.zeros(len(t))
    for j in range(t.shape[1]):
        order = np.lexsort((t[:, j], groups))
        ts = t[order, j]
        median = np.zeros(len(sizes))
        has = sizes > 0
        median[has] = 0.5 * (ts[lo[has]] + ts[hi[has]])
        err = np.maximum(err, np.abs(t[:, j] - median[groups]))
    return err > tolerance, 1.0 - np.minimum(err / (2 * tolerance), 1.0)


def label_codes(y: np.ndarray) -> np.ndarray:
    return np.unique(y, return_inverse=True)[1].astype(np.int64).ravel()


def standard_target(y: np.ndarray) -> np.ndarray:
    t = y.reshape(len(y), -1).astype(np.float64)
    std = t.std(0)
    std[std < 1e-12] = 1.0
    return (t - t.mean(0)) / std


def rank01(v: np.ndarray) -> np.ndarray:
    """Ranks scaled to [0, 1] (ties share the order they come in)."""
    if len(v) <= 1:
        return np.ones(len(v))
    r = np.empty(len(v))
    r[np.argsort(v, kind="stable")] = np.arange(len(v))
    return r / (len(v) - 1)


# ---------------------------------------------------------------------------------------------------
# strategies


class RandomSelector(BaseSelector):
    """Uniform random sample inside each stratum: the baseline every report shows."""

    name = "random"
    description = "uniform random sample per stratum (the baseline)"

    def _pick(self, ctx: Context, idx: np.ndarray, quota: int) -> tuple[np.ndarray, np.ndarray]:
        key = ctx.rng.random(len(idx))
        return top_k(idx, key, quota), key


class ClusterSelector(BaseSelector):
    """k-means per stratum; each cluster keeps a share proportional to its size (at least one),
    representatives nearest the centroid plus samples spread across the cluster's distance range.

    n_clusters: per stratum (default auto: about sqrt(n/2), at most max_clusters and the quota);
    spread in [0, 1]: share of each cluster's quota spread over its distance range.
    """

    name = "cluster"
    description = "k-means, per-cluster budgets, centroid representatives plus spread"

    def __init__(self, keep: float | None = 0.3, *, keep_count: int | None = None, min_keep: int = 20,
                 task: str = "auto", random_state: int = 0, trace_memory: bool = True,
                 n_clusters: int | None = None, max_clusters: int = 64, spread: float = 0.5) -> None:
        super().__init__(keep, keep_count=keep_count, min_keep=min_keep, task=task, random_state=random_state,
                         trace_memory=trace_memory)
        self.n_clusters = n_clusters
        self.max_clusters = max_clusters
        self.spread = spread

    def _prepare(self, ctx: Context) -> None:
        check_param("n_clusters", self.n_clusters, 1, integer=True, allow_none=True)
        check_param("max_clusters", self.max_clusters, 1, integer=True)
        check_param("spread", getattr(self, "spread", 0.0), 0.0, 1.0)

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
        quotas = allocate(sizes, quota, lower=1 if quota >= int((sizes > 0).sum()) else 0)
        order, starts = grouped(labels, dist)
        scale = np.maximum(np.bincount(labels, weights=dist, minlength=k) / np.maximum(sizes, 1), 1e-12)
        values = 1.0 / (1.0 + dist / scale[labels])  # representativeness: 1 at the centroid
        chosen = []
        for c in range(k):
            members = order[starts[c] : starts[c + 1]]
            q = int(quotas[c])
            if q == 0:
                continue
            near = min(q, int(math.ceil(q * (1.0 - self.spread))))
            rest = members[near:]
            picks = [members[:near]]
            if q > near:
                picks.append(rest[spread_positions(len(rest), q - near)])
            chosen.append(np.concatenate(picks))
        return idx[np.concatenate(chosen)], values


class PrototypeSelector(ClusterSelector):
    """Sorscher et al. 2022 prototype metric: distance to the k-means centroid of the sample's
    cluster (per stratum). Keeps hard (far) samples when data is plentiful, easy (near) ones when
    scarce; every cluster keeps its proportional share.

    mode: 'auto' | 'hard' | 'easy'. auto = hard when the kept count per stratum averages at
    least `plentiful` samples, easy otherwise.
    """

    name = "prototype"
    description = "distance to cluster prototype: hard when plentiful, easy when scarce (Sorscher 2022)"

    def __init__(self, keep: float | None = 0.3, *, keep_count: int | None = None, min_keep: int = 20,
                 task: str = "auto", random_state: int = 0, trace_memory: bool = True,
                 n_clusters: int | None = None, max_clusters: int = 64, mode: str = "auto",
                 plentiful: int = 1000) -> None:
        super().__init__(keep, keep_count=keep_count, min_keep=min_keep, task=task, random_state=random_state,
                         trace_memory=trace_memory, n_clusters=n_clusters, max_clusters=max_clusters)
        self.mode = mode
        self.plentiful = plentiful

    def _prepare(self, ctx: Context) -> None:
        super()._prepare(ctx)
        check_param("plentiful", self.plentiful, 1, integer=True)
        if self.mode not in ("auto", "hard", "easy"):
            raise UserError(f"prototype mode must be auto, hard or easy, got {self.mode!r}")
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


class ImportanceSelector(BaseSelector):
    """Importance sampling without replacement (Efraimidis-Spirakis keys) by a combined score of
    recency (exponential decay from `timestamps`, half-life = `half_life` x the time span),
    quality (rank of `scores`, higher is better) and difficulty (labelled data: EL2N of a k-NN
    quick model, ||p_knn - onehot(y)||; regression: k-NN residual; unlabelled: rarity, the
    distance to the k-th neighbour). Weights are (recency, quality, difficulty).
    """

    name = "importance"
    description = "recency x quality x difficulty (EL2N of a k-NN quick model), importance-sampled"

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
        check_param("half_life", self.half_life, 1e-9)
        check_param("sharpness", self.sharpness, 0.0)
        check_param("n_neighbors", self.n_neighbors, 1, integer=True)
        check_param("reference", self.reference, 2, integer=True)
        if len(self.weights) != 3 or any(not np.isfinite(w) or w < 0 for w in self.weights):
            raise UserError(f"weights must be three numbers >= 0 (recency, quality, difficulty), got {self.weights!r}")
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


class DiversitySelector(BaseSelector):
    """k-center greedy (farthest-point) per stratum. Strata larger than `cell_size` are first cut
    into k-means cells that share the quota by size, so the work is O(n x quota_per_cell x d),
    never n x n.
    """

    name = "diversity"
    description = "k-center greedy coverage inside k-means cells"

    def __init__(self, keep: float | None = 0.3, *, keep_count: int | None = None, min_keep: int = 20,
                 task: str = "auto", random_state: int = 0, trace_memory: bool = True,
                 cell_size: int = 4096) -> None:
        super().__init__(keep, keep_count=keep_count, min_keep=min_keep, task=task, random_state=random_state,
                         trace_memory=trace_memory)
        self.cell_size = cell_size

    def _prepare(self, ctx: Context) -> None:
        check_param("cell_size", self.cell_size, 2, integer=True)

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


def kcenter(Z: np.ndarray, quota: int) -> tuple[np.ndarray, np.ndarray]:
    """Greedy k-center on rows of Z (n, d): start nearest the mean, then repeatedly the row farthest
    from everything chosen. Returns (chosen positions, score per row: its coverage distance when
    chosen, or its final distance to the chosen set, scaled to [0, 1])."""
    n = len(Z)
    centre = Z.mean(0)
    d0 = Z - centre
    first = int(np.argmin(np.einsum("ij,ij->i", d0, d0)))
    chosen = np.empty(quota, dtype=np.int64)
    gain = np.zeros(n)
    mind = np.full(n, np.inf)
    nxt = first
    for t in range(quota):
        chosen[t] = nxt
        diff = Z - Z[nxt]
        np.minimum(mind, np.einsum("ij,ij->i", diff, diff), out=mind)
        mind[chosen[: t + 1]] = -1.0  # never pick a row twice, even among exact duplicates
        nxt = int(np.argmax(mind))
        if t + 1 < quota:
            gain[nxt] = max(mind[nxt], 0.0)
    top = gain.max() if gain.max() > 0 else 1.0
    values = np.where(mind < 0, 1.0, np.clip(mind, 0, None) / max(top, 1e-12) * 0.5)
    values[chosen] = 0.5 + 0.5 * np.clip(gain[chosen] / top, 0, 1)
    values[first] = 1.0
    return chosen, values


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
    dozen dimensions (115 s at 100k x 32 on one core), not meant for millions (`auto` switches
    to `cluster` above 50k rows).
    """

    name = "condense"
    description = "edited + condensed nearest neighbours (multi-class, regression-aware)"

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
        check_param("n_neighbors", self.n_neighbors, 1, integer=True)
        check_param("tolerance", self.tolerance, 1e-9)
        check_param("max_rounds", self.max_rounds, 0, integer=True)
        check_param("radius", self.radius, 0.0)
        check_param("repeat_share", self.repeat_share, 0.0, 1.0)
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
