"""Criteria: what to prune first. Small registered objects, picked by name.

A criterion scores (1) every entry of a weight tensor, for unstructured
pruning, and (2) every channel of a Torch-Pruning dependency group, for
structured pruning. Lower scores go first. Which entries/channels and how
many is decided elsewhere (the exact-k functions of `prunelab.prune.masks`
and `prunelab.prune.engine.structured`), as Torch-Pruning separates the
importance from the pruner.

- `l1` (the default, "magnitude"): |w| per entry; the L1 norm of a
  channel's weights summed over the coupled layers of its group.
- `l2`: w^2 per entry (the same ranking as `l1` for single weights); the L2
  norm of a channel's weights for whole channels, which differs from L1.
- `random`: uniform scores from a seeded generator (the baseline every
  criterion must beat).

    from prunelab.prune.engine import list_criteria, get_criterion
    list_criteria()                 # ['l1', 'l2', 'random']
    get_criterion("l2").weight_scores(w, seed=0)   # np.ndarray shaped like w
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from prunelab.errors import UserError
from prunelab.prune.masks import as_numpy


@dataclass(frozen=True)
class Criterion:
    """Base class: `weight_scores` for single entries, `group_scores` for channels."""

    name: str = "criterion"
    help: str = ""

    def weight_scores(self, weight: torch.Tensor | np.ndarray, seed: int) -> np.ndarray:
        """Non-negative float64 scores shaped like `weight` (a tensor or array); lowest pruned first."""
        raise NotImplementedError

    def group_scores(self, group: Any, seed: int, normalize: bool) -> torch.Tensor:
        """Scores of the channels of a Torch-Pruning group, shape (channels,).

        normalize: divide by the group's mean so that groups of different
        widths and scales compare fairly in a global ranking."""
        raise NotImplementedError


@dataclass(frozen=True)
class Norm(Criterion):
    """Magnitude: |w|^p per entry, the group p-norm per channel."""

    p: int = 1

    def weight_scores(self, weight: torch.Tensor | np.ndarray, seed: int) -> np.ndarray:
        w = np.abs(as_numpy(weight).astype(np.float64))
        return w if self.p == 1 else w**self.p

    def group_scores(self, group: Any, seed: int, normalize: bool) -> torch.Tensor:
        import torch_pruning as tp

        imp = tp.importance.GroupMagnitudeImportance(p=self.p, group_reduction="mean",
                                                     normalizer="mean" if normalize else None)
        return imp(group).detach().double().cpu()


@dataclass(frozen=True)
class Random(Criterion):
    """Uniform random scores; `seed` makes them reproducible."""

    def weight_scores(self, weight: torch.Tensor | np.ndarray, seed: int) -> np.ndarray:
        return np.random.default_rng(seed).random(tuple(weight.shape))

    def group_scores(self, group: Any, seed: int, normalize: bool) -> torch.Tensor:
        channels = len(group[0][1])
        return torch.rand(channels, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


CRITERIA: dict[str, Criterion] = {
    "l1": Norm(name="l1", p=1, help="weight magnitude |w|; channels by the L1 norm of their group"),
    "l2": Norm(name="l2", p=2, help="weight magnitude w^2; channels by the L2 norm of their group"),
    "random": Random(name="random", help="uniform random (seeded): the baseline"),
}


def list_criteria() -> list[str]:
    """Names accepted by `prune_module(..., criterion=NAME)`."""
    return list(CRITERIA)


def get_criterion(name: str | Criterion) -> Criterion:
    """The registered criterion `name` (a `Criterion` instance passes through)."""
    if isinstance(name, Criterion):
        return name
    if name not in CRITERIA:
        raise UserError(f"unknown criterion {name!r}; choose from {', '.join(CRITERIA)}")
    return CRITERIA[name]
