"""Magnitude masks: pure functions over numpy (or torch) weight arrays.

A mask is a bool array shaped like its weight, True = kept. Every function
prunes *exactly* k = round(s * N) entries (Python's round, the same rule as
`torch.nn.utils.prune`), so the achieved sparsity equals the target to one
weight. Ties in magnitude are broken deterministically: among equal
magnitudes the entry that comes first (layer order, then row-major index)
is pruned first. Entries already pruned by a previous mask (`masks=`) always
go first, so pruning a pruned model never revives a weight.

    w = {"fc1.weight": np.random.randn(300, 784), "fc2.weight": ...}
    m = global_magnitude_masks(w, 0.9)          # one threshold across layers
    m = layer_magnitude_masks(w, 0.9)           # every layer to 90%
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from prunelab.errors import UserError

ArrayLike = Any  # numpy array or torch tensor


def as_numpy(a: ArrayLike) -> np.ndarray:
    """A numpy view/copy of a numpy array or a (cpu/gpu, grad or not) torch tensor."""
    if isinstance(a, np.ndarray):
        return a
    if hasattr(a, "detach"):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def check_sparsity(s: Any, what: str = "--sparsity") -> float:
    """A sparsity must be a real number in [0, 1); returns it as float."""
    try:
        value = float(s)
    except (TypeError, ValueError):
        raise UserError(f"{what} must be a number in [0, 1) like 0.9, got {s!r}") from None
    if isinstance(s, bool) or not math.isfinite(value) or not 0.0 <= value < 1.0:
        raise UserError(f"{what} must be a number in [0, 1) like 0.9 (fraction of weights zeroed), got {s!r}")
    return value


def prune_count(sparsity: float, n: int) -> int:
    """Number of entries to zero: round(s * n), as torch.nn.utils.prune does."""
    return int(round(sparsity * n))


def scores(weight: ArrayLike, mask: ArrayLike | None = None) -> np.ndarray:
    """Flat float64 importance |w|; entries pruned by `mask` score -1 (pruned first)."""
    s = np.abs(as_numpy(weight).astype(np.float64, copy=False)).ravel()
    if mask is not None:
        s = np.where(as_numpy(mask).astype(bool).ravel(), s, -1.0)
    return s


def lowest_k(flat_scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k lowest scores; ties go to the lower index (stable sort)."""
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    return np.argsort(flat_scores, kind="stable")[:k]


def magnitude_mask(weight: ArrayLike, sparsity: float, mask: ArrayLike | None = None) -> np.ndarray:
    """Bool mask for one tensor with exactly round(s * N) entries pruned."""
    w = as_numpy(weight)
    sparsity = check_sparsity(sparsity)
    flat = scores(w, mask)
    keep = np.ones(flat.size, dtype=bool)
    keep[lowest_k(flat, prune_count(sparsity, flat.size))] = False
    return keep.reshape(w.shape)


def _split_targets(
    names: list[str],
    ignore: Iterable[str],
    layer_sparsity: Mapping[str, float],
) -> tuple[set[str], dict[str, float]]:
    unknown = [n for n in [*ignore, *layer_sparsity] if n not in names]
    if unknown:
        raise UserError(f"unknown layer(s) {', '.join(map(repr, unknown))}; prunable weights are: {', '.join(names)}")
    fixed = {n: check_sparsity(s, f"layer sparsity of {n}") for n, s in layer_sparsity.items()}
    ignored = set(ignore) - set(fixed)
    return ignored, fixed


def layer_magnitude_masks(
    weights: Mapping[str, ArrayLike],
    sparsity: float,
    *,
    ignore: Iterable[str] = (),
    layer_sparsity: Mapping[str, float] | None = None,
    masks: Mapping[str, ArrayLike] | None = None,
) -> dict[str, np.ndarray]:
    """Every tensor pruned to `sparsity` by its own magnitude ranking.

    weights: name -> array (any shape). ignore: names left dense (all True).
    layer_sparsity: name -> sparsity overriding `sparsity` for that tensor.
    masks: existing masks; their pruned entries stay pruned (a tensor already
    sparser than its target keeps its current mask).
    Returns name -> bool mask for every name in `weights`.
    """
    sparsity = check_sparsity(sparsity)
    names = list(weights)
    ignored, fixed = _split_targets(names, ignore, layer_sparsity or {})
    out: dict[str, np.ndarray] = {}
    for name in names:
        w = as_numpy(weights[name])
        old = as_numpy(masks[name]).astype(bool) if masks and name in masks else None
        if name in ignored:
            out[name] = old.copy() if old is not None else np.ones(w.shape, dtype=bool)
            continue
        k = prune_count(fixed.get(name, sparsity), w.size)
        if old is not None:
            k = max(k, int((~old).sum()))  # never revive: a sparser tensor stays as sparse
        keep = np.ones(w.size, dtype=bool)
        keep[lowest_k(scores(w, old), k)] = False
        out[name] = keep.reshape(w.shape)
    return out


def global_magnitude_masks(
    weights: Mapping[str, ArrayLike],
    sparsity: float,
    *,
    ignore: Iterable[str] = (),
    layer_sparsity: Mapping[str, float] | None = None,
    masks: Mapping[str, ArrayLike] | None = None,
) -> dict[str, np.ndarray]:
    """One magnitude threshold across all tensors: exactly round(s * N) of the
    N weights in `weights` (all of them, ignored and fixed ones included) are
    pruned, so the overall achieved sparsity is `sparsity` to one weight.

    Tensors in `ignore` stay dense and tensors in `layer_sparsity` are pruned
    to their own sparsity first; the rest of the budget is spent globally on
    the remaining tensors (an error when it does not fit).
    """
    sparsity = check_sparsity(sparsity)
    names = list(weights)
    ignored, fixed = _split_targets(names, ignore, layer_sparsity or {})
    out = layer_magnitude_masks({n: weights[n] for n in names if n in ignored or n in fixed}, 0.0,
                                ignore=[n for n in ignored], layer_sparsity=fixed,
                                masks={n: m for n, m in (masks or {}).items() if n in ignored or n in fixed})
    pool = [n for n in names if n not in ignored and n not in fixed]
    total = sum(as_numpy(weights[n]).size for n in names)
    k = prune_count(sparsity, total) - sum(int((~m).sum()) for m in out.values())
    pool_size = sum(as_numpy(weights[n]).size for n in pool)
    if pool and not 0 <= k <= pool_size:
        raise UserError(f"overall sparsity {sparsity} cannot be reached with the given ignored/fixed layers "
                        f"(the other layers would need {k / max(pool_size, 1):.1%}); change --sparsity, "
                        "--ignore-layers or --layer-sparsity")
    if not pool:
        return {n: out[n] for n in names}
    flat = np.concatenate([scores(weights[n], masks[n] if masks and n in masks else None) for n in pool])
    already = int((flat < 0).sum())
    if k < already:
        raise UserError(f"the model is already {already / pool_size:.2%} sparse in the pruned layers; "
                        "ask for a higher --sparsity")
    keep = np.ones(flat.size, dtype=bool)
    keep[lowest_k(flat, k)] = False
    offset = 0
    for n in pool:
        shape = as_numpy(weights[n]).shape
        size = int(np.prod(shape))
        out[n] = keep[offset : offset + size].reshape(shape)
        offset += size
    return {n: out[n] for n in names}


def random_masks(
    weights: Mapping[str, ArrayLike], sparsity: float, seed: int = 0, *, scope: str = "global"
) -> dict[str, np.ndarray]:
    """Baseline: exactly round(s * N) entries pruned uniformly at random
    (globally over all tensors, or per tensor with scope='layer')."""
    sparsity = check_sparsity(sparsity)
    rng = np.random.default_rng(seed)
    return (global_magnitude_masks if scope == "global" else layer_magnitude_masks)(
        {n: rng.random(as_numpy(w).shape) for n, w in weights.items()}, sparsity)


def mask_sparsity(masks: Mapping[str, ArrayLike]) -> float:
    """Fraction of entries pruned over all masks."""
    total = sum(as_numpy(m).size for m in masks.values())
    pruned = sum(int((~as_numpy(m).astype(bool)).sum()) for m in masks.values())
    return pruned / total if total else 0.0


def per_layer_sparsity(masks: Mapping[str, ArrayLike]) -> dict[str, float]:
    """name -> fraction pruned."""
    return {n: float((~as_numpy(m).astype(bool)).mean()) for n, m in masks.items()}


def resolve_layer_names(names: Iterable[str], weight_names: list[str]) -> list[str]:
    """Map user layer names ('fc3' or 'fc3.weight') to weight names; unknown ones fail."""
    out = []
    for name in names:
        name = str(name).strip()
        full = name if name in weight_names else f"{name}.weight"
        if full not in weight_names:
            layers = ", ".join(w.rsplit(".", 1)[0] for w in weight_names)
            raise UserError(f"no prunable layer named {name!r}; layers are: {layers}")
        out.append(full)
    return out
