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
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np

from prunelab.select.strategies import get_selector, list_strategies
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


def run(seeds: int = 1, quick: bool = False, thresholds: Thresholds | None = None, epochs: int | None = None,
        threads: int = 1, train_limit: int | None = None,
        progress: Callable[[str], None] | None = None) -> tuple[list[dict[str, Any]], list[Check]]:
    """Run the suite; `quick` = 2,000 training images, 1,000 test images, 1 epoch, keeps 30/50/100%."""
    import torch

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
    keeps = (0.3, 0.5, 1.0) if quick else KEEPS
    Z = features(x)
    full_steps = epochs * math.ceil(len(y) / BATCH)
    rows: list[dict[str, Any]] = []
    for seed in range(seeds):
        full_acc, full_sec = train_subset(x, y, x_test, y_test, epochs, seed)
        say(f"mnist: full set {100 * full_acc:.2f}% ({full_sec:.0f} s)")
        for strategy in list_strategies():
            if strategy == "auto":
                continue
            for keep in keeps:
                if keep >= 1.0:
                    if strategy == "random":
                        rows.append(_row(strategy, keep, seed, len(y), len(y), full_acc, full_acc, full_sec, 0.0,
                                         0.0, epochs))
                    continue
                sel = get_selector(strategy, keep=keep, random_state=seed).fit(Z, y)
                idx = sel.indices_
                sub_epochs = max(1, round(full_steps / math.ceil(len(idx) / BATCH)))
                acc, sec = train_subset(x[idx], y[idx], x_test, y_test, sub_epochs, seed)
                saving = 1.0 - (x[idx].nbytes + y[idx].nbytes) / (x.nbytes + y.nbytes)
                rows.append(_row(strategy, keep, seed, len(y), len(idx), acc, full_acc, sec, sel.report_.seconds,
                                 saving, sub_epochs))
                say(f"mnist: {strategy} keep {keep:.0%}: {100 * acc:.2f}% (full {100 * full_acc:.2f}%)")
    return rows, checks(rows, th)


def _row(strategy: str, keep: float, seed: int, n: int, kept: int, acc: float, full: float, train_sec: float,
         select_sec: float, saving: float, epochs: int) -> dict[str, Any]:
    return {"suite": "mnist", "method": strategy, "strategy": strategy, "keep": keep, "seed": seed,
            "original_count": n, "kept_count": kept, "kept_fraction": kept / n, "accuracy": acc,
            "accuracy_full": full, "delta_pp": 100.0 * (acc - full), "train_seconds": train_sec,
            "select_seconds": select_sec, "memory_saving": saving, "epochs": epochs}


def checks(rows: list[dict[str, Any]], th: Thresholds) -> list[Check]:
    by: dict[tuple[str, float], list[float]] = defaultdict(list)
    for r in rows:
        by[(r["method"], r["keep"])].append(r["accuracy"])
    mean = {k: float(np.mean(v)) for k, v in by.items()}
    full = float(np.mean([r["accuracy_full"] for r in rows])) if rows else 0.0
    out = []
    for keep, name in ((0.3, "mnist_keep30_vs_random"), (0.5, "mnist_keep50_vs_full")):
        cands = {m: a for (m, k), a in mean.items() if k == keep and m != "random"}
        if not cands or ("random", keep) not in mean:
            continue
        best = max(cands, key=lambda m: cands[m])
        if keep == 0.3:
            gain = 100 * (cands[best] - mean[("random", keep)])
            out.append(Check(name, "mnist keep 30%", gain >= th.mnist_min_gain_pp, gain, th.mnist_min_gain_pp,
                             "best non-random accuracy - random accuracy (pp) >= threshold",
                             f"best {best} {100 * cands[best]:.2f}% vs random {100 * mean[('random', keep)]:.2f}%"))
        else:
            loss = 100 * (full - cands[best])
            out.append(Check(name, "mnist keep 50%", loss <= th.mnist_max_loss_pp, loss, th.mnist_max_loss_pp,
                             "full accuracy - best accuracy at 50% (pp) <= threshold",
                             f"best {best} {100 * cands[best]:.2f}% vs full {100 * full:.2f}%"))
    return out
