"""Structured pruning: choose which whole neurons (Linear rows) and conv
filters to remove.

Units are ranked by the engine's criterion summed over their incoming
weights: with 'l1', the L1 norm (Li et al. 2017, "Pruning Filters for
Efficient ConvNets"); global ranking divides by the fan-in so layers of
different widths compare fairly. The counts follow the engine's exact rule
(`prunelab.prune.engine.structured.channels_to_remove`). The removal itself
is spec surgery (`prunelab.models.surgery`: rows, columns and folded biases
of a stored model, torch-free): the child is a smaller *spec*, stored as
arrays and rebuilt from JSON like any other model (the engine's
Torch-Pruning path cuts a live module instead).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from prunelab.errors import UserError
from prunelab.models.spec import ModelSpec
from prunelab.models.surgery import Link, dead_units, links, remove_units, shrink, units_removed
from prunelab.prune.engine.criteria import Criterion, get_criterion
from prunelab.prune.engine.structured import channels_to_remove
from prunelab.prune.masks import check_sparsity


def select_units(
    spec: ModelSpec,
    weights: Mapping[str, np.ndarray],
    sparsity: float,
    *,
    scope: str = "layer",
    ignore: Iterable[str] = (),
    layer_sparsity: Mapping[str, float] | None = None,
    criterion: str | Criterion = "l1",
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """layer name -> sorted indices of the units to KEEP.

    A unit scores the sum of the engine criterion's scores over its incoming
    weights (criterion 'l1': the L1 norm of its row/filter). scope='layer':
    each hidden layer loses round(s * units) of its weakest units; 'global':
    round(s * all hidden units) go by score / fan-in (so layers of different
    fan-in compare), with the engine's exact-count rule
    (`channels_to_remove`). ignore: layers kept whole; layer_sparsity:
    per-layer fraction removed. Every layer keeps at least one unit. The
    output layer is never touched.
    """
    sparsity = check_sparsity(sparsity)
    crit = get_criterion(criterion)
    scores = {}
    fan_in = {}
    for i, link in enumerate(links(spec)):
        w = np.asarray(weights[f"{link.layer.name}.weight"])
        scores[link.layer.name] = crit.weight_scores(w, seed + i).reshape(w.shape[0], -1).sum(axis=1)
        fan_in[link.layer.name] = int(np.prod(w.shape[1:]))
    hidden = list(scores)
    last = spec.weight_layers()[-1].name
    for name in [*ignore, *(layer_sparsity or {})]:
        if name == last:
            raise UserError(f"{name} is the output layer: its units are the classes and are never removed")
        if name not in hidden:
            raise UserError(f"no hidden layer named {name!r}; hidden layers are: {', '.join(hidden)}")
    fixed = {n: check_sparsity(s, f"layer sparsity of {n}") for n, s in (layer_sparsity or {}).items()}
    removed: dict[str, np.ndarray] = {n: np.empty(0, dtype=np.int64) for n in hidden}
    for n, s in fixed.items():
        removed[n] = channels_to_remove([scores[n]], s, "layer")[0]
    pool = [n for n in hidden if n not in set(ignore) and n not in fixed]
    if pool:
        cut = channels_to_remove([scores[n] / fan_in[n] if scope == "global" else scores[n] for n in pool],
                                 sparsity, scope)
        removed.update(zip(pool, cut, strict=True))
    keep = {}
    for n in hidden:
        mask = np.ones(scores[n].size, dtype=bool)
        mask[removed[n]] = False
        keep[n] = np.flatnonzero(mask)
    return keep


# the spec surgery lives in prunelab.models.surgery (torch-free); re-exported for prunelab.prune's users
__all__ = ["Link", "dead_units", "links", "remove_units", "select_units", "shrink", "units_removed"]
