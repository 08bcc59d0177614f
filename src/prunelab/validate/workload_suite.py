"""The `workloads` suite: every strategy on synthetic cost-model stores, judged by a real k-NN.

Stores (prunelab.data.workloads): run-history stores (recurring jittered workloads) and
independent records, sizes 50..10k, classification (best worker count) and regression
(log2 workers, log2 chunk size), plus a 100-sample homogeneous store. Downstream model: scikit-
learn's KNeighborsClassifier / KNeighborsRegressor with k = 5 (uniform weights, its defaults),
fitted on the full store and on each subset, scored on the held-out set (regression: share of
rows whose predicted config, snapped to the grid, is the best one).

Methods: every registered strategy at each keep fraction, and the classic presets
conservative / auto / aggressive = the `auto` selector keeping 10 / 5 / 2 samples per distinct
group (it picks the fraction itself).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np

from prunelab.data.workloads import WorkloadData, config_accuracy, make_store
from prunelab.select.strategies import get_selector, list_strategies
from prunelab.validate.checks import Check, Thresholds

PRESETS = {"conservative": 10.0, "auto": 5.0, "aggressive": 2.0}
TASKS = ("classification", "regression")


def knn_accuracy(data: WorkloadData, task: str, idx: np.ndarray) -> tuple[float, float]:
    """(held-out accuracy, predict seconds) of a 5-NN fitted on the rows `idx`."""
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

    k = min(5, len(idx))
    if task == "classification":
        model: Any = KNeighborsClassifier(n_neighbors=k).fit(data.X[idx], data.y_class[idx])
    else:
        model = KNeighborsRegressor(n_neighbors=k).fit(data.X[idx], data.y_reg[idx])
    t0 = time.perf_counter()
    pred = model.predict(data.X_test)
    seconds = time.perf_counter() - t0
    if task == "classification":
        return float(np.mean(pred == data.y_test_class)), seconds
    return config_accuracy(pred, data.y_test_reg), seconds


def _methods(keeps: tuple[float, ...]) -> list[tuple[str, str, float | None, dict[str, Any]]]:
    """(method name, strategy, keep, params)."""
    out: list[tuple[str, str, float | None, dict[str, Any]]] = []
    for name in list_strategies():
        if name == "auto":
            continue
        out += [(name, name, keep, {}) for keep in keeps]
    out += [(preset, "auto", None, {"per_group": per}) for preset, per in PRESETS.items()]
    return out


def run(seeds: int = 5, quick: bool = False, thresholds: Thresholds | None = None,
        progress: Callable[[str], None] | None = None) -> tuple[list[dict[str, Any]], list[Check]]:
    """Run the suite; returns (scenario rows, checks)."""
    th = thresholds or Thresholds()
    say = progress or (lambda msg: None)
    sizes = (100, 1000) if quick else (50, 100, 200, 1000, 10_000)
    keeps = (0.3,) if quick else (0.1, 0.3, 0.5)
    test_size = 500 if quick else 2000
    rows: list[dict[str, Any]] = []
    for store in ("history", "records"):
        for n in sizes:
            for seed in range(seeds):
                data = make_store(store, n, seed=seed, test_size=test_size)
                for task in TASKS:
                    rows += _scenarios(data, store, n, task, seed, keeps)
            say(f"workloads: {store} n={n} done")
    for seed in range(seeds):
        data = make_store("homogeneous", 100, seed=seed, test_size=test_size)
        rows += _scenarios(data, "homogeneous", 100, "classification", seed, (0.1,))
    say("workloads: homogeneous done")
    return rows, checks(rows, th)


def _scenarios(data: WorkloadData, store: str, n: int, task: str, seed: int,
               keeps: tuple[float, ...]) -> list[dict[str, Any]]:
    y = data.y_class if task == "classification" else data.y_reg
    full_acc, full_time = knn_accuracy(data, task, np.arange(len(data.X)))
    rows = []
    for method, strategy, keep, params in _methods(keeps):
        sel = get_selector(strategy, keep=keep, random_state=seed, task=task, **params)
        sel.fit(data.X, y, timestamps=data.timestamps)
        rep = sel.report_
        acc, pred_time = knn_accuracy(data, task, sel.indices_)
        kept_classes = len(np.unique(data.y_class[sel.indices_]))
        rows.append({
            "suite": "workloads", "store": store, "size": n, "task": task, "seed": seed, "method": method,
            "strategy": rep.strategy, "keep": keep, "kept_fraction": rep.kept_count / rep.original_count,
            "requested_count": rep.requested_count, "kept_count": rep.kept_count,
            "floors": [f.name for f in rep.floors], "accuracy": acc, "accuracy_full": full_acc,
            "delta_pp": 100.0 * (acc - full_acc), "bytes_before": rep.bytes_before,
            "bytes_after": rep.bytes_after, "memory_saving": rep.memory_saving,
            "predict_speedup": full_time / pred_time if pred_time > 0 else None,
            "select_seconds": rep.seconds, "peak_bytes": rep.peak_bytes,
            "classes_total": int(len(np.unique(data.y_class))), "classes_kept": kept_classes,
            "distinct_groups": int(len(np.unique(data.groups))),
        })
    return rows


def _mean(rows: list[dict[str, Any]], key: str) -> float:
    return float(np.mean([r[key] for r in rows]))


def checks(rows: list[dict[str, Any]], th: Thresholds) -> list[Check]:
    """The suite's verdicts (see docs/data-pruning.md)."""
    out: list[Check] = []
    by: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by[(r["store"], r["size"], r["task"], r["method"], r["keep"])].append(r)
    cells = sorted({(r["store"], r["size"], r["task"]) for r in rows if r["store"] != "homogeneous"})
    for store, n, task in cells:
        scope = f"{store} n={n} {task}"
        full = _mean(by[(store, n, task, "random", 0.3)], "accuracy_full") if by[(store, n, task, "random", 0.3)] \
            else None
        if store == "history" and full is not None:
            rnd = _mean(by[(store, n, task, "random", 0.3)], "accuracy")
            means = {m: _mean(by[(store, n, task, m, 0.3)], "accuracy")
                     for m in list_strategies() if m not in ("random", "auto") and by[(store, n, task, m, 0.3)]}
            best = max(means, key=lambda m: means[m])
            gain = 100 * (means[best] - rnd)
            out.append(Check("best_vs_random_keep30", scope, gain >= th.min_gain_pp, gain, th.min_gain_pp,
                             "best non-random accuracy - random accuracy (pp) >= threshold",
                             f"best {best} {100 * means[best]:.2f}% vs random {100 * rnd:.2f}%"))
            loss = 100 * (full - means[best])
            out.append(Check("best_vs_full_keep30", scope, loss <= th.max_loss_pp, loss, th.max_loss_pp,
                             "full accuracy - best accuracy (pp) <= threshold",
                             f"best {best} {100 * means[best]:.2f}% vs full {100 * full:.2f}%"))
        auto = by[(store, n, task, "auto", None)]
        if auto:
            loss = -_mean(auto, "delta_pp")
            saving = _mean(auto, "memory_saving")
            out.append(Check("auto_loss", scope, loss <= th.max_loss_pp, loss, th.max_loss_pp,
                             "full accuracy - auto accuracy (pp) <= threshold",
                             f"auto kept {_mean(auto, 'kept_fraction'):.1%}, saved {saving:.1%}"))
            if store == "history":
                out.append(Check("auto_saving", scope, saving >= th.min_auto_saving, saving, th.min_auto_saving,
                                 "measured memory saving of auto >= threshold",
                                 f"bytes {int(_mean(auto, 'bytes_before'))} -> {int(_mean(auto, 'bytes_after'))}"))
    homo = [r for r in rows if r["store"] == "homogeneous"]
    if homo:
        bad = [r for r in homo if r["kept_count"] < min(th.min_keep, r["size"])
               or r["classes_kept"] < r["classes_total"]]
        out.append(Check("homogeneous_floors", "homogeneous n=100", not bad,
                         float(min(r["kept_count"] for r in homo)), float(th.min_keep),
                         "every method keeps >= min_keep samples and every class",
                         f"{len(homo)} selections, {len(bad)} violated; classes per store "
                         f"{sorted({r['classes_total'] for r in homo})}"))
    exact = [r for r in rows if not r["floors"]]
    wrong = [r for r in exact if r["kept_count"] != r["requested_count"]]
    out.append(Check("exact_counts", "all workloads scenarios", not wrong, float(len(wrong)), 0.0,
                     "kept == requested wherever no floor applied",
                     f"{len(exact)} selections without a floor, {len(wrong)} off"))
    return out
