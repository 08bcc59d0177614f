"""The `mnist` suite: the same MLP trained on subsets chosen by each strategy (accuracy vs data).

Selectors see PCA(50) features of the training images (fitted on the training split, so no
n x 784 distance work). The network is lenet-300-100 (784-300-100-10), trained with
prunelab.train.fit (Adam, lr 1e-3, batch 128, cosine schedule). Every subset gets the same
number of optimisation steps as the full set trained for `epochs` epochs, so the curve measures
the value of the data, not of extra compute. Test accuracy on the 10k test split.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from prunelab.validate.checks import Check, Thresholds

KEEPS = (0.1, 0.2, 0.3, 0.5, 1.0)
BATCH = 128


def features(x: np.ndarray, dims: int = 50, seed: int = 0) -> np.ndarray:
    """PCA(dims) of flattened images scaled to [0, 1]: float32 (n, dims)."""
    from sklearn.decomposition import PCA

    flat = x.reshape(len(x), -1).astype(np.float32) / 255.0
    return PCA(n_components=min(dims, flat.shape[1], len(x)), svd_solver="randomized",
               random_state=seed).fit_transform(flat).astype(np.float32)


def train_subset(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, epochs: int,
                 seed: int) -> tuple[float, float]:
    """(test accuracy, seconds) of lenet-300-100 trained on (x, y) for `epochs` epochs."""
    import torch

    from prunelab.models.builder import build
    from prunelab.models.presets import create_spec
    from prunelab.train import evaluate, fit, to_input

    spec = create_spec("lenet-300-100")
    torch.manual_seed(seed)
    module = build(spec)
    t0 = time.perf_counter()
    fit(module, to_input(x), torch.from_numpy(y), epochs=epochs, lr=1e-3, batch_size=BATCH, seed=seed)
    seconds = time.perf_counter() - t0
    return evaluate(module, to_input(x_test), torch.from_numpy(y_test), classes=10).accuracy, seconds


def run(seeds: list[int], quick: bool = False, thresholds: Thresholds | None = None, epochs: int | None = None,
        threads: int = 1, train_limit: int | None = None, keeps: tuple[float, ...] | None = None,
        progress: Callable[[str], None] | None = None) -> tuple[list[dict[str, Any]], list[Check]]:
    """Run the suite over `seeds`; `quick` = 2,000 training images, 1,000 test images, 1 epoch, keeps 30/100%.

    Methods: every non-auto strategy at each keep, `auto` at 30 % and `auto` choosing the fraction
    (on the PCA features; its own search uses its default k-NN, the network only reports)."""
    import torch

    import prunelab
    from prunelab.data.datasets import load_dataset, stratified_subset

    th = thresholds or Thresholds()
    say = progress or (lambda msg: None)
    torch.set_num_threads(threads)
    ds = load_dataset("mnist")
    x, y, x_test, y_test = ds.x_train, ds.y_train, ds.x_test, ds.y_test
    limit = train_limit or (2000 if quick else None)
    if limit:
        tr = stratified_subset(y, limit, seed=0)
        x, y = x[tr], y[tr]
    if quick:
        te = stratified_subset(y_test, 1000, seed=0)
        x_test, y_test = x_test[te], y_test[te]
    epochs = epochs or (1 if quick else 5)
    keeps = keeps or ((0.3, 1.0) if quick else KEEPS)
    Z = features(x)
    full_steps = epochs * math.ceil(len(y) / BATCH)
    dataset = f"mnist-{len(y)}"
    rows: list[dict[str, Any]] = []
    for seed in seeds:
        full_acc, full_sec = train_subset(x, y, x_test, y_test, epochs, seed)
        say(f"mnist: seed {seed} full set {100 * full_acc:.2f}% ({full_sec:.0f} s)")
        base = {"suite": "mnist", "family": "mnist", "dataset": dataset, "task": "classification", "seed": seed,
                "size": len(y), "metric": "accuracy %", "redundant": None, "quality": True,
                "score_full": 100.0 * full_acc, "classes_total": int(len(np.unique(y)))}
        rows.append({**base, "method": "full", "strategy": "full", "keep": 1.0, "kept_count": len(y),
                     "kept_fraction": 1.0, "score": 100.0 * full_acc, "delta": 0.0, "train_seconds": full_sec,
                     "select_seconds": 0.0, "rows_saving": 0.0, "epochs": epochs})
        plan: list[tuple[str, str, float | None]] = [
            (s, s, k) for s in prunelab.select.list_strategies() if s != "auto" for k in keeps if k < 1.0]
        plan += [("auto", "auto", 0.3), ("auto-fraction", "auto", None)]
        for method, strategy, keep in plan:
            sel = prunelab.select(Z, y, keep=keep, strategy=strategy, task="classification", random_state=seed)
            idx = sel.indices
            sub_epochs = max(1, round(full_steps / math.ceil(len(idx) / BATCH)))
            acc, sec = train_subset(x[idx], y[idx], x_test, y_test, sub_epochs, seed)
            saving = 1.0 - (x[idx].nbytes + y[idx].nbytes) / (x.nbytes + y.nbytes)
            rep = sel.report
            rows.append({**base, "method": method, "strategy": rep.strategy, "keep": keep,
                         "requested_count": int(rep.requested_count), "kept_count": int(len(idx)),
                         "kept_fraction": len(idx) / len(y),
                         "floors": [str(getattr(f, "name", f)) for f in rep.floors],
                         "indices_ok": bool(np.all(np.diff(idx) > 0) and idx[0] >= 0 and idx[-1] < len(y)),
                         "classes_kept": int(len(np.unique(y[idx]))), "score": 100.0 * acc,
                         "delta": 100.0 * (acc - full_acc), "train_seconds": sec,
                         "select_seconds": float(rep.seconds), "rows_saving": saving, "epochs": sub_epochs})
            say(f"mnist: {method} keep {'auto' if keep is None else f'{keep:.0%}'}: {100 * acc:.2f}% "
                f"(kept {len(idx)}, full {100 * full_acc:.2f}%)")
    return rows, checks(rows, th)


def checks(rows: list[dict[str, Any]], th: Thresholds) -> list[Check]:
    """Quality checks of the network trained on auto's subsets (means over seeds)."""
    def mean(method: str, keep: float | None, key: str = "score") -> float | None:
        vals = [r[key] for r in rows if r["method"] == method and r["keep"] == keep]
        return float(np.mean(vals)) if vals else None

    out: list[Check] = []
    if not rows:
        return out
    scope = f"mnist {rows[0]['dataset']} classification"
    full = float(np.mean([r["score_full"] for r in rows]))
    auto, rnd = mean("auto", 0.3), mean("random", 0.3)
    if auto is not None and rnd is not None:
        out.append(Check("auto_keep_vs_random", scope, auto - rnd >= th.min_gain_pp, auto - rnd, th.min_gain_pp,
                         "MLP on auto's 30 % - MLP on random 30 % (pp) >= threshold",
                         f"auto {auto:.2f}% vs random {rnd:.2f}%"))
        out.append(Check("auto_keep_vs_full", scope, full - auto <= th.mnist_max_loss_pp, full - auto,
                         th.mnist_max_loss_pp, "full - MLP on auto's 30 % (pp) <= threshold",
                         f"auto {auto:.2f}% vs full {full:.2f}%"))
    frac = mean("auto-fraction", None)
    if frac is not None:
        kept = mean("auto-fraction", None, "kept_fraction") or 0.0
        out.append(Check("auto_fraction_loss", scope, full - frac <= th.mnist_max_loss_pp, full - frac,
                         th.mnist_max_loss_pp, "full - MLP on auto's own fraction (pp) <= threshold",
                         f"auto kept {kept:.1%}: {frac:.2f}% vs full {full:.2f}%"))
    return out
