"""Schedules: when to prune, as small objects shaped like LR schedulers.

A schedule maps the number of `Pruning.step()` calls made so far, t, to the
target sparsity at that point; `steps` is the t at which the final target
is reached (0 for one-shot). The formulas are the pure functions of
`prunelab.prune.schedules`; these objects only hold their parameters.

- `oneshot`: s(t) = s_f for every t >= 0 (pruned when `prune_module` returns).
- `gradual` (Zhu & Gupta 2017): s(t) = s_f + (s_i - s_f)(1 - u(t)/n)^3 with
  u(t) the number of pruning updates done by step t (one every dt steps,
  n of them over the first `prune_fraction` of `steps`), and s(steps) = s_f
  exactly. Call `pruning.step()` after each optimizer step.
- `lottery` (Frankle & Carbin 2019): t counts rounds; round r reaches
  1 - (1 - s_i)(1 - rate)^r, the last round clipped to s_f. Train, then
  `pruning.step()` and `pruning.rewind()`, once per round.

    from prunelab.prune.engine import Gradual, list_schedules
    prune_module(net, 0.9, schedule=Gradual(steps=len(loader) * epochs))
    prune_module(net, 0.9, schedule="gradual", steps=600)   # the same
"""

from __future__ import annotations

from dataclasses import dataclass

from prunelab.errors import UserError
from prunelab.prune.schedules import gradual_plan, gradual_sparsity, lottery_rounds


@dataclass(frozen=True)
class Schedule:
    """Base class. `target(t, s_i, s_f)`: sparsity after t steps."""

    name = "schedule"

    def steps_to_target(self, s_i: float, s_f: float) -> int:
        """The number of `step()` calls after which the target is reached."""
        return 0

    def target(self, t: int, s_i: float, s_f: float) -> float:
        return s_f


@dataclass(frozen=True)
class OneShot(Schedule):
    """Prune to the target at once."""

    name = "oneshot"


@dataclass(frozen=True)
class Gradual(Schedule):
    """Zhu & Gupta's cubic ramp over `steps` optimizer steps.

    steps: total optimizer steps of the user's loop (>= 1); the ramp uses the
    first `prune_fraction` of them with `updates` mask updates, the rest
    recovers at the final sparsity."""

    name = "gradual"
    steps: int = 0
    prune_fraction: float = 0.5
    updates: int = 20

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise UserError(f"the gradual schedule needs the total number of optimizer steps, "
                            f"e.g. schedule=Gradual(steps=len(loader) * epochs); got steps={self.steps!r}")
        if not 0.0 < self.prune_fraction <= 1.0:
            raise UserError(f"prune_fraction must be in (0, 1], got {self.prune_fraction!r}")
        if not isinstance(self.updates, int) or self.updates < 1:
            raise UserError(f"updates must be a positive integer, got {self.updates!r}")

    def steps_to_target(self, s_i: float, s_f: float) -> int:
        return self.steps

    def target(self, t: int, s_i: float, s_f: float) -> float:
        if t >= self.steps:
            return s_f
        t0, n, dt = gradual_plan(self.steps, s_i, s_f, self.prune_fraction, self.updates)
        return gradual_sparsity(t, s_i, s_f, t0, n, dt)


@dataclass(frozen=True)
class Lottery(Schedule):
    """Iterative magnitude pruning with rewinding: each round prunes `rate`
    of the remaining weights; one `step()` per round."""

    name = "lottery"
    rate: float = 0.2

    def __post_init__(self) -> None:
        if not 0.0 < self.rate < 1.0:
            raise UserError(f"the lottery pruning rate must be in (0, 1) like 0.2, got {self.rate!r}")

    def steps_to_target(self, s_i: float, s_f: float) -> int:
        return len(lottery_rounds(s_f, self.rate, s_i))

    def target(self, t: int, s_i: float, s_f: float) -> float:
        rounds = lottery_rounds(s_f, self.rate, s_i)
        if t <= 0 or not rounds:
            return s_i if rounds else s_f
        return rounds[min(t, len(rounds)) - 1]


SCHEDULES: dict[str, type[Schedule]] = {"oneshot": OneShot, "gradual": Gradual, "lottery": Lottery}


def list_schedules() -> list[str]:
    """Names accepted by `prune_module(..., schedule=NAME)`."""
    return list(SCHEDULES)


def make_schedule(schedule: str | Schedule | None, steps: int | None = None) -> Schedule:
    """A schedule object from a name (None = one-shot) or an instance.
    steps: total optimizer steps, needed by `gradual` when given by name."""
    if isinstance(schedule, Schedule):
        if steps is not None:
            raise UserError("give steps= only with a schedule name; a Schedule object holds its own")
        return schedule
    name = "oneshot" if schedule is None else schedule
    if name not in SCHEDULES:
        raise UserError(f"unknown schedule {name!r}; choose from {', '.join(SCHEDULES)}")
    if name == "gradual":
        return Gradual(steps=steps if steps is not None else 0)
    if steps is not None:
        raise UserError(f"steps= is for the gradual schedule; {name!r} does not take it")
    return SCHEDULES[name]()
