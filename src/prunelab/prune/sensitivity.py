"""Per-layer sensitivity: how much accuracy each layer loses when pruned alone.

For every prunable layer and every sparsity in a grid, the layer alone is
pruned by the engine (`prune_with`, one-shot, scope "layer", every other
layer ignored; no fine-tuning) and the network evaluated on the validation
split held out of the data the model was trained on (the parent's own split,
or the default share when it trained on everything): budgets chosen from the
curves never see the test split, which only reports. `SensitivityResult.budget(S)` turns the
curves into per-layer sparsities reaching an overall S with the least
predicted loss: every layer gets the highest sparsity whose predicted drop
stays under one shared tolerance, found by bisection (the approach of
Distiller's sensitivity analysis), then the largest layer absorbs rounding.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from prunelab.data.datasets import Dataset
from prunelab.errors import UserError
from prunelab.models.model import Model
from prunelab.progress import Callback, Event
from prunelab.prune.engine.pruning import PruneSettings, prune_with
from prunelab.prune.engine.schedules import OneShot
from prunelab.prune.masks import check_sparsity
from prunelab.prune.parent import resolve_model, training_data
from prunelab.train import evaluate, set_threads, to_input

DEFAULT_SPARSITIES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


@dataclass
class SensitivityResult:
    """accuracy[layer][i]: accuracy (on the split in `evaluated_on`) with only `layer` pruned to sparsities[i].

    sizes: weights per layer; dense_accuracy: the unpruned model's accuracy.
    """

    model: str | None
    sparsities: list[float]
    accuracy: dict[str, list[float]]
    sizes: dict[str, int]
    dense_accuracy: float
    seconds: float
    evaluated_on: dict[str, Any] = field(default_factory=dict)

    def drops(self, layer: str) -> tuple[np.ndarray, np.ndarray]:
        """(sparsities with 0 prepended, monotone accuracy drop in pp-fractions)."""
        s = np.array([0.0, *self.sparsities])
        d = np.array([0.0, *(self.dense_accuracy - a for a in self.accuracy[layer])])
        return s, np.maximum.accumulate(np.maximum(d, 0.0))

    def _sparsity_at(self, layer: str, tol: float) -> float:
        s, d = self.drops(layer)
        ok = np.flatnonzero(d <= tol)
        i = int(ok[-1])
        if i + 1 < len(s) and d[i + 1] > d[i]:  # interpolate towards the next grid point
            frac = (tol - d[i]) / (d[i + 1] - d[i])
            return float(s[i] + max(0.0, min(1.0, frac)) * (s[i + 1] - s[i]))
        return float(s[i])

    def budget(self, target: float, ignore: Iterable[str] = ()) -> dict[str, float]:
        """Weight name -> sparsity, reaching `target` overall (to rounding) with
        the least predicted loss; `ignore`d layers stay dense."""
        target = check_sparsity(target, "--target")
        ignored = set(ignore)
        layers = [n for n in self.sizes if n not in ignored]
        total = sum(self.sizes.values())
        need = target * total
        cap = max(self.sparsities)
        if sum(self.sizes[n] for n in layers) * cap < need:
            raise UserError(f"overall sparsity {target} is out of reach with the scanned sparsities (max {cap}) "
                            "and the ignored layers; lower the target")
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = (lo + hi) / 2
            reached = sum(self._sparsity_at(n, mid) * self.sizes[n] for n in layers)
            lo, hi = (lo, mid) if reached >= need else (mid, hi)
        out = {n: self._sparsity_at(n, hi) for n in layers}
        big = max(layers, key=lambda n: self.sizes[n])
        rest = sum(out[n] * self.sizes[n] for n in layers if n != big)
        out[big] = float(min(cap, max(0.0, (need - rest) / self.sizes[big])))
        if out[big] * self.sizes[big] + rest < need - 1:  # the big layer hit its cap: spread the rest
            for n in sorted(layers, key=lambda n: -self.sizes[n]):
                missing = need - sum(out[m] * self.sizes[m] for m in layers)
                if missing <= 0:
                    break
                out[n] = float(min(cap, out[n] + missing / self.sizes[n]))
        return {n: round(v, 6) for n, v in out.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "sparsities": self.sparsities, "accuracy": self.accuracy,
                "sizes": self.sizes, "dense_accuracy": self.dense_accuracy, "seconds": self.seconds,
                "evaluated_on": self.evaluated_on}

    def table(self) -> str:
        """Human table: one row per layer, one column per sparsity."""
        head = f"{'layer':14} {'weights':>8} " + " ".join(f"{s:>6.0%}" if s * 100 == int(s * 100)
                                                        else f"{s:>6.1%}" for s in self.sparsities)
        rows = [head]
        for n, accs in self.accuracy.items():
            rows.append(f"{n:14} {self.sizes[n]:>8,} " + " ".join(f"{a:>6.2%}" for a in accs))
        return "\n".join(rows)

    def plot(self, path: str | Path) -> Path:
        """Write a PNG: accuracy vs sparsity, one line per layer (Agg backend)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from prunelab.atomic import write_atomic

        path = Path(path)
        if path.suffix.lower() != ".png":
            raise UserError(f"--plot must name a .png file, got {str(path)!r}")
        if not path.parent.is_dir():
            raise UserError(f"folder {path.parent} does not exist; create it or pick another --plot path")
        fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
        for n, accs in self.accuracy.items():
            ax.plot([s * 100 for s in self.sparsities], [a * 100 for a in accs], marker="o", ms=3,
                    label=f"{n} ({self.sizes[n]:,})")
        ax.axhline(self.dense_accuracy * 100, color="gray", ls="--", lw=1, label="dense")
        ax.set_xlabel("sparsity of that layer alone (%)")
        split = self.evaluated_on.get("split", "test")
        ax.set_ylabel(f"{split} accuracy without fine-tuning (%)")
        ax.set_title(f"Per-layer pruning sensitivity of {self.model or 'model'}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        write_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))
        plt.close(fig)
        return path

    def __repr__(self) -> str:
        return (f"SensitivityResult(model={self.model!r}, layers={list(self.accuracy)}, "
                f"dense_accuracy={self.dense_accuracy:.4f}, seconds={self.seconds:.1f})")


def sensitivity(
    model: Model | str,
    sparsities: Sequence[float] = DEFAULT_SPARSITIES,
    *,
    dataset: Dataset | None = None,
    store: Any = None,
    limit: int | None = None,
    threads: int | None = None,
    callback: Callback | None = None,
    criterion: str = "l1",
) -> SensitivityResult:
    """Scan every prunable layer at `sparsities` (each in [0, 1)) without fine-tuning.

    limit: evaluate on the first `limit` validation images only (all by default).
    criterion: the engine's criterion that ranks the weights (`list_criteria()`).
    A layer already sparser than a grid point keeps its current mask there.
    """
    t0 = time.perf_counter()
    grid = sorted({check_sparsity(s, "--sparsities") for s in sparsities})
    if not grid:
        raise UserError("--sparsities needs at least one value like 0.5,0.9")
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be a positive integer, got {limit}")
    parent, _ = resolve_model(model, store)
    set_threads(threads)
    ds, info = training_data(parent, dataset)
    assert ds.x_val is not None and ds.y_val is not None  # training_data always carves one
    x = to_input(ds.x_val[:limit])
    y = torch.from_numpy(ds.y_val[:limit])
    module = parent.to_torch()
    dense = evaluate(module, x, y, classes=ds.classes).accuracy
    cb = callback or (lambda e: None)
    names = parent.weight_names()
    layers = [n.removesuffix(".weight") for n in names]
    accuracy: dict[str, list[float]] = {}
    total = len(names) * len(grid)
    step = 0
    for name, layer in zip(names, layers, strict=True):
        # the engine counts a layer's zeros as pruned: a pruned parent's layer never gets denser
        already = float(np.count_nonzero(parent.weights[name] == 0)) / parent.weights[name].size
        others = tuple(v for v in layers if v != layer)
        accs = []
        for s in grid:
            trial = copy.deepcopy(module)
            prune_with(trial, PruneSettings(sparsity=max(s, already), scope="layer", criterion=criterion,
                                            schedule=OneShot(), ignore=others))
            accs.append(evaluate(trial, x, y, classes=ds.classes).accuracy)
            step += 1
            cb(Event("batch", phase="sensitivity", step=step, total_steps=total, accuracy=accs[-1],
                     message=f"{name} at {s:.0%}"))
        accuracy[name] = accs
    sizes = {n: int(parent.weights[n].size) for n in names}
    return SensitivityResult(model=parent.id or parent.name, sparsities=grid, accuracy=accuracy, sizes=sizes,
                             dense_accuracy=dense, seconds=time.perf_counter() - t0,
                             evaluated_on={"dataset": ds.name, "split": "validation", "count": int(len(y)),
                                          "seen_in_training": bool(info["val_seen_by_parent"])})
