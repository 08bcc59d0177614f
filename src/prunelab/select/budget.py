"""How many samples to keep, and from which stratum: exact counts with floors.

The budget is honoured exactly: `keep=0.3` of 1,000 samples keeps 300, split
across strata by largest remainder so the parts add up to the whole. Only a
floor may raise the count, and every floor that does is recorded:

- `min_keep`: never fewer than `min_keep` samples (or all of them if fewer);
- `classes`: never an empty class (one sample per class at least);

Per-group lower bounds (one per class, one per cluster where the budget
allows) go through `allocate`, which never exceeds a group's size.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from prunelab.errors import UserError


@dataclass(frozen=True)
class Floor:
    """A floor that changed the kept count: `name` raised it from `before` to `after`."""

    name: str
    before: int
    after: int
    reason: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def check_keep(keep: float | None, keep_count: int | None) -> None:
    """Validate the two ways of asking for a budget (exactly one may be given)."""
    if keep is not None and keep_count is not None:
        raise UserError("give either keep (a fraction) or keep_count (a number of samples), not both")
    if keep is not None:
        if isinstance(keep, bool) or not isinstance(keep, (int, float, np.floating, np.integer)):
            raise UserError(f"keep must be a fraction in (0, 1], got {keep!r}")
        if not (math.isfinite(float(keep)) and 0.0 < float(keep) <= 1.0):
            raise UserError(f"keep must be a fraction in (0, 1], got {keep}; e.g. keep=0.3 keeps 30%")
    if keep_count is not None:
        if isinstance(keep_count, bool) or not isinstance(keep_count, (int, np.integer)) or keep_count < 1:
            raise UserError(f"keep_count must be a positive integer, got {keep_count!r}")


def check_min_keep(min_keep: int) -> None:
    if isinstance(min_keep, bool) or not isinstance(min_keep, (int, np.integer)) or min_keep < 1:
        raise UserError(f"min_keep must be an integer >= 1, got {min_keep!r}")


def requested_count(n: int, keep: float | None = None, keep_count: int | None = None) -> int:
    """The count the caller asked for: round(keep * n) (half up) or keep_count, at most n."""
    if keep_count is not None:
        return min(int(keep_count), n)
    assert keep is not None
    return min(n, int(math.floor(float(keep) * n + 0.5)))


def apply_floors(requested: int, n: int, min_keep: int, n_classes: int = 0) -> tuple[int, list[Floor]]:
    """Raise `requested` to the floors; return (count, floors that changed it)."""
    count = requested
    floors: list[Floor] = []
    lowest = min(min_keep, n)
    if count < lowest:
        why = (f"min_keep={min_keep}" if n >= min_keep
               else f"only {n} samples, fewer than min_keep={min_keep}: all are kept")
        floors.append(Floor("min_keep", count, lowest, why))
        count = lowest
    if n_classes and count < n_classes:
        floors.append(Floor("classes", count, n_classes, f"every one of the {n_classes} classes keeps a sample"))
        count = n_classes
    return count, floors


def allocate(sizes: np.ndarray, total: int, lower: np.ndarray | int = 0,
             weights: np.ndarray | None = None) -> np.ndarray:
    """Split `total` across groups in proportion to `weights` (default: `sizes`).

    Largest remainder: each group gets floor(total * w / sum(w)); the leftover
    units go to the largest fractional parts. Each group gets at least
    min(lower, size) and at most its size. Requires
    sum(min(lower, size)) <= total <= sum(sizes). Returns int64 (groups,).
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    if total > int(sizes.sum()):
        raise ValueError(f"cannot keep {total} of {int(sizes.sum())} samples")
    lo = np.minimum(np.broadcast_to(np.asarray(lower, dtype=np.int64), sizes.shape), sizes)
    if int(lo.sum()) > total:
        raise ValueError(f"floors need {int(lo.sum())} samples but the budget is {total}")
    if total == 0:
        return np.zeros_like(sizes)
    w = sizes.astype(np.float64) if weights is None else np.asarray(weights, dtype=np.float64)
    w = np.where(sizes > 0, np.maximum(w, 0.0), 0.0)
    if w.sum() <= 0:
        w = sizes.astype(np.float64)
    ideal = total * w / w.sum()
    quota = np.clip(np.floor(ideal).astype(np.int64), lo, sizes)
    # Hand out (or take back) one unit at a time in bulk, by remainder, until the sum is exact.
    while True:
        diff = total - int(quota.sum())
        if diff == 0:
            return quota
        remainder = ideal - quota
        if diff > 0:
            room = np.flatnonzero(quota < sizes)
            take = room[np.argsort(-remainder[room], kind="stable")[:diff]]
            quota[take] += 1
        else:
            room = np.flatnonzero(quota > lo)
            take = room[np.argsort(remainder[room], kind="stable")[:-diff]]
            quota[take] -= 1


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
