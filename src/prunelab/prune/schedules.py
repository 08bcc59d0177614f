"""Pruning schedules: pure functions of step counts, no torch. The schedule
objects users pick by name (`OneShot`, `Gradual`, `Lottery`, registry
`SCHEDULES`) live in `prunelab.prune.engine.schedules` and call these.

- `oneshot`: prune to the target once, then fine-tune.
- `gradual` (Zhu & Gupta 2017, the default of TensorFlow's model-optimization
  toolkit): s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt))^3 for
  t = t0, t0 + dt, ..., t0 + n * dt; sparsity rises fast first, then slowly.
- `lottery` (Frankle & Carbin 2019, iterative magnitude pruning): each round
  prunes 20% of the remaining weights, rewinds the survivors to their initial
  values and retrains; round r reaches 1 - 0.8^r (the last round is clipped
  to the target).
"""

from __future__ import annotations

import math

from prunelab.errors import UserError


def gradual_sparsity(t: int, s_i: float, s_f: float, t0: int, n: int, dt: int = 1) -> float:
    """Zhu & Gupta's cubic schedule: the target sparsity at step `t`.

    s_i: initial sparsity, s_f: final sparsity, t0: first pruning step,
    n: number of pruning updates, dt: steps between updates. Before t0 it is
    s_i; from t0 + n * dt on it is s_f; in between it holds the value of the
    last update (pruning happens every dt steps only).
    """
    if n < 1 or dt < 1:
        raise UserError(f"gradual schedule needs n >= 1 and dt >= 1, got n={n}, dt={dt}")
    if t < t0:
        return s_i
    updates = min((t - t0) // dt, n)
    return s_f + (s_i - s_f) * (1.0 - updates / n) ** 3


def gradual_plan(total_steps: int, s_i: float, s_f: float, prune_fraction: float = 0.5,
                 updates: int = 20) -> tuple[int, int, int]:
    """(t0, n, dt) spreading `updates` pruning steps over the first
    `prune_fraction` of `total_steps`, leaving the rest to recover at s_f."""
    span = max(1, min(total_steps - 1, int(total_steps * prune_fraction)))
    n = max(1, min(updates, span))
    dt = max(1, span // n)
    return 0, n, dt


def lottery_rounds(target: float, rate: float = 0.2, start: float = 0.0) -> list[float]:
    """Sparsity after each round of iterative magnitude pruning: each round
    prunes `rate` of the remaining weights, 1 - (1 - start)(1 - rate)^r,
    the last round clipped to `target`. Empty when start >= target."""
    if not 0.0 < rate < 1.0:
        raise UserError(f"lottery pruning rate must be in (0, 1), got {rate}")
    if target <= start:
        return []
    rounds = math.ceil(math.log((1.0 - target) / (1.0 - start)) / math.log(1.0 - rate) - 1e-9)
    out = [1.0 - (1.0 - start) * (1.0 - rate) ** r for r in range(1, rounds + 1)]
    out[-1] = target
    return out
