"""Geometry on standardized features shared by the strategies: k-means cells, nearest
neighbours, near-duplicate groups, k-center greedy. None of it builds an n x n matrix:
clustering is (MiniBatch)KMeans, neighbours come from scikit-learn's trees."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def auto_clusters(n: int, quota: int, max_clusters: int) -> int:
    """Clusters for a stratum of n samples: about sqrt(n / 2), at most max_clusters and at most
    the quota (so every cluster can keep one sample)."""
    return int(max(1, min(quota, max_clusters, round(math.sqrt(n / 2)))))


def kmeans_partition(Z: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(cluster label (n,), distance to own centroid (n,)). KMeans up to 10k rows, MiniBatchKMeans above."""
    n = len(Z)
    if k <= 1 or n <= 1:
        centre = Z.mean(0, dtype=np.float64).astype(np.float32)
        return np.zeros(n, dtype=np.int64), row_dist(Z, centre[None, :], np.zeros(n, dtype=np.int64))
    model = kmeans_model(n, k, seed)
    labels = model.fit_predict(Z).astype(np.int64)
    return labels, row_dist(Z, model.cluster_centers_.astype(np.float32), labels)


def kmeans_model(n: int, k: int, seed: int) -> Any:
    """The (unfitted) k-means for n rows: KMeans up to 10k rows, MiniBatchKMeans above."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    if n <= 10_000:
        return KMeans(n_clusters=k, n_init=1, max_iter=100, random_state=seed)
    return MiniBatchKMeans(n_clusters=k, batch_size=4096, n_init=1, max_iter=30, max_no_improvement=5,
                           random_state=seed)


def row_dist(Z: np.ndarray, centres: np.ndarray, labels: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
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
    """Group id per row (int64 (n,)): identical rows always share a group; beyond that, connected
    components of the k-NN graph restricted to edges of length <= `radius` (near duplicates, e.g.
    repeated runs of one workload). Sparse: n x k edges at most."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components
    from sklearn.neighbors import NearestNeighbors

    n = len(Z)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    # identical rows first: a k-NN graph over hundreds of exact copies need not connect them
    uniq, inverse = np.unique(Z, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    m = len(uniq)
    k = min(k, m - 1)
    if k < 1 or radius <= 0:
        return inverse.astype(np.int64)
    dist, nb = NearestNeighbors(n_neighbors=k + 1).fit(uniq).kneighbors(uniq)
    close = dist <= radius
    rows = np.repeat(np.arange(m), k + 1)[close.ravel()]
    graph = csr_matrix((np.ones(len(rows), dtype=np.int8), (rows, nb.ravel()[close.ravel()])), shape=(m, m))
    return connected_components(graph, directed=False)[1].astype(np.int64)[inverse]


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
