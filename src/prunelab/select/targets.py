"""Labels and targets as the strategies use them: class codes, standardized regression
targets, agreement of a sample with its near-duplicate group, ranks."""

from __future__ import annotations

import numpy as np


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
